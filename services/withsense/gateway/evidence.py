"""Scoring of search candidates on all their evidence: pixels, descriptions, keywords.

The worker's Score kernel gives each candidate's pixels-only probability; here the gateway adds
what it alone holds (the descriptions' vectors and keywords that the store returned with the
candidate) and applies the artifact's fusion model (`withsense.model.fusion`, sent by the worker
in GetModelInfo). The fusion is a dot product of 5 features per candidate (numpy, no model),
so it runs here, next to the data, rather than shipping every candidate's description vectors
to the worker.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from withsense.keywords import coverage
from withsense.model.fusion import FusionModel, image_logits, summary_features
from withsense.store import StoreHit

PIXELS_ONLY = ("pixels",)


@dataclass(frozen=True)
class Fused:
    """Each candidate's probability; the evidence a candidate rests on, asked only for hits."""

    probabilities: np.ndarray
    features: np.ndarray | None  # None: pixels alone (no fusion model)
    fusion: FusionModel | None

    def evidence(self, index: int) -> tuple[str, ...]:
        if self.fusion is None or self.features is None:
            return PIXELS_ONLY
        return tuple(self.fusion.evidence(self.features[index:index + 1])[0])


def description_summaries(query: np.ndarray, candidates: Sequence[StoreHit],
                          ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(best, mean, count) of each candidate's description cosines to the query (0, 0, 0 for a
    photo without descriptions): the engine's (`StoreHit.description_summary`) where it gave
    them, else from every description row of every candidate in one product."""
    if candidates and all(c.description_summary is not None for c in candidates):
        summary = np.asarray([c.description_summary for c in candidates], dtype=np.float64)
        return summary[:, 0], summary[:, 1], summary[:, 2].astype(np.int64)
    counts = np.asarray([0 if c.descriptions is None else len(c.descriptions) for c in candidates])
    best, mean = np.zeros(len(candidates)), np.zeros(len(candidates))
    described = np.flatnonzero(counts)
    if len(described):
        rows = np.concatenate([candidates[i].descriptions for i in described])  # type: ignore[misc]
        cosines = rows.astype(np.float64) @ np.asarray(query, dtype=np.float64)
        starts = np.concatenate([[0], np.cumsum(counts[described])[:-1]])
        best[described] = np.maximum.reduceat(cosines, starts)
        mean[described] = np.add.reduceat(cosines, starts) / counts[described]
    return best, mean, counts


def fuse(fusion: FusionModel | None, query_words: Sequence[frozenset[int]], query: np.ndarray,
         candidates: Sequence[StoreHit], pixel_probabilities: np.ndarray) -> Fused:
    """The probability of each candidate. Without a fusion model: the pixels.
    ``query_words``: the query's content words (``keywords.query_words``), found once a search."""
    if fusion is None:
        return Fused(np.asarray(pixel_probabilities, dtype=np.float64), None, None)
    best, mean, counts = description_summaries(query, candidates)
    keyword = np.asarray([coverage(query_words, c.keywords.indices) if c.keywords else 0.0
                          for c in candidates])
    features = summary_features(image_logits(pixel_probabilities), best, mean, counts, keyword)
    return Fused(fusion.probability(features), features, fusion)


__all__ = ["PIXELS_ONLY", "Fused", "description_summaries", "fuse"]
