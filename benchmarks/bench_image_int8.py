"""The int8 image tower (``withsense.model.image_int8``) against fp32, in one run: speed, how far
its features move, and what that does to the model's quality (issue 11, item 7).

1. Speed: the tower network alone on ONNX Runtime, fp32 and int8 graphs, at 1 and 2 intra-op
   threads, batch 16 of the customer's photos; the variants take turns, medians of ``--repeats``;
   wall and CPU time (this process, all threads) per photo, and the load average.
2. Agreement over every photo of the data set: the cosine of int8 to fp32 pooled features (the
   heads' flip test-time augmentation, as the worker runs them) and of the image vectors the
   shipped artifact's heads make of them (min, 1st percentile, median), and ImageNet top-1; for
   the recipe's 7-bit weights and for full-range 8-bit ones (exact only on a CPU with VNNI: the
   row shows what saturation does where there is none).
3. Quality: 5-fold cross-validation by photo of the search heads (``withsense_train.evaluate``)
   trained and evaluated on fp32 features, then on int8 features, same folds: R@1, R@5, R@10,
   ECE; and the visual minor detector's (``withsense_train.minor``) cross-validation on each:
   ROC-AUC, recall of child photos and adults withheld at the operating point, adults withheld
   at 95% / 97% recall; mean over ``--minor-seeds`` fold seeds.

The int8 calibration table comes from 128 of the allowed photos (``FeatureCache.calibrate_int8``:
the trainer's own way); features come from the shared feature cache (int8 ones under their own
key). Run it under ``nice``:

    PYTHONPATH=services:trainer nice -n 15 .venv/bin/python benchmarks/bench_image_int8.py \\
        --data /work/shared/data/withsense --cache /work/cache [--skip-kfold] [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_utils import markdown_table  # noqa: E402
from withsense.model.artifact import DEFAULT_ARTIFACT_DIR, load_artifact  # noqa: E402
from withsense.model.catalog import model_config  # noqa: E402
from withsense.model.image_int8 import quantize  # noqa: E402
from withsense.model.minor import detector_inputs  # noqa: E402
from withsense.model.towers import OnnxImageSession, export_image_graph  # noqa: E402
from withsense_train.background import background_features  # noqa: E402
from withsense_train.config import TrainConfig  # noqa: E402
from withsense_train.data import load_dataset  # noqa: E402
from withsense_train.evaluate import TRAINED, kfold_evaluate  # noqa: E402
from withsense_train.features import FeatureCache  # noqa: E402
from withsense_train.filtering import legal_filter  # noqa: E402
from withsense_train.minor import (  # noqa: E402
    MinorConfig,
    label_kinds,
    logistic_fitter,
    out_of_fold,
    photo_votes,
    route_metrics,
    with_negatives,
)
from withsense_train.prepare import torch_threads  # noqa: E402


def caches(data_dir: Path, cache_dir: Path) -> tuple[Any, FeatureCache, FeatureCache]:
    dataset = load_dataset(data_dir)
    fp32 = FeatureCache(model_config("lite2"), cache_dir, progress=True)
    int8 = FeatureCache(model_config("lite2"), cache_dir, progress=True, image_precision="int8")
    int8.calibrate_int8([dataset.train_images[p] for p in legal_filter(dataset).photos])
    return dataset, fp32, int8


def speed(fp32: FeatureCache, int8: FeatureCache, paths: list[Path], repeats: int) -> list[dict]:
    from PIL import Image

    tower = fp32.image_tower
    pixels = tower.preprocess([Image.open(p) for p in paths[:16]])
    sessions = {(name, threads): OnnxImageSession(tower.networks, tower.image_size, threads=threads,
                                                  int8_table=table)
                for threads in (1, 2) for name, table in (("fp32", None), ("int8", int8.int8_table))}
    for session in sessions.values():
        session(pixels)  # warm-up
    wall: dict[Any, list[float]] = {key: [] for key in sessions}
    cpu: dict[Any, list[float]] = {key: [] for key in sessions}
    for _ in range(repeats):
        for key, session in sessions.items():
            w, c = time.perf_counter(), time.process_time()
            session(pixels)
            wall[key].append((time.perf_counter() - w) * 1e3 / len(pixels))
            cpu[key].append((time.process_time() - c) * 1e3 / len(pixels))
    rows = []
    for threads in (1, 2):
        base_cpu = float(np.median(cpu[("fp32", threads)]))
        for name in ("fp32", "int8"):
            key = (name, threads)
            rows.append({"graph": name, "threads": threads, "wall_ms": float(np.median(wall[key])),
                         "cpu_ms": float(np.median(cpu[key])),
                         "cpu_vs_fp32": base_cpu / float(np.median(cpu[key]))})
    return rows


def cosine_stats(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    cos = (a * b).sum(1) / np.linalg.norm(a, axis=1) / np.linalg.norm(b, axis=1)
    return {"min": float(cos.min()), "p1": float(np.percentile(cos, 1)), "median": float(np.median(cos))}


def agreement(fp32: FeatureCache, int8: FeatureCache, paths: list[Path]) -> dict[str, Any]:
    """int8 against fp32 features (flip TTA), the recipe's (7-bit weights) and full-range
    weights' (the previous recipe, exact only with VNNI on x86), with the same calibration table."""
    model = load_artifact(DEFAULT_ARTIFACT_DIR).model
    (p32, l32) = fp32.image(paths, "flip")
    recipes = {"int8 (recipe: 7-bit weights)": int8.image(paths, "flip"),
               f"int8, 8-bit weights ({vnni()})": full_range_features(int8, paths)}
    out: dict[str, Any] = {"photos": len(paths)}
    with torch.inference_mode():
        v32 = model.embed_image(torch.from_numpy(p32), torch.from_numpy(l32)).numpy()
        for name, (p8, l8) in recipes.items():
            v8 = model.embed_image(torch.from_numpy(p8), torch.from_numpy(l8)).numpy()
            out[name] = {"pooled": cosine_stats(p32, p8), "vectors": cosine_stats(v32, v8),
                         "top1_agrees": float((l32.argmax(1) == l8.argmax(1)).mean())}
    return out


