"""Thumbnail encoding: WebP encoder effort (`method` 0-6) against time and size, in one run.

Each photo is made into its 256 px thumbnail once; then each `method` encodes every thumbnail
in turn (interleaved, medians over repeats), so all settings see the same machine load. The
shipped setting (`withsense.thumbnails.render.WEBP_METHOD`) is marked; method 4 is Pillow's
default and was shipped before. Quality is fixed (the shipped 80), so size and a PSNR against
the lossless thumbnail show what a faster setting gives up.

    .venv/bin/python benchmarks/bench_thumbnails.py [--photos 64] [--repeats 5] [--data DIR] [--json]

Photos come from the customer's data when present, otherwise from the synthetic set.
"""

from __future__ import annotations

import argparse
import io
import json
import tempfile
from pathlib import Path

import numpy as np
from bench_utils import interleaved, load_note, markdown_table
from PIL import Image, ImageOps
from withsense.thumbnails.render import THUMBNAIL_PX, WEBP_METHOD, WEBP_QUALITY

METHODS = (0, 1, 2, 3, 4, 6)
# The customer's data beside the repository, as in the README's commands.
CUSTOMER = Path(__file__).resolve().parents[2] / "shared" / "data" / "withsense"


def thumbnails(folder: Path, count: int) -> list[Image.Image]:
    files = sorted(p for p in folder.rglob("*") if p.suffix.lower() in {".jpg", ".jpeg", ".png"})
    if not files:
        raise SystemExit(f"no photos under {folder}")
    out = []
    for path in files[:count]:
        with Image.open(path) as opened:
            photo = ImageOps.exif_transpose(opened).convert("RGB")
            photo.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX), Image.Resampling.LANCZOS)
            out.append(photo)
    return out


def encode(photo: Image.Image, method: int) -> bytes:
    buffer = io.BytesIO()
    photo.save(buffer, format="WEBP", quality=WEBP_QUALITY, method=method)
    return buffer.getvalue()


def psnr(photo: Image.Image, data: bytes) -> float:
    a = np.asarray(photo, dtype=np.float64)
    b = np.asarray(Image.open(io.BytesIO(data)).convert("RGB"), dtype=np.float64)
    mse = float(np.mean((a - b) ** 2))
    return 99.0 if mse == 0 else 10 * np.log10(255**2 / mse)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=CUSTOMER)
    parser.add_argument("--photos", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    if args.data.exists():
        photos = thumbnails(args.data, args.photos)
    else:
        from withsense_train.synthetic import generate  # the trainer's synthetic photos

        with tempfile.TemporaryDirectory() as tmp:
            photos = thumbnails(generate(tmp, images=args.photos), args.photos)
    fns = {m: (lambda m=m: [encode(p, m) for p in photos]) for m in METHODS}
    ms = interleaved(fns, args.repeats)
    rows = []
    for m in METHODS:
        sizes = [len(encode(p, m)) for p in photos]
        quality = [psnr(p, encode(p, m)) for p in photos]
        rows.append({
            "method": m, "shipped": m == WEBP_METHOD, "ms_per_photo": ms[m] / len(photos),
            "kb_mean": float(np.mean(sizes)) / 1024, "psnr_db": float(np.median(quality)),
        })
    if args.json:
        print(json.dumps({"photos": len(photos), "rows": rows}, indent=2))
        return
    base = next(r for r in rows if r["method"] == 4)
    print(f"WebP thumbnails, {len(photos)} photos at {THUMBNAIL_PX} px, quality {WEBP_QUALITY}, "
          f"medians of {args.repeats} interleaved repeats; {load_note()}\n")
    print(markdown_table(
        ["method", "ms / photo", "vs 4 (before)", "mean KB", "median PSNR dB"],
        [[f"{r['method']}{' (shipped)' if r['shipped'] else ''}", f"{r['ms_per_photo']:.2f}",
          f"{r['ms_per_photo'] / base['ms_per_photo']:.2f}x", f"{r['kb_mean']:.1f}",
          f"{r['psnr_db']:.2f}"] for r in rows],
    ))


if __name__ == "__main__":
    main()
