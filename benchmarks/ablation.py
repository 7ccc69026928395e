"""The ablation study of docs/model.md: each variant of the training config measured by the same
K-fold by photo (5 folds, legally allowed photos, 100-photo galleries), in one run.

``.venv/bin/python benchmarks/ablation.py --data ../shared/data/withsense [--seeds 0] [--only NAME]
[--json OUT]`` prints a markdown table: the path from the quick sketch to the default config,
then one-off changes to the default. The last column is the out-of-domain sanity check (R@1 on
the demo gallery, ``evaluate.demo_gallery_metrics``) of the model trained on the standard split.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from withsense_train.config import TrainConfig
from withsense_train.data import load_dataset
from withsense_train.evaluate import TRAINED, ZERO_SHOT, demo_gallery_metrics, kfold_evaluate
from withsense_train.features import FeatureCache
from withsense_train.fit import fit_heads
from withsense_train.metrics import mean_std
from withsense_train.prepare import prepare, split_photos

_SKETCH = {"model": "lite0", "tta": "none", "init": "zero_shot", "pooled_sqrt": False,
           "text_whiten": 0.0, "train_image": True, "lr": 1e-3, "epochs": 100, "patience": 10}
_RIDGE = {"model": "lite0", "tta": "none", "pooled_sqrt": False, "text_whiten": 0.0, "epochs": 0,
          "ridge_prior": 0.0}

# The model these ablations describe: Lite2 alone with its ridge λ (the default config moved on to
# the Lite2 + Lite0 ensemble in issue #8; benchmarks/pixel_attempts.py measures that step).
LITE2_BASE: dict[str, Any] = {"model": "lite2", "ridge_lambda": 3000.0}

# (name, overrides of TrainConfig(**LITE2_BASE)); the first block is cumulative.
VARIANTS: list[tuple[str, dict[str, Any]]] = [
    ("A1 quick sketch: zero-shot start, both heads SigLIP, lr 1e-3 (Lite0)", _SKETCH),
    ("A2 same, lr 3e-4", {**_SKETCH, "lr": 3e-4}),
    ("A3 ridge image head instead (Lite0, no training)", _RIDGE),
    ("A4 + signed-sqrt pooled features", {**_RIDGE, "pooled_sqrt": True}),
    ("A5 + flip TTA", {**_RIDGE, "pooled_sqrt": True, "tta": "flip"}),
    ("A6 + whitened text head", {**_RIDGE, "pooled_sqrt": True, "tta": "flip", "text_whiten": 0.02}),
    ("A7 + Lite2 tower", {"epochs": 0, "ridge_prior": 0.0}),
    ("A8 + ridge shrunk towards the zero-shot map (prior 0.2)", {"epochs": 0}),
    ("A9 + text head SigLIP, early stopping (default)", {}),
    ("V1 Lite0 tower", {"model": "lite0"}),
    ("V2 no TTA", {"tta": "none"}),
    ("V3 no signed sqrt", {"pooled_sqrt": False}),
    ("V4 text whitening off", {"text_whiten": 0.0}),
    ("V5 residual MLP heads", {"head": "residual_mlp"}),
    ("V6 image head also trained (lr 1e-5)", {"train_image": True, "lr": 1e-5}),
    ("V7 no judgment soft labels", {"judgments": "none"}),
    ("V8 expert judgments only (no crowd)", {"judgments": "expert"}),
    ("V9 hard negatives (3 per caption)", {"hard_negatives": 3}),
    ("V10 prompt ensemble for concepts", {"prompts": "ensemble"}),
    ("V11 t, b init 5, -3", {"init_scale": 5.0, "init_bias": -3.0}),
    ("V12 weight decay 0.5", {"weight_decay": 0.5}),
    ("V13 ridge lambda 1000", {"ridge_lambda": 1000.0}),
    ("V13b ridge prior 0.5", {"ridge_prior": 0.5}),
    ("V14 ridge lambda 10000", {"ridge_lambda": 10000.0}),
    ("V15 calibration on expert + crowd pairs (balanced)", {"calibration": "balanced"}),
    ("V16 calibration on all judged pairs alike", {"calibration": "all"}),
]
COLUMNS = ("R@1", "R@5", "R@10", "MRR", "AUC", "tau_c", "ECE", "RMSE", "own_p_median")
GALLERY_COLUMN = "gallery_R@1"


def run(data: Path, seeds: list[int], only: list[str] | None = None, folds: int = 5,
        cache_dir: Path | None = None) -> list[dict[str, Any]]:
    from withsense.model.catalog import model_config

    dataset = load_dataset(data, check_photos=False)
    preps: dict[tuple[str, str, str], Any] = {}
    rows = []
    for name, overrides in VARIANTS:
        if only and not any(name.startswith(o) for o in only):
            continue
        per_seed = []
        started = time.perf_counter()
        for seed in seeds:
            config = TrainConfig(**{**LITE2_BASE, **overrides, "seed": seed})
            key = (config.model, config.tta, config.prompts)
            if key not in preps:
                cache = FeatureCache(model_config(config.model), cache_dir, progress=False)
                preps[key] = prepare(dataset, cache, tta=config.tta, prompts=config.concept_prompts())
            result = kfold_evaluate(dataset, config, folds=folds, prep=preps[key], progress=False)
            per_seed.append(result)
        row: dict[str, Any] = {"name": name, "overrides": overrides, "seeds": seeds,
                               "seconds": round(time.perf_counter() - started, 1),
                               "best_epochs": [r["best_epochs"] for r in per_seed]}
        # Out-of-domain sanity: the model of the standard split on the demo gallery.
        config = TrainConfig(**{**LITE2_BASE, **overrides, "seed": seeds[0]})
        prep = preps[(config.model, config.tta, config.prompts)]
        train_photos, val_photos = split_photos(prep.photos, config.val_photos, config.seed)
        fit = fit_heads(prep, train_photos, val_photos, config, progress=False)
        row["gallery"] = demo_gallery_metrics({TRAINED: fit.model}, prep.cache)[TRAINED]
        for model in (TRAINED, ZERO_SHOT):
            for column in COLUMNS:
                values = [r["compliant"][model].get(column, float("nan")) for r in per_seed]
                row.setdefault(model, {})[column] = mean_std(values)[0]
                row.setdefault(f"{model}_per_seed", {})[column] = values
        rows.append(row)
        print(json.dumps(row), file=sys.stderr, flush=True)
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    lines = ["| variant | " + " | ".join(COLUMNS) + f" | {GALLERY_COLUMN} | s |",
             "|---|" + "---:|" * (len(COLUMNS) + 2)]
    for row in rows:
        cells = [f"{row[TRAINED][c]:.3f}" for c in COLUMNS] + [f"{row['gallery']['R@1']:.2f}"]
        lines.append(f"| {row['name']} | " + " | ".join(cells) + f" | {row['seconds']:.0f} |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="benchmarks/ablation.py", description=__doc__)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="fold-assignment seeds")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--only", nargs="+", help="variant name prefixes, e.g. A7 V1")
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args(argv)
    rows = run(args.data, args.seeds, args.only, args.folds, args.cache)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
