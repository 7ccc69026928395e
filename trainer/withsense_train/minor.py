"""The visual minor detector's training stage (issue 14): p(photo shows a child) from pixels.

Labels come from each photo's captions with the project's child-mention lexicon
(``withsense.compliance.mentions_child``): a photo **shows a child** when at least
``CHILD_VOTES`` (3) of its captions name one, **shows no child** when none do, and is
**ambiguous** with 1-2 ("girls" for young women; one annotator seeing what others do not).
Metrics are measured on the clear photos only. Ambiguous photos are trained on as children
(``ambiguous="positive"``): the conservative reading (one annotator in five may be the one who
saw the child), and the one that measured best at the operating point among positive / soft
(child with weight votes/5, no child with the rest) / exclude (docs/compliance.md).

The detector is a logistic regression on the standardised ``detector_inputs`` of the frozen
tower's features (``withsense.model.minor``). Its operating point is chosen for the law: the
highest threshold whose recall on clear child photos reaches ``recall_target`` plus a
``margin``, measured on out-of-fold predictions of a K-fold cross-validation by photo; the
trade-off curve (recall -> threshold, share of no-child photos withheld) is kept with it.

This is the only part of the model that learns from photos of children, and it learns from them
only to withhold them: the search heads are still trained without flagged photos
(``filtering.legal_filter``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold
from withsense.compliance import mentions_child
from withsense.model.minor import FEATURES, MinorDetector, detector_inputs

if TYPE_CHECKING:
    from withsense_train.run import TrainRun

log = logging.getLogger(__name__)
CHILD_VOTES = 3  # captions (of 5) that must name a child for a photo to "show a child"
AMBIGUOUS_MODES = ("soft", "exclude", "positive")
CURVE_RECALLS = (0.90, 0.93, 0.95, 0.97, 0.98, 0.99, 1.0)

# fit(x, y, sample_weight) -> predict(x) -> p
Fitter = Callable[[np.ndarray, np.ndarray, np.ndarray], Callable[[np.ndarray], np.ndarray]]


@dataclass
class MinorConfig:
    """Everything that decides the detector; recorded in the artifact."""

    c: float = 0.0005  # inverse L2 strength of the logistic regression (chosen by CV, docs)
    ambiguous: str = "positive"  # positive | soft | exclude
    recall_target: float = 0.97
    margin: float = 0.005  # the threshold is chosen for recall_target + margin on OOF predictions
    background_negatives: bool = True  # out-of-domain photos without people as "no child" rows
    folds: int = 5
    seed: int = 0

    def __post_init__(self) -> None:
        if self.ambiguous not in AMBIGUOUS_MODES:
            raise ValueError(f"ambiguous must be one of {AMBIGUOUS_MODES}, not {self.ambiguous!r}")
        if not 0.0 < self.recall_target <= 1.0:
            raise ValueError(f"recall_target {self.recall_target} is not in (0, 1]")


# --- labels ----------------------------------------------------------------------------------

def child_votes(captions_by_photo: dict[str, list[str]]) -> dict[str, tuple[int, int]]:
    """photo -> (captions naming a child, captions)."""
    return {photo: (sum(mentions_child(text) is not None for text in texts), len(texts))
            for photo, texts in captions_by_photo.items()}


def label_kinds(votes: np.ndarray) -> np.ndarray:
    """1 (shows a child), 0 (no child), -1 (ambiguous) from each photo's child votes."""
    votes = np.asarray(votes)
    return np.where(votes >= CHILD_VOTES, 1, np.where(votes == 0, 0, -1))


