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

import numpy as np

from withsense.keywords import coverage
from withsense.model.fusion import FusionModel, description_cosines, feature_matrix, image_logits
from withsense.store import StoreHit

PIXELS_ONLY = ("pixels",)


def fuse(fusion: FusionModel | None, query_words: Sequence[frozenset[int]], query: np.ndarray,
         candidates: Sequence[StoreHit],
         pixel_probabilities: np.ndarray) -> tuple[np.ndarray, list[tuple[str, ...]]]:
    """(probability, evidence kinds) of each candidate. Without a fusion model: the pixels.
    ``query_words``: the query's content words (``keywords.query_words``), found once a search."""
    if fusion is None:
        return np.asarray(pixel_probabilities, dtype=np.float64), [PIXELS_ONLY] * len(candidates)
    cosines = [description_cosines(query, c.descriptions) for c in candidates]
    keyword = np.asarray([coverage(query_words, c.keywords.indices) if c.keywords else 0.0
                          for c in candidates])
    features = feature_matrix(image_logits(pixel_probabilities), cosines, keyword)
    return fusion.probability(features), [tuple(e) for e in fusion.evidence(features)]


__all__ = ["PIXELS_ONLY", "fuse"]
