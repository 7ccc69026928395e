"""Speed of the image towers on this machine, Lite0 against Lite2 (and their ensemble) in one run.

``.venv/bin/python benchmarks/bench_towers.py [--photos DIR] [--n 64] [--batch 16]`` prints photos per second
of each tower (preprocessing included, torch eager on the CPU), with and without the flip
test-time augmentation, and the ratio to Lite0 without it. Numbers are only comparable within
one run (the machine is shared).
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
from PIL import Image
from withsense.model.catalog import MODEL_NAMES, model_config
from withsense.model.runtime import image_features
from withsense.model.towers import image_tower_from_config


def _photos(folder: Path | None, n: int) -> list[Image.Image]:
    if folder is not None:
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() in {".jpg", ".jpeg", ".png"})[:n]
        return [Image.open(p).convert("RGB") for p in files]
    import random

    from withsense_train.synthetic import _scene, draw

    rng = random.Random(0)
    return [draw(_scene(rng, 0.0), rng).resize((500, 375)) for _ in range(n)]


def bench(photos: list[Image.Image], batch: int, repeats: int = 5) -> list[dict[str, float | str]]:
    """Both towers loaded first, then the four configurations timed in turn, ``repeats``
    rounds, keeping each one's best round (robust to a shared machine's load changes)."""
    towers = {}
    for name in MODEL_NAMES:
        towers[name] = image_tower_from_config(model_config(name)["image_tower"])
        image_features(towers[name], photos[:batch])  # warm-up
    configs = [(name, tta) for name in towers for tta in ("none", "flip")]
    best = dict.fromkeys(configs, float("inf"))
    for _ in range(repeats):
        for name, tta in configs:
            started = time.perf_counter()
            for start in range(0, len(photos), batch):
                image_features(towers[name], photos[start:start + batch], tta)
            best[(name, tta)] = min(best[(name, tta)], time.perf_counter() - started)
    rows: list[dict[str, float | str]] = []
    for name, tta in configs:
        seconds = best[(name, tta)]
        tower = " + ".join([towers[name].timm_name, *(c for c, _ in towers[name].companions)])
        rows.append({"tower": tower, "tta": tta, "photos_per_s": len(photos) / seconds,
                     "ms_per_photo": 1000 * seconds / len(photos)})
    base = float(rows[0]["photos_per_s"])
    for row in rows:
        row["speed_vs_lite0"] = float(row["photos_per_s"]) / base
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/bench_towers.py", description=__doc__)
    parser.add_argument("--photos", type=Path, help="folder of photos (default: drawn ones)")
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args(argv)
    photos = _photos(args.photos, args.n)
    print(f"torch threads: {torch.get_num_threads()}, {len(photos)} photos, batch {args.batch}")
    print("| tower | TTA | photos/s | ms/photo | speed vs Lite0 |")
    print("|---|---|---:|---:|---:|")
    for row in bench(photos, args.batch):
        print(f"| {row['tower']} | {row['tta']} | {row['photos_per_s']:.1f} | "
              f"{row['ms_per_photo']:.1f} | {row['speed_vs_lite0']:.2f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