def training_rows(votes: np.ndarray, counts: np.ndarray, ambiguous: str,
                  ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(row index, label, weight) of the training rows of these photos: clear photos once;
    ambiguous ones by ``ambiguous`` (soft: twice, as child with weight votes/captions and as no
    child with the rest; positive: as child; exclude: not at all)."""
    kinds = label_kinds(votes)
    rows, labels, weights = [], [], []
    for i, kind in enumerate(kinds):
        if kind >= 0:
            rows.append(i), labels.append(int(kind)), weights.append(1.0)
        elif ambiguous == "positive":
            rows.append(i), labels.append(1), weights.append(1.0)
        elif ambiguous == "soft":
            share = float(votes[i]) / max(1, int(counts[i]))
            rows += [i, i]
            labels += [1, 0]
            weights += [share, 1.0 - share]
    return np.asarray(rows, dtype=np.int64), np.asarray(labels), np.asarray(weights)


# --- models ----------------------------------------------------------------------------------

def standardiser(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mean = x.mean(0)
    std = np.maximum(x.std(0), 1e-3)
    return mean.astype(np.float32), std.astype(np.float32)


def with_negatives(fitter: Fitter, negatives: np.ndarray | None) -> Fitter:
    """A fitter that also trains on these rows as "no child" (weight 1 each)."""
    if negatives is None or len(negatives) == 0:
        return fitter

    def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        return fitter(np.concatenate([x, negatives]), np.concatenate([y, np.zeros(len(negatives),
                      dtype=y.dtype)]), np.concatenate([w, np.ones(len(negatives))]))
    return fit


def logistic_fitter(c: float, seed: int = 0) -> Fitter:
    """Standardise on the training rows, then an L2 logistic regression."""
    def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        mean, std = standardiser(x)
        model = LogisticRegression(C=c, max_iter=3000, random_state=seed)
        model.fit((x - mean) / std, y, sample_weight=w)
        return lambda z: model.predict_proba((z - mean) / std)[:, 1]
    return fit


# --- cross-validation and the operating point -------------------------------------------------

def fold_ids(kinds: np.ndarray, folds: int, seed: int) -> np.ndarray:
    """Fold of each photo: stratified by child / no child / ambiguous, seeded."""
    ids = np.zeros(len(kinds), dtype=np.int64)
    splitter = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    for fold, (_, test) in enumerate(splitter.split(np.zeros(len(kinds)), kinds)):
        ids[test] = fold
    return ids


def out_of_fold(x: np.ndarray, votes: np.ndarray, counts: np.ndarray, fitter: Fitter, *,
                folds: int, seed: int, ambiguous: str) -> tuple[np.ndarray, np.ndarray]:
    """(out-of-fold p of every photo, fold id of every photo)."""
    ids = fold_ids(label_kinds(votes), folds, seed)
    oof = np.zeros(len(x))
    for fold in range(folds):
        train = np.flatnonzero(ids != fold)
        rows, labels, weights = training_rows(votes[train], counts[train], ambiguous)
        predict = fitter(x[train][rows], labels, weights)
        test = np.flatnonzero(ids == fold)
        oof[test] = predict(x[test])
    return oof, ids


def threshold_at_recall(p_child: np.ndarray, recall: float) -> float:
    """The highest threshold t with mean(p_child >= t) >= recall."""
    ordered = np.sort(np.asarray(p_child, dtype=np.float64))[::-1]
    if ordered.size == 0:
        raise ValueError("no child photos to choose a threshold on")
    need = int(np.ceil(min(recall, 1.0) * ordered.size - 1e-9))
    return float(ordered[max(need, 1) - 1])


def withheld(p: np.ndarray, threshold: float) -> float:
    return float(np.mean(np.asarray(p) >= threshold)) if len(p) else 0.0


def tradeoff_curve(p: np.ndarray, kinds: np.ndarray,
                   recalls: tuple[float, ...] = CURVE_RECALLS) -> list[dict[str, float]]:
    """For each recall: its threshold on these predictions and the share of no-child photos
    (and of ambiguous ones) that threshold withholds."""
    child, adult, ambiguous = p[kinds == 1], p[kinds == 0], p[kinds == -1]
    curve = []
    for recall in recalls:
        t = threshold_at_recall(child, recall)
        curve.append({"recall": round(withheld(child, t), 4), "threshold": round(t, 6),
                      "adults_withheld": round(withheld(adult, t), 4),
                      "ambiguous_withheld": round(withheld(ambiguous, t), 4)})
    return curve


def heldout_operating_point(oof: np.ndarray, kinds: np.ndarray, ids: np.ndarray, *,
                            recall_target: float, margin: float) -> dict[str, float]:
    """The operating point measured on held-out folds: for each fold, the threshold is chosen
    (recall_target + margin) on the OTHER folds' out-of-fold predictions, then applied to this
    fold; recall and adults withheld are pooled over the folds."""
    caught = children = adults_out = adults = 0
    for fold in np.unique(ids):
        pick, test = ids != fold, ids == fold
        t = threshold_at_recall(oof[pick & (kinds == 1)], recall_target + margin)
        caught += int(np.sum(oof[test & (kinds == 1)] >= t))
        children += int(np.sum(test & (kinds == 1)))
        adults_out += int(np.sum(oof[test & (kinds == 0)] >= t))
        adults += int(np.sum(test & (kinds == 0)))
    return {"recall": caught / max(1, children), "adults_withheld": adults_out / max(1, adults),
            "children": children, "adults": adults}


def route_metrics(oof: np.ndarray, kinds: np.ndarray, ids: np.ndarray, *,
                  recall_target: float, margin: float) -> dict[str, Any]:
    """ROC-AUC on clear photos, the held-out operating point, and adults withheld at fixed
    recalls of the pooled out-of-fold predictions."""
    clear = kinds >= 0
    point = heldout_operating_point(oof, kinds, ids, recall_target=recall_target, margin=margin)
    at_95, at_97 = (c["adults_withheld"] for c in tradeoff_curve(oof, kinds, (0.95, 0.97)))
    return {"auc": float(roc_auc_score(kinds[clear], oof[clear])),
            "heldout_recall": point["recall"], "heldout_adults_withheld": point["adults_withheld"],
            "adults_at_95": at_95, "adults_at_97": at_97}


# --- the stage -------------------------------------------------------------------------------

def check_labels(kinds: np.ndarray, folds: int) -> None:
    """ValueError unless every fold can hold photos of both clear kinds."""
    if np.sum(kinds == 1) < folds or np.sum(kinds == 0) < folds:
        raise ValueError(f"the minor detector needs at least {folds} photos that show a child "
                         f"and {folds} that show none; found {np.sum(kinds == 1)} and "
                         f"{np.sum(kinds == 0)}")


@dataclass
class MinorResult:
    detector: MinorDetector
    report: dict[str, Any]


def train_minor_detector(pooled: np.ndarray, logits: np.ndarray, votes: np.ndarray,
                         counts: np.ndarray, config: MinorConfig | None = None, *,
                         tta: str = "flip",
                         negatives: tuple[np.ndarray, np.ndarray] | None = None) -> MinorResult:
    """Cross-validates (for the threshold and the curve), then fits on every photo.

    pooled, logits: the tower's features of every photo with test-time augmentation ``tta``
    (as the worker computes them); votes, counts: captions naming a child, captions;
    negatives: (pooled, logits) of out-of-domain photos without people (``background``), added
    to every training fold as "no child" and never measured.
    """
    config = config or MinorConfig()
    x = detector_inputs(pooled, logits)
    votes, counts = np.asarray(votes), np.asarray(counts)
    kinds = label_kinds(votes)
    check_labels(kinds, config.folds)
    extra = detector_inputs(*negatives) if negatives is not None else np.zeros((0, x.shape[1]))
    fitter = with_negatives(logistic_fitter(config.c, config.seed), extra)
    oof, ids = out_of_fold(x, votes, counts, fitter, folds=config.folds, seed=config.seed,
                           ambiguous=config.ambiguous)
    threshold = threshold_at_recall(oof[kinds == 1], min(1.0, config.recall_target + config.margin))
    metrics = route_metrics(oof, kinds, ids, recall_target=config.recall_target, margin=config.margin)
    curve = tradeoff_curve(oof, kinds)
    rows, labels, weights = training_rows(votes, counts, config.ambiguous)
    inputs = np.concatenate([x[rows], extra])
    labels = np.concatenate([labels, np.zeros(len(extra), dtype=labels.dtype)])
    weights = np.concatenate([weights, np.ones(len(extra))])
    mean, std = standardiser(inputs)
    model = LogisticRegression(C=config.c, max_iter=3000, random_state=config.seed)
    model.fit((inputs - mean) / std, labels, sample_weight=weights)
    report = {
        "labels": {"rule": f"shows a child: >= {CHILD_VOTES} captions name one; no child: none; "
                           "ambiguous: 1-2 (not measured)",
                   "child": int(np.sum(kinds == 1)), "no_child": int(np.sum(kinds == 0)),
                   "ambiguous": int(np.sum(kinds == -1)),
                   "ambiguous_training": config.ambiguous,
                   "background_negatives": len(extra)},
        "config": asdict(config), "features": FEATURES,
        "operating_point": {"threshold": threshold, "chosen_for_recall": config.recall_target +
                            config.margin, "oof_adults_withheld": withheld(oof[kinds == 0], threshold)},
        "cross_validation": {"folds": config.folds, "seed": config.seed, **metrics},
        "note": "The only part of the model that learns from photos of children, and only to "
                "withhold them; the search heads are trained without flagged photos.",
    }
    detector = MinorDetector(mean=mean, std=std, weight=model.coef_[0].astype(np.float32),
                             bias=float(model.intercept_[0]), threshold=threshold, tta=tta,
                             curve=curve, meta={"training": report})
    return MinorResult(detector, report)


def photo_votes(dataset: Any, photos: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """(captions naming a child, captions) of each photo of a data set, in ``photos`` order."""
    by_image = dataset.captions_by_image
    tally = child_votes({p: [c.text for c in by_image.get(p, [])] for p in photos})
    return (np.asarray([tally[p][0] for p in photos]), np.asarray([tally[p][1] for p in photos]))


def minor_stage(run: TrainRun) -> None:
    """The training stage (after ``artifact``): the detector trained on every photo of the data
    set (flagged ones included: it is the one part that learns from them, to withhold them), with
    the heads' test-time augmentation, saved as ``minor_detector.safetensors`` with its section
    in config.json and the model card. Skipped, with a warning and a note in the model card,
    when the captions do not label enough photos of both kinds: an artifact without a detector
    fails closed (the gateway withholds every photo it indexes)."""
    from withsense.model.minor import MINOR_FILE

    assert run.dataset is not None
    try:
        section = train_into(run.dataset, run.cache, run.out, tta=run.config.tta)
    except ValueError as exc:
        log.warning("no visual minor detector trained: %s; the gateway will withhold every "
                    "photo indexed with this artifact", exc)
        run.card["minor_detector"] = {"skipped": str(exc)}
        return
    run.add_component("minor_detector", [MINOR_FILE], section)


def train_into(dataset: Any, cache: Any, artifact_dir: Path, config: MinorConfig | None = None,
               *, tta: str = "flip") -> dict[str, Any]:
    """Trains the detector on ``dataset`` and adds it to the artifact folder; returns its
    config.json section (the model card's ``minor_detector`` too)."""
    from withsense.model.minor import attach_minor_detector

    from withsense_train.background import background_features

    config = config or MinorConfig()
    photos = sorted(dataset.train_images)
    votes, counts = photo_votes(dataset, photos)
    check_labels(label_kinds(votes), config.folds)  # before any tower pass
    pooled, logits = cache.image([dataset.train_images[p] for p in photos], tta)
    negatives = background_features(cache.feature_tower, tta, config.seed) \
        if config.background_negatives else None
    result = train_minor_detector(pooled, logits, votes, counts, config, tta=tta,
                                  negatives=negatives)
    return attach_minor_detector(Path(artifact_dir), result.detector)


def main(argv: list[str] | None = None) -> int:
    """``python -m withsense_train.minor --data DIR --artifact DIR [--cache DIR] [--json]``:
    trains the detector and adds it to an existing artifact (the trainer does this itself)."""
    import argparse
    import json

    from withsense.model.artifact import CARD_FILE
    from withsense.model.catalog import model_config

    from withsense_train.data import load_dataset
    from withsense_train.features import FeatureCache
    from withsense_train.prepare import torch_threads

    parser = argparse.ArgumentParser(description=main.__doc__.split("\n")[0] if main.__doc__ else "")
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    artifact_config = json.loads((args.artifact / "config.json").read_text())
    model = "lite2" if "lite2" in artifact_config["image_tower"]["timm_name"] else "lite0"
    cache = FeatureCache(model_config(model), args.cache, progress=not args.json)
    with torch_threads(1):
        section = train_into(load_dataset(args.data), cache, args.artifact,
                             tta=artifact_config["head"].get("tta", "none"))
    card_path = args.artifact / CARD_FILE
    card = json.loads(card_path.read_text()) if card_path.is_file() else {}
    card["minor_detector"] = section
    card_path.write_text(json.dumps(card, indent=2) + "\n")
    report = section["training"]
    report["curve"] = section["curve"]
    if args.json:
        print(json.dumps(report, indent=2))
    else:
        cv = report["cross_validation"]
        print(f"minor detector: threshold {report['operating_point']['threshold']:.4f}; "
              f"{cv['folds']}-fold CV: ROC-AUC {cv['auc']:.3f}, held-out recall "
              f"{cv['heldout_recall']:.3f}, adults withheld {cv['heldout_adults_withheld']:.3f}")
        for point in report["curve"]:
            print(f"  recall {point['recall']:.3f}: threshold {point['threshold']:.4f}, adults "
                  f"withheld {point['adults_withheld']:.3f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
