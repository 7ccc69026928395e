"""Training of the evidence fusion model (`withsense.model.fusion`) by leaving captions out.

Each photo of the customer's data has 5 captions. A caption used as a query plays the user's
search; the *other* captions of the candidate photos play the descriptions that photographers
and users wrote. For every (query, candidate) pair a random number of descriptions, 0 to 4, is
drawn (never the query itself), so the model sees photos with none, one or several
descriptions. The label is "the caption was written for this photo".

1. `fit_fusion` fits a linear logit on the described pairs (every query against every photo of
   the split: 1 positive, the rest negatives) with a listwise objective: the softmax over each
   query's gallery should pick the photo the caption was written for. That is the ranking a
   search shows, and it weighs the near-miss photos of similar scenes (the competitors that
   matter) rather than the many easy negatives a pointwise regression mostly sees
   (`objective="pointwise"`, the class-balanced logistic regression shipped first, stays for
   comparison: `benchmarks/fusion_variants.py`).
2. It then calibrates the regression's logit on expert judgments of the same photos (label:
   expert mean >= 3), with the descriptions again drawn 0 to 4, by Platt scaling on the
   described pairs. A pair without descriptions keeps the pixel model's probability, which was
   calibrated on the same expert judgments: that is what makes p comparable between photos
   with and without descriptions.

Everything is seeded; on the 100 validation photos it takes about a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from sklearn.linear_model import LogisticRegression
from withsense.keywords import content_tokens, token_indices
from withsense.model.fusion import (
    FEATURES,
    FUSION_FILE,
    REGRESSION_FEATURES,
    FusionModel,
    feature_matrix,
)

from withsense_train.prepare import Prepared, embed

if TYPE_CHECKING:
    from withsense_train.run import TrainRun

MAX_DESCRIPTIONS = 4
_COLUMNS = [FEATURES.index(f) for f in REGRESSION_FEATURES]
#: L2 strength of both regressions (features are O(1), thousands of pairs: a light touch).
REGULARISATION_C = 1.0


@dataclass(frozen=True)
class TextEvidence:
    """What the fusion features need of the texts: joint-space vectors and keyword forms."""

    vectors: np.ndarray  # [T, D] unit rows: the text head's embedding of every text
    words: list[list[frozenset[int]]]  # per text: the index set of each content word
    forms: list[frozenset[int]]  # per text: every index of its content words

    @classmethod
    def build(cls, texts: Sequence[str], vectors: np.ndarray) -> TextEvidence:
        words = [[w for w in (token_indices(t) for t in dict.fromkeys(content_tokens(text))) if w]
                 for text in texts]
        forms = [frozenset().union(*w) if w else frozenset() for w in words]
        return cls(np.asarray(vectors, dtype=np.float64), words, forms)

    def with_vectors(self, vectors: np.ndarray) -> TextEvidence:
        """The same texts embedded by another text head (the keyword forms do not change)."""
        return TextEvidence(np.asarray(vectors, dtype=np.float64), self.words, self.forms)

    def coverage(self, query: int, descriptions: Sequence[int]) -> float:
        words = self.words[query]
        if not words or not descriptions:
            return 0.0
        have = frozenset().union(*(self.forms[d] for d in descriptions))
        return sum(1 for w in words if w & have) / len(words)


def pair_features(evidence: TextEvidence, query: np.ndarray, image_logit: np.ndarray,
                  descriptions: Sequence[Sequence[int]]) -> np.ndarray:
    """Features of pairs: query text rows, image logits, description text rows per pair."""
    cosines = [evidence.vectors[list(d)] @ evidence.vectors[q] if len(d) else np.zeros(0)
               for q, d in zip(query, descriptions, strict=True)]
    keyword = np.asarray([evidence.coverage(q, d) for q, d in zip(query, descriptions, strict=True)])
    return feature_matrix(image_logit, cosines, keyword)


def draw_descriptions(rng: np.random.Generator, captions: Sequence[int], exclude: int,
                      count: int | None = None) -> list[int]:
    """`count` (default: uniform 0..4) of a photo's caption rows, never `exclude`."""
    pool = [c for c in captions if c != exclude]
    n = int(rng.integers(0, MAX_DESCRIPTIONS + 1)) if count is None else count
    n = min(n, len(pool))
    return sorted(rng.choice(pool, size=n, replace=False).tolist()) if n else []


@dataclass(frozen=True)
class PairSet:
    query: np.ndarray  # text rows
    photo: np.ndarray  # photo rows
    label: np.ndarray  # 0/1
    descriptions: list[list[int]]