def vnni() -> str:
    """Whether this CPU multiplies uint8 by full-range int8 without saturating: x86 needs VNNI
    (or AMX); other CPUs have no VPMADDUBSW step."""
    if platform.machine().lower() not in ("x86_64", "amd64", "i386", "i686"):
        return "not x86: no saturating step"
    try:
        flags = set(Path("/proc/cpuinfo").read_text().split())
    except OSError:
        return "CPU flags unknown"
    return "this CPU has VNNI" if flags & {"avx512_vnni", "avx_vnni", "amx_int8"} else \
        "this CPU has no VNNI: its sums saturate"


def full_range_features(int8: FeatureCache, paths: list[Path]) -> tuple[np.ndarray, np.ndarray]:
    """(pooled, logits) with the flip TTA of the int8 graph with full-range (8-bit) weights."""
    import onnxruntime
    from PIL import Image

    tower = int8.image_tower
    graph = quantize(export_image_graph(tower.networks, tower.image_size), int8.int8_table,
                     reduce_range=False)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])
    pooled, logits = [], []
    for start in range(0, len(paths), 16):
        pixels = tower.preprocess([Image.open(p) for p in paths[start:start + 16]]).numpy()
        a = session.run(None, {"pixels": pixels})
        b = session.run(None, {"pixels": np.ascontiguousarray(pixels[..., ::-1])})
        pooled.append((a[0] + b[0]) / 2)
        logits.append((a[1] + b[1]) / 2)
    return np.concatenate(pooled), np.concatenate(logits)


def heads_cv(dataset: Any, cache: FeatureCache, precision: str) -> dict[str, float]:
    result = kfold_evaluate(dataset, TrainConfig(image_precision=precision), folds=5, cache=cache)
    trained = result["compliant"][TRAINED]
    return {k: float(trained[k]) for k in ("R@1", "R@5", "R@10", "MRR", "ECE")}


