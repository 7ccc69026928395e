"""Choosing the semantic child-query threshold on data, in the model's own text space.

The gateway blocks a query whose embedding is closer than a threshold to one of the
child-concept prototypes (`withsense.compliance.CHILD_PROTOTYPE_TEXTS`). The right threshold
depends on the text head, so the trainer chooses it on the captions it trains on and stores it in
the artifact: captions that the lexicon flags are the child set, the others the adult set, and the
threshold is the smallest that blocks at most `max_false_block_rate` of the adult captions.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from withsense.compliance import (
    CHILD_PROTOTYPE_TEXTS,
    SemanticChildCheck,
    choose_threshold,
    mentions_child,
    threshold_report,
)

DEFAULT_MAX_FALSE_BLOCK_RATE = 0.01


def choose_semantic_threshold(
    embed_texts: Callable[[list[str]], np.ndarray], captions: list[str],
    max_false_block_rate: float = DEFAULT_MAX_FALSE_BLOCK_RATE,
) -> dict[str, float]:
    """Threshold and its measured child recall / false-block rate on these captions."""
    child = [c for c in captions if mentions_child(c)]
    adult = [c for c in captions if not mentions_child(c)]
    if not child or not adult:
        raise ValueError("need captions both with and without child terms to choose a threshold")
    check = SemanticChildCheck(embed_texts(list(CHILD_PROTOTYPE_TEXTS)), threshold=1.0)
    child_sims = check.similarities(embed_texts(child))
    adult_sims = check.similarities(embed_texts(adult))
    threshold = choose_threshold(child_sims, adult_sims, max_false_block_rate)
    report = threshold_report(child_sims, adult_sims, threshold)
    report["max_false_block_rate"] = max_false_block_rate
    return {k: float(v) for k, v in report.items()}