def leave_captions_out(queries: np.ndarray, query_photo: np.ndarray, gallery: np.ndarray,
                       captions: dict[int, list[int]], rng: np.random.Generator) -> PairSet:
    """Every query against every gallery photo, 0..4 descriptions drawn for each pair."""
    q = np.repeat(queries, len(gallery))
    p = np.tile(gallery, len(queries))
    label = (np.repeat(query_photo, len(gallery)) == p).astype(np.int64)
    descriptions = [draw_descriptions(rng, captions.get(int(photo), []), int(text))
                    for text, photo in zip(q, p, strict=True)]
    return PairSet(q, p, label, descriptions)


OBJECTIVES = ("listwise", "pointwise")
#: L2 strength of the listwise fit, on standardised features (docs/model.md: 1e-3 and 1e-2 differ
#: by less than the fold-to-fold noise).
LISTWISE_L2 = 1e-2


def fit_fusion(train_x: np.ndarray, train_y: np.ndarray, calib_x: np.ndarray,
               calib_y: np.ndarray, *, groups: np.ndarray | None = None,
               objective: str = "listwise", seed: int = 0) -> FusionModel:
    """The regression on the described leave-captions-out pairs, calibrated on the described
    expert pairs. Undescribed pairs need neither: the pixel model is theirs.

    ``objective``: ``listwise`` (the default) ranks each query's own photo above the other
    described photos of its gallery (``groups``: the query of each pair), which is what a search
    shows; ``pointwise`` is a class-balanced logistic regression over all pairs (the objective
    shipped first; docs/model.md compares them)."""
    if objective not in OBJECTIVES:
        raise ValueError(f"objective must be one of {OBJECTIVES}, not {objective!r}")
    described = train_x[:, FEATURES.index("described")] > 0
    x, y = train_x[described][:, _COLUMNS], train_y[described]
    if objective == "listwise":
        if groups is None:
            raise ValueError("the listwise objective needs `groups`: the query of each pair")
        weights, intercept = listwise_logit(x, y, np.asarray(groups)[described])
    else:
        weights, intercept = _fit_pointwise(x, y, seed)
    reference = tuple(float(v) for v in x[y == 0].mean(axis=0))
    metrics: dict[str, Any] = {
        "objective": objective, "train_pairs": int(len(y)), "train_positives": int(y.sum()),
        "train_pairs_undescribed": int((~described).sum())}
    calib = calib_x[:, FEATURES.index("described")] > 0
    z = calib_x[calib][:, _COLUMNS] @ np.asarray(weights) + intercept
    label = calib_y[calib]
    metrics |= {"calibration_pairs": int(len(label)), "calibration_positives": int(label.sum())}
    if len(np.unique(label)) < 2:
        # Too few judged pairs to calibrate (tiny data sets): the regression's own probability.
        metrics["calibrated"] = False
        calibration = (1.0, 0.0)
    else:
        calibrator = LogisticRegression(C=100.0, max_iter=2000, random_state=seed)
        calibrator.fit(z[:, None], label)
        calibration = (float(calibrator.coef_[0][0]), float(calibrator.intercept_[0]))
        metrics["calibrated"] = True
    return FusionModel(weights=weights, intercept=intercept, calibration=calibration,
                       reference=reference, metrics=metrics)


def _fit_pointwise(x: np.ndarray, y: np.ndarray, seed: int) -> tuple[tuple[float, ...], float]:
    regression = LogisticRegression(C=REGULARISATION_C, max_iter=2000, random_state=seed,
                                     class_weight="balanced")
    regression.fit(x, y)
    return tuple(float(w) for w in regression.coef_[0]), float(regression.intercept_[0])


def listwise_logit(x: np.ndarray, y: np.ndarray, groups: np.ndarray,
                  l2: float = LISTWISE_L2) -> tuple[tuple[float, ...], float]:
    """Softmax cross-entropy of each query's own photo(s) against its gallery (the pairs of its
    group), linear in the standardised features, L2 on the weights; returned on the raw
    features' scale, centred (mean logit 0 over the pairs: a softmax has no intercept; the
    Platt calibration sets the level)."""
    from scipy.optimize import minimize

    mean, std = x.mean(axis=0), x.std(axis=0) + 1e-9
    xs = (x - mean) / std
    order = np.argsort(groups, kind="stable")
    xs, positive, groups = xs[order], y[order].astype(np.float64), groups[order]
    starts = np.r_[0, np.flatnonzero(np.diff(groups)) + 1]
    sizes = np.diff(np.r_[starts, len(groups)])
    n_positive = np.add.reduceat(positive, starts)  # groups without a positive add nothing
    n_groups = max(int((n_positive > 0).sum()), 1)

    def loss(w: np.ndarray) -> tuple[float, np.ndarray]:
        z = xs @ w
        top = np.maximum.reduceat(z, starts)
        e = np.exp(z - np.repeat(top, sizes))
        total = np.add.reduceat(e, starts)
        value = float(n_positive @ (top + np.log(total)) - positive @ z)
        softmax = e / np.repeat(total, sizes) * np.repeat(n_positive, sizes)
        grad = xs.T @ (softmax - positive)
        return value / n_groups + l2 * float(w @ w), grad / n_groups + 2 * l2 * w

    w = minimize(loss, np.zeros(xs.shape[1]), jac=True, method="L-BFGS-B").x
    weights = w / std
    return tuple(float(v) for v in weights), float(-(mean @ weights))


