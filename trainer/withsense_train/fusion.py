"""Training of the evidence fusion model (`withsense.model.fusion`) by leaving captions out.

Each photo of the customer's data has 5 captions. A caption used as a query plays the user's
search; the *other* captions of the candidate photos play the descriptions that photographers
and users wrote. For every (query, candidate) pair a random number of descriptions, 0 to 4, is
drawn (never the query itself), so the model sees photos with none, one or several
descriptions. The label is "the caption was written for this photo".

1. `fit_fusion` fits a logistic regression on those pairs (every query against every photo of
   the split: 1 positive, the rest negatives), balanced per group so that the rare positives count.
2. It then calibrates the regression's logit on expert judgments of the same photos (label:
   expert mean >= 3), with the descriptions again drawn 0 to 4, by a second logistic regression
   on `[z, described, described * z]`: one slope and intercept per group. That is what makes
   p comparable between photos with and without descriptions.

Everything is seeded; on the 100 validation photos it takes about a second.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from sklearn.linear_model import LogisticRegression
from withsense.keywords import content_tokens, token_indices
from withsense.model.fusion import FEATURES, FusionModel, feature_matrix

MAX_DESCRIPTIONS = 4
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


def _group_balanced_weights(label: np.ndarray, described: np.ndarray) -> np.ndarray:
    """Each (group, label) cell weighs the same in total."""
    weight = np.zeros(len(label))
    for g in (0.0, 1.0):
        for y in (0, 1):
            cell = (described == g) & (label == y)
            if cell.any():
                weight[cell] = len(label) / (4 * cell.sum())
    return weight


def fit_fusion(train_x: np.ndarray, train_y: np.ndarray, calib_x: np.ndarray,
               calib_y: np.ndarray, *, seed: int = 0) -> FusionModel:
    """The fusion regression on leave-captions-out pairs, calibrated on expert pairs."""
    described = train_x[:, FEATURES.index("described")]
    regression = LogisticRegression(C=REGULARISATION_C, max_iter=2000, random_state=seed)
    regression.fit(train_x, train_y, sample_weight=_group_balanced_weights(train_y, described))
    weights = tuple(float(w) for w in regression.coef_[0])
    intercept = float(regression.intercept_[0])
    z = calib_x @ np.asarray(weights) + intercept
    g = calib_x[:, FEATURES.index("described")]
    calibrator = LogisticRegression(C=100.0, max_iter=2000, random_state=seed)
    calibrator.fit(np.stack([z, g, g * z], axis=1), calib_y)
    w_z, w_g, w_gz = (float(v) for v in calibrator.coef_[0])
    reference = tuple(float(v) for v in train_x[train_y == 0].mean(axis=0))
    return FusionModel(
        weights=weights, intercept=intercept,
        calibration=(w_z, float(calibrator.intercept_[0]), w_gz, w_g),
        reference=reference,
        metrics={"train_pairs": int(len(train_y)), "train_positives": int(train_y.sum()),
                 "calibration_pairs": int(len(calib_y)),
                 "calibration_positives": int(calib_y.sum())},
    )


__all__ = ["PairSet", "TextEvidence", "draw_descriptions", "fit_fusion", "leave_captions_out",
           "pair_features"]
