"""The semantic child check: is a query embedding close to a child-concept prototype?

The lexicon misses paraphrases ("a person of five years", "a first-grader", misspellings), so
the gateway embeds ``CHILD_PROTOTYPE_TEXTS`` once at start (through the worker, with the same
text tower as queries), and blocks a query whose embedding has cosine similarity at or above a
threshold to any prototype. The threshold comes from ``choose_threshold`` on labelled child and
adult query embeddings, so that at most a chosen share of adult queries is blocked.

On the English path the check compares the text tower's own vectors (MiniLM, mean-pooled and
normalised, before the trained text head): that space does not move when the heads are
retrained, so neither does the false-block rate of a threshold chosen in it (in the trained
space it moved from 2.0% to 6-8% of innocent queries between artifacts trained on different
photos; docs/model.md, "Semantic child-query threshold"). The worker returns these "check
vectors" beside the joint-space ones (``EmbedTextRequest.check_vectors``); on the multilingual
path the check vector is the joint one (that path's prototypes and threshold are its own).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

# Short, plain descriptions of children, in the style of captions and queries (the text tower
# was trained on captions). Generic scenes pull innocent queries ("two dogs playing" was 0.42 to
# "small children playing together"), so scenes are worded as scenes of children;
# scripts/semantic_prototypes_report.py compares sets. English first; a few Russian ones for
# Russian queries, whose embeddings land near their English counterparts only if the tower is
# multilingual.
CHILD_PROTOTYPE_TEXTS: list[str] = [
    "a child",
    "a young child playing",
    "a little kid",
    "a group of small children playing",
    "a little boy",
    "a little girl",
    "a baby",
    "an infant",
    "a newborn baby sleeping",
    "a toddler walking",
    "a schoolchild with a backpack",
    "schoolchildren in a classroom",
    "a teenager",
    "a teenage boy",
    "a teenage girl",
    "a preschooler at kindergarten",
    "children at a playground",
    "a mother holding her baby",
    "a father with his young son",
    "a kid in a swimming pool",
    "ребёнок",
    "маленький мальчик",
    "маленькая девочка",
    "дети играют",
    "младенец",
]


# The space the English path's check compares in, as config.json records it
# (``semantic_child_check.space``); a threshold recorded without it was chosen in the trained
# text space by an earlier trainer and does not apply to check vectors.
CHECK_SPACE = "text_tower"
# The fallback when the artifact has no threshold for CHECK_SPACE: chosen on the customer's
# 5,000 captions in MiniLM space (1% of captions without child terms blocked; 0.43 with the
# current rule on all 1,000 photos; the fold artifacts chose 0.41-0.43). Higher = fewer blocks.
DEFAULT_TOWER_THRESHOLD = 0.45


def tower_threshold(config: Mapping[str, Any]) -> float | None:
    """The artifact's threshold for the English path's check vectors (config.json), or None
    when it has none chosen in CHECK_SPACE (an older artifact's trained-space threshold)."""
    check = config.get("semantic_child_check") or {}
    threshold = config.get("semantic_child_threshold")
    if threshold is None or check.get("space") != CHECK_SPACE:
        return None
    return float(threshold)


def _unit_rows(matrix: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    if np.any(norms == 0) or not np.all(np.isfinite(norms)):
        raise ValueError("prototype vectors must be finite and non-zero")
    return (matrix / norms).astype(np.float32)


class SemanticChildCheck:
    """Max cosine similarity of a vector to child prototypes, against a threshold.

    ``prototypes``: [P, D] embeddings (unit vectors expected; re-normalised defensively).
    ``labels``: optional texts of the prototypes, used to explain a decision.
    """

    def __init__(
        self,
        prototypes: np.ndarray,
        threshold: float,
        labels: Sequence[str] | None = None,
    ) -> None:
        matrix = np.asarray(prototypes, dtype=np.float32)
        if matrix.ndim != 2 or matrix.shape[0] == 0 or matrix.shape[1] == 0:
            raise ValueError(f"prototypes must be a non-empty [P, D] matrix, got {matrix.shape}")
        if not -1.0 <= float(threshold) <= 1.0:
            raise ValueError(f"threshold {threshold} is not a cosine similarity in [-1, 1]")
        if labels is not None and len(labels) != matrix.shape[0]:
            raise ValueError(f"{len(labels)} labels for {matrix.shape[0]} prototypes")
        self.prototypes = _unit_rows(matrix)
        self.threshold = float(threshold)
        self.labels = tuple(labels) if labels is not None else None

    @property
    def dim(self) -> int:
        return int(self.prototypes.shape[1])

    def _unit(self, vec: np.ndarray) -> np.ndarray:
        v = np.asarray(vec, dtype=np.float32).reshape(-1)
        if v.shape[0] != self.dim:
            raise ValueError(f"embedding has dimension {v.shape[0]}, prototypes {self.dim}")
        norm = float(np.linalg.norm(v))
        if norm == 0.0 or not np.isfinite(norm):
            raise ValueError("embedding must be finite and non-zero")
        return v / norm

    def nearest(self, vec: np.ndarray) -> tuple[float, str | None]:
        """The highest cosine similarity to a prototype, and that prototype's label."""
        sims = self.prototypes @ self._unit(vec)
        best = int(np.argmax(sims))
        label = self.labels[best] if self.labels is not None else None
        return float(sims[best]), label

    def similarity(self, vec: np.ndarray) -> float:
        """Max cosine similarity of ``vec`` to the prototypes."""
        return self.nearest(vec)[0]

    def is_child(self, vec: np.ndarray) -> bool:
        return self.similarity(vec) >= self.threshold

    def similarities(self, matrix: np.ndarray) -> np.ndarray:
        """Max similarity of each row of an [N, D] matrix (for calibrating on a data set)."""
        rows = _unit_rows(np.asarray(matrix, dtype=np.float32).reshape(-1, self.dim))
        return (rows @ self.prototypes.T).max(axis=1)


def _finite_1d(name: str, values: np.ndarray) -> np.ndarray:
    arr = np.asarray(values, dtype=np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"{name} is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} has non-finite values")
    return arr


def choose_threshold(
    child_sims: np.ndarray,
    adult_sims: np.ndarray,
    max_false_block_rate: float = 0.02,
) -> float:
    """The smallest threshold whose false-block rate on adult queries is <= the bound.

    A query is blocked when its similarity is >= the threshold, so the false-block rate of ``t``
    is ``mean(adult_sims >= t)``. Lower thresholds block more children, so the smallest one that
    keeps the adult rate within ``max_false_block_rate`` gives the best child recall the bound
    allows. With ``k = floor(rate * n_adult)`` adult queries allowed to be blocked, that is just
    above the (k+1)-th highest adult similarity (ties at that value are all let through), or -1
    (block everything) when the bound allows every adult query to be blocked.

    ``child_sims`` does not move the threshold; it is checked (non-empty, finite) so that a
    caller cannot calibrate without looking at recall: see ``threshold_report``.
    """
    if not 0.0 <= max_false_block_rate <= 1.0:
        raise ValueError(f"max_false_block_rate {max_false_block_rate} is not in [0, 1]")
    _finite_1d("child_sims", child_sims)
    adult = np.sort(_finite_1d("adult_sims", adult_sims))[::-1]
    allowed = int(np.floor(max_false_block_rate * adult.size + 1e-9))
    if allowed >= adult.size:
        return -1.0
    return float(np.nextafter(adult[allowed], np.inf))


def threshold_report(
    child_sims: np.ndarray, adult_sims: np.ndarray, threshold: float
) -> dict[str, float]:
    """Child recall (share blocked) and adult false-block rate of a threshold."""
    child = _finite_1d("child_sims", child_sims)
    adult = _finite_1d("adult_sims", adult_sims)
    return {
        "threshold": float(threshold),
        "child_recall": float(np.mean(child >= threshold)),
        "false_block_rate": float(np.mean(adult >= threshold)),
        "n_child": float(child.size),
        "n_adult": float(adult.size),
    }