def minor_cv(dataset: Any, cache: FeatureCache, seeds: int) -> dict[str, float]:
    config = MinorConfig()
    photos = sorted(dataset.train_images)
    votes, counts = photo_votes(dataset, photos)
    pooled, logits = cache.image([dataset.train_images[p] for p in photos], "flip")
    x = detector_inputs(pooled, logits)
    extra = detector_inputs(*background_features(cache.feature_tower, "flip", config.seed))
    kinds = label_kinds(votes)
    runs = []
    with torch_threads(1):
        for seed in range(seeds):
            fitter = with_negatives(logistic_fitter(config.c, seed), extra)
            oof, ids = out_of_fold(x, votes, counts, fitter, folds=config.folds, seed=seed,
                                   ambiguous=config.ambiguous)
            runs.append(route_metrics(oof, kinds, ids, recall_target=config.recall_target,
                                      margin=config.margin))
    return {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/withsense"))
    parser.add_argument("--cache", type=Path, default=None)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--minor-seeds", type=int, default=3)
    parser.add_argument("--skip-kfold", action="store_true", help="no 5-fold CV of the heads")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if not (args.data / "train_dataset.csv").is_file():
        raise SystemExit(f"{args.data}: no customer data set there (train_dataset.csv)")
    dataset, fp32, int8 = caches(args.data, args.cache)
    paths = [dataset.train_images[p] for p in sorted(dataset.train_images)]
    out: dict[str, Any] = {"load_average": os.getloadavg()[0]}
    out["speed"] = speed(fp32, int8, paths, args.repeats)
    out["speed_load_average"] = os.getloadavg()[0]
    out["agreement"] = agreement(fp32, int8, paths)
    out["minor"] = {name: minor_cv(dataset, cache, args.minor_seeds)
                    for name, cache in (("fp32", fp32), ("int8", int8))}
    if not args.skip_kfold:
        out["heads"] = {name: heads_cv(dataset, cache, name)
                        for name, cache in (("fp32", fp32), ("int8", int8))}
    out["end_load_average"] = os.getloadavg()[0]
    if args.json:
        print(json.dumps(out, indent=2))
    else:
        print_tables(out)
    return 0


def print_tables(out: dict[str, Any]) -> None:
    print(f"\n**Image tower network alone, batch 16, ONNX Runtime** (load average "
          f"{out['load_average']:.1f} -> {out['speed_load_average']:.1f} on {os.cpu_count()} CPUs)\n")
    print(markdown_table(["graph", "intra-op threads", "wall ms / photo", "CPU ms / photo",
                          "CPU speed-up vs fp32"],
                         [[r["graph"], r["threads"], f"{r['wall_ms']:.1f}", f"{r['cpu_ms']:.1f}",
                           f"{r['cpu_vs_fp32']:.2f}x"] for r in out["speed"]]))
    a = out["agreement"]
    print(f"\n**int8 against fp32 over {a['photos']} photos** (flip TTA, as served; vectors: the "
          f"shipped heads; same calibration table)\n")
    print(markdown_table(["graph", "cosine of", "min", "p1", "median", "ImageNet top-1 agrees"],
                         [[recipe, name, *(f"{a[recipe][name][k]:.4f}" for k in ("min", "p1", "median")),
                           f"{a[recipe]['top1_agrees']:.1%}"]
                          for recipe in a if recipe != "photos" for name in ("pooled", "vectors")]))
    if "heads" in out:
        print("\n**Search heads, 5-fold CV by photo (same folds), trained and evaluated on each**\n")
        keys = ("R@1", "R@5", "R@10", "MRR", "ECE")
        print(markdown_table(["features", *keys],
                             [[name, *(f"{m[k]:.4f}" for k in keys)] for name, m in out["heads"].items()]))
    print("\n**Visual minor detector, 5-fold CV (mean over fold seeds)**\n")
    keys = ("auc", "heldout_recall", "heldout_adults_withheld", "adults_at_95", "adults_at_97")
    print(markdown_table(["features", *keys],
                         [[name, *(f"{m[k]:.4f}" for k in keys)] for name, m in out["minor"].items()]))
    print(f"\nload average at the end: {out['end_load_average']:.1f}")


if __name__ == "__main__":
    raise SystemExit(main())
