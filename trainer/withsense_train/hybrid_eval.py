"""Descriptions as evidence, measured by leaving captions out (issue 8's "Done when" protocol).

5-fold by photo on the legally allowed photos. For each fold the pixel heads are trained on the
other folds (an inner 100-photo validation split for early stopping and calibration, exactly as
`withsense evaluate --folds`), and the fusion model is trained and calibrated on that inner
validation split (`withsense_train.fusion`). On the held-out fold, every photo gets 2 of its
captions as descriptions and its other 3 captions are queries, each ranked against its photo
and 99 others of the fold (the same draw for every model):

* **described gallery**: every photo has its 2 descriptions: R@1, R@5 and the median p of the
  true photo, hybrid against pixels-only;
* **mixed gallery**: half the photos (seeded) keep their descriptions, half have none: R@1 of the
  queries whose photo is undescribed (and of those whose photo is described), hybrid against
  pixels-only;
* **calibration**: held-out expert pairs (label: expert mean >= 3), each pair's photo described
  by 2 of its captions (never the query) or by none, at random: ECE overall and per group.

    python -m withsense_train.hybrid_eval --data ../shared/data/withsense [--folds 5] [--json]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from withsense.model.catalog import model_config

from withsense_train.calibration import calibrate_on_photos
from withsense_train.config import TrainConfig
from withsense_train.data import load_dataset
from withsense_train.features import FeatureCache
from withsense_train.fit import fit_heads
from withsense_train.fusion import (
    PixelScores,
    TextEvidence,
    captions_of,
    draw_descriptions,
    pair_features,
    sigmoid,
    train_fusion,
)
from withsense_train.metrics import GALLERY, expected_calibration_error, mean_std, query_ranks
from withsense_train.prepare import Prepared, prepare, split_photos, torch_threads

if TYPE_CHECKING:
    from withsense.model.fusion import FusionModel

DESCRIBED = 2  # captions per photo used as its descriptions in the test protocol
#: (text evidence, query rows, image logits, description rows per pair) -> feature rows
Features = Callable[[TextEvidence, np.ndarray, np.ndarray, Sequence[Sequence[int]]], np.ndarray]


def test_fold(prep: Prepared, fold: PixelScores, photos: list[str], seed: int, *,
              features: Features = pair_features) -> dict[str, np.ndarray]:
    """The protocol on the held-out photos: per query ranks and p, per expert pair p.
    ``features``: how a pair's fusion inputs are computed (a variant may add columns)."""
    assert fold.fusion is not None
    rng = np.random.default_rng(seed)
    captions = captions_of(prep, photos)
    gallery = np.asarray(sorted(captions))
    column = {int(p): i for i, p in enumerate(gallery)}
    descriptions: dict[int, list[int]] = {}
    queries: list[tuple[int, int]] = []
    for photo in gallery.tolist():
        caps = list(captions[photo])
        rng.shuffle(caps)
        descriptions[photo] = sorted(caps[:DESCRIBED])
        queries += [(t, photo) for t in caps[DESCRIBED:]]
    q_rows = np.asarray([t for t, _ in queries])
    positive = np.asarray([column[p] for _, p in queries])
    logits = fold.image_logits(q_rows, gallery)  # [Q, G]
    half = set(rng.permutation(gallery)[: len(gallery) // 2].tolist())

    def fused(described: set[int]) -> np.ndarray:
        q = np.repeat(q_rows, len(gallery))
        desc = [descriptions[p] if p in described else [] for p in gallery.tolist()] * len(q_rows)
        x = features(fold.evidence, q, logits.reshape(-1), desc)
        return fold.fusion.probability(x).reshape(len(q_rows), len(gallery))

    everyone = fused(set(gallery.tolist()))
    mixed = fused(half)
    pixels = sigmoid(logits)
    own = np.arange(len(q_rows))
    true_undescribed = np.asarray([p not in half for _, p in queries])
    # Why undescribed photos lose rank 1 in the mixed gallery: their p against the best
    # described and the best undescribed competitor (all photos of the fold but their own).
    is_described = np.asarray([p in half for p in gallery.tolist()])
    competitors = mixed.copy()
    competitors[own, positive] = -np.inf
    out = {
        "mixed_own_p": mixed[own, positive],
        "mixed_best_described_p": np.where(is_described, competitors, -np.inf).max(axis=1),
        "mixed_best_undescribed_p": np.where(~is_described, competitors, -np.inf).max(axis=1),
        "pixels_ranks": query_ranks(pixels, positive, gallery=GALLERY, seed=seed),
        "hybrid_ranks": query_ranks(everyone, positive, gallery=GALLERY, seed=seed),
        "mixed_ranks": query_ranks(mixed, positive, gallery=GALLERY, seed=seed),
        "pixels_own_p": pixels[own, positive], "hybrid_own_p": everyone[own, positive],
        "mixed_true_undescribed": true_undescribed,
    }
    judged = prep.judgments(photos, expert_only=True)
    with_desc = rng.random(len(judged["label"])) < 0.5
    desc = [draw_descriptions(rng, captions.get(int(p), []), int(t), DESCRIBED) if w else []
            for t, p, w in zip(judged["text"], judged["photo"], with_desc, strict=True)]
    pair_logit = fold.pair_logits(judged["text"], judged["photo"])
    x = features(fold.evidence, judged["text"], pair_logit, desc)
    out |= {"expert_label": judged["label"], "expert_described": with_desc,
            "expert_hybrid_p": fold.fusion.probability(x), "expert_pixels_p": sigmoid(pair_logit)}
    return out


def _recall(ranks: np.ndarray, k: int) -> float:
    return float(np.mean(ranks <= k)) if len(ranks) else float("nan")


def summarise(o: dict[str, np.ndarray]) -> dict[str, float]:
    und = o["mixed_true_undescribed"]
    label, described = o["expert_label"], o["expert_described"]
    ece = expected_calibration_error
    return {
        "described R@1 pixels": _recall(o["pixels_ranks"], 1),
        "described R@1 hybrid": _recall(o["hybrid_ranks"], 1),
        "described R@5 pixels": _recall(o["pixels_ranks"], 5),
        "described R@5 hybrid": _recall(o["hybrid_ranks"], 5),
        "described median p pixels": float(np.median(o["pixels_own_p"])),
        "described median p hybrid": float(np.median(o["hybrid_own_p"])),
        "mixed undescribed R@1 pixels": _recall(o["pixels_ranks"][und], 1),
        "mixed undescribed R@1 hybrid": _recall(o["mixed_ranks"][und], 1),
        "mixed described R@1 pixels": _recall(o["pixels_ranks"][~und], 1),
        "mixed described R@1 hybrid": _recall(o["mixed_ranks"][~und], 1),
        "mixed undescribed: median p of the own photo": float(np.median(o["mixed_own_p"][und])),
        "mixed undescribed: median p of the best described competitor":
            float(np.median(o["mixed_best_described_p"][und])),
        "mixed undescribed: median p of the best undescribed competitor":
            float(np.median(o["mixed_best_undescribed_p"][und])),
        "mixed undescribed: own photo above every described competitor":
            float(np.mean(o["mixed_own_p"][und] > o["mixed_best_described_p"][und])),
        "mixed undescribed: own photo above every undescribed competitor":
            float(np.mean(o["mixed_own_p"][und] > o["mixed_best_undescribed_p"][und])),
        "ECE pixels": ece(o["expert_pixels_p"], label),
        "ECE hybrid": ece(o["expert_hybrid_p"], label),
        "ECE hybrid, with descriptions": ece(o["expert_hybrid_p"][described], label[described]),
        "ECE hybrid, without descriptions": ece(o["expert_hybrid_p"][~described], label[~described]),
        "ECE pixels, same pairs as with": ece(o["expert_pixels_p"][described], label[described]),
    }


def hybrid_kfold(data_dir: Path, *, folds: int = 5, cache_dir: Path | None = None,
                 config: TrainConfig | None = None, progress: bool = True) -> dict[str, Any]:
    """The protocol over K folds by photo (heads and fusion retrained per fold)."""
    from tqdm.auto import tqdm

    config = config or TrainConfig()
    dataset = load_dataset(data_dir)
    cache = FeatureCache(model_config(config.model), cache_dir, progress=progress,
                         image_precision=config.image_precision)
    prep = prepare(dataset, cache, tta=config.tta, prompts=config.concept_prompts())
    evidence = TextEvidence.build(prep.texts, prep.text.numpy())
    order = sorted(prep.filtered.photos)  # the same folds as `withsense evaluate --folds`
    np.random.default_rng(config.seed).shuffle(order)
    fold_of = {photo: i % folds for i, photo in enumerate(order)}
    outputs, fusions = [], []
    with torch_threads(1):
        for k in tqdm(range(folds), desc=f"{folds}-fold, descriptions as evidence",
                      disable=not progress, leave=False):
            test = sorted(p for p in order if fold_of[p] == k)
            trainable = sorted(p for p in order if fold_of[p] != k)
            inner_train, inner_val = split_photos(trainable, config.val_photos, config.seed + k)
            fit = fit_heads(prep, inner_train, inner_val, config, progress=progress,
                            held_out=set(test), desc=f"fold {k + 1}/{folds}")
            calibrate_on_photos(fit.model, prep, inner_val, config.calibration)
            fold = PixelScores(prep, fit.model, evidence)
            fold.fusion = train_fusion(prep, fold, inner_val, config.seed + k)
            fusions.append(fold.fusion.to_json())
            outputs.append(test_fold(prep, fold, test, config.seed + k))
    return {"mode": f"{folds}-fold by photo", **_result(outputs, config.seed),
            "fusion_per_fold": fusions}


def hybrid_on_split(prep: Prepared, model: Any, fusion: FusionModel, photos: list[str], *,
                    seed: int = 0) -> dict[str, Any]:
    """The protocol on one set of photos with a trained model and fusion (an artifact's)."""
    fold = PixelScores(prep, model, TextEvidence.build(prep.texts, prep.text.numpy()))
    fold.fusion = fusion
    return {"mode": f"{len(photos)} photos", **_result([test_fold(prep, fold, photos, seed)], seed)}


def _result(outputs: list[dict[str, np.ndarray]], seed: int) -> dict[str, Any]:
    merged = {key: np.concatenate([o[key] for o in outputs]) for key in outputs[0]}
    table = summarise(merged)
    per_fold = [summarise(o) for o in outputs]
    return {"folds": len(outputs), "seed": seed, "queries": int(len(merged["hybrid_ranks"])),
            "expert_pairs": int(len(merged["expert_label"])),
            "metrics": {k: round(v, 4) for k, v in table.items()},
            "std_over_folds": {k: round(mean_std([f[k] for f in per_fold])[1], 4) for k in table}}


ROWS = [
    ("with descriptions", "R@1", "described R@1", "≥ 0.88"),
    ("with descriptions", "R@5", "described R@5", "≥ 0.97"),
    ("with descriptions", "median p of the true photo", "described median p", "≥ 0.7"),
    ("mixed gallery, half described", "R@1 of the undescribed photos", "mixed undescribed R@1",
     "≥ 0.9 × pixels-only"),
    ("mixed gallery, half described", "R@1 of the described photos", "mixed described R@1", ""),
    ("all (expert pairs)", "ECE", "ECE", "≤ 0.03"),
]


def format_result(result: dict[str, Any]) -> str:
    m, s = result["metrics"], result["std_over_folds"]
    lines = [f"descriptions as evidence ({result['mode']}): {result['queries']} queries, "
             f"{result['expert_pairs']} expert pairs",
             "", "| photos | metric | pixels only | hybrid | target |", "|---|---|---:|---:|---|"]

    def cell(key: str) -> str:
        return f"{m[key]:.3f}" + (f" ± {s[key]:.3f}" if result["folds"] > 1 else "")

    for group, metric, key, target in ROWS:
        lines.append(f"| {group} | {metric} | {cell(key + ' pixels')} | {cell(key + ' hybrid')} "
                     f"| {target} |")
    lines.append(f"| expert pairs with descriptions | ECE | {m['ECE pixels, same pairs as with']:.3f} "
                 f"| {m['ECE hybrid, with descriptions']:.3f} | ≤ 0.03 |")
    lines.append(f"| expert pairs without descriptions | ECE | – "
                 f"| {m['ECE hybrid, without descriptions']:.3f} | ≤ 0.03 |")
    lines.append("")
    lines += [f"{key}: {value:.3f}" for key, value in m.items() if key.startswith("mixed undescribed:")]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m withsense_train.hybrid_eval",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args(argv)
    result = hybrid_kfold(args.data, folds=args.folds, cache_dir=args.cache, progress=not args.quiet)
    print(json.dumps(result, indent=1) if args.json else format_result(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