def unit_rows(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    return x / np.linalg.norm(x, axis=-1, keepdims=True)


def sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class PixelScores:
    """A calibrated pixel model as logits of any text-photo pair, the texts in its text space,
    and (once trained) the fusion model on top."""

    def __init__(self, prep: Prepared, model: Any, evidence: TextEvidence) -> None:
        images, texts = embed(model, prep)
        self.images = unit_rows(images.numpy())
        self.text = unit_rows(texts.numpy())  # the query side of the pixel logits
        # Descriptions are embedded like queries (the worker's EmbedText): the same text space.
        self.evidence = evidence.with_vectors(self.text)
        self.scale, self.bias = float(model.scale.detach()), float(model.bias.detach())
        self.fusion: FusionModel | None = None

    def image_logits(self, text_rows: np.ndarray, photo_rows: np.ndarray) -> np.ndarray:
        """[Q, G] logits of every text against every photo."""
        return self.scale * (self.text[text_rows] @ self.images[photo_rows].T) + self.bias

    def pair_logits(self, text_rows: np.ndarray, photo_rows: np.ndarray) -> np.ndarray:
        cos = np.sum(self.text[text_rows] * self.images[photo_rows], axis=1)
        return self.scale * cos + self.bias


def captions_of(prep: Prepared, photos: list[str]) -> dict[int, list[int]]:
    text_rows, photo_rows = prep.positives(photos)
    out: dict[int, list[int]] = {}
    for t, p in zip(text_rows.tolist(), photo_rows.tolist(), strict=True):
        out.setdefault(p, []).append(t)
    return out


def train_fusion(prep: Prepared, fold: PixelScores, photos: list[str], seed: int, *,
                 objective: str = "listwise") -> FusionModel:
    """Fusion fitted by leaving captions out on `photos`, calibrated on their expert pairs."""
    rng = np.random.default_rng(seed)
    captions = captions_of(prep, photos)
    text_rows, photo_rows = prep.positives(photos)
    gallery = np.asarray(sorted(captions))
    pairs = leave_captions_out(text_rows, photo_rows, gallery, captions, rng)
    logits = fold.image_logits(text_rows, gallery).reshape(-1)
    train_x = pair_features(fold.evidence, pairs.query, logits, pairs.descriptions)
    judged = prep.judgments(photos, expert_only=True)
    calib_desc = [draw_descriptions(rng, captions.get(int(p), []), int(t))
                  for t, p in zip(judged["text"], judged["photo"], strict=True)]
    calib_x = pair_features(fold.evidence, judged["text"],
                            fold.pair_logits(judged["text"], judged["photo"]), calib_desc)
    return fit_fusion(train_x, pairs.label, calib_x, judged["label"], groups=pairs.query,
                      objective=objective, seed=seed)



def fusion_stage(run: TrainRun) -> None:
    """The training stage: the fusion model on the validation split of the run (the photos the
    heads were calibrated on, unseen by their fit), saved as fusion.json."""
    fusion = fit_on_split(run.prep, run.fit.model, run.val_photos, run.config.seed)
    fusion.save(run.out)
    run.add_component("fusion", [FUSION_FILE], fusion_card(fusion, len(run.val_photos)))


def fit_on_split(prep: Prepared, model: Any, photos: list[str], seed: int) -> FusionModel:
    evidence = TextEvidence.build(prep.texts, prep.text.numpy())
    return train_fusion(prep, PixelScores(prep, model, evidence), photos, seed)


def fusion_card(fusion: FusionModel, photos: int) -> dict[str, Any]:
    return {"what": "p(match | query, photo, descriptions): linear fusion of the pixel logit, "
                    f"description cosines and keyword coverage ({fusion.metrics.get('objective')} "
                    "objective), calibrated per group on expert pairs",
            "trained_on": f"{photos} validation photos, leaving captions out",
            "features": list(FEATURES), **fusion.metrics}


__all__ = ["OBJECTIVES", "PairSet", "PixelScores", "TextEvidence", "captions_of", "draw_descriptions",
           "fit_fusion", "fusion_stage", "leave_captions_out", "listwise_logit", "pair_features", "sigmoid",
           "train_fusion"]

