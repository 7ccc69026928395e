"""Choosing the semantic child-query threshold on data, in the text tower's frozen space.

The gateway blocks an English query whose text-tower vector (MiniLM before the trained head:
``withsense.compliance.semantic.CHECK_SPACE``) is closer than a threshold to one of the
child-concept prototypes (`withsense.compliance.CHILD_PROTOTYPE_TEXTS`). The trainer chooses it
on the captions it trains on and stores it in the artifact: captions that the lexicon flags are
the child set, the others the adult set, and the threshold is the smallest that blocks at most
`max_false_block_rate` of the adult captions. The space does not depend on the heads, so the
threshold moves only with the captions (0.41-0.43 over five 800-photo folds), and the labelled
queries of tests/compliance/data, which it never sees, measure it
(benchmarks/bench_query_threshold.py).
"""

from __future__ import annotations

import argparse
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from withsense.compliance import (
    CHECK_SPACE,
    CHILD_PROTOTYPE_TEXTS,
    SemanticChildCheck,
    choose_threshold,
    mentions_child,
    semantic_text,
    threshold_report,
)

if TYPE_CHECKING:
    from withsense_train.run import TrainRun

log = logging.getLogger(__name__)
DEFAULT_MAX_FALSE_BLOCK_RATE = 0.01
# The multilingual path's rule blocks at most this share of the (English) adult captions through
# e5 and the map: Russian queries that only look like child queries ("котёнок играет") sit
# nearer the prototypes in that space than captions do, and at 1% the path blocked 5-7% of the
# labelled Russian innocent queries. Chosen by benchmarks/bench_query_threshold.py on a fixed
# half of those queries (the other half reports it): 0.5% halves the false blocks, and
# Russian child paraphrases stay as blocked (docs/model.md, "Semantic child-query threshold").
MULTILINGUAL_MAX_FALSE_BLOCK_RATE = 0.005


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
    # Judged as the gateway judges queries: without words the lexicon knows are no child.
    adult_sims = check.similarities(embed_texts([semantic_text(c) for c in adult]))
    threshold = choose_threshold(child_sims, adult_sims, max_false_block_rate)
    report = threshold_report(child_sims, adult_sims, threshold)
    report["max_false_block_rate"] = max_false_block_rate
    return {k: float(v) for k, v in report.items()}


def write_threshold(artifact_dir: Path, captions_file: Path,
                    max_false_block_rate: float = DEFAULT_MAX_FALSE_BLOCK_RATE) -> dict[str, float]:
    """Chooses the threshold in the text tower's space and records it in the artifact's
    config.json (`semantic_child_threshold`, with the measurement under `semantic_child_check`)."""
    from withsense.descriptions import read_descriptions
    from withsense.model.towers import TextTower

    tower = TextTower()
    captions = [c for texts in read_descriptions(captions_file).values() for c in texts]

    def embed(texts: list[str]) -> np.ndarray:
        with torch.inference_mode():
            return tower.encode(texts).numpy()

    report = choose_semantic_threshold(embed, captions, max_false_block_rate)
    record_threshold(artifact_dir, {**report, "captions": str(captions_file.name)})
    return report


def record_threshold(artifact_dir: Path, report: dict[str, Any]) -> None:
    """The threshold in the artifact's config.json, where the worker reads it, with the space
    it was chosen in (the gateway ignores a threshold of another space)."""
    from withsense.model.artifact import update_config

    report = {**report, "space": CHECK_SPACE}
    update_config(artifact_dir, {"semantic_child_threshold": report["threshold"],
                                 "semantic_child_check": report})


def semantic_stage(run: TrainRun) -> None:
    """The training stage: the threshold chosen in the text tower's space on the data set's
    captions, recorded in config.json and in the model card (``semantic_child_check``).
    Skipped, with a warning, when the captions do not have both kinds."""
    from withsense_train.data import CAPTIONS_TXT

    assert run.dataset is not None
    captions = [caption.text for caption in run.dataset.captions.values()]

    try:
        report: dict[str, Any] = choose_semantic_threshold(run.cache.text, captions)
    except ValueError as exc:
        log.warning("semantic child-query threshold not chosen: %s", exc)
        return
    has_txt = (run.dataset.root / CAPTIONS_TXT).is_file()
    report["captions"] = Path(CAPTIONS_TXT).name if has_txt else "train_dataset.csv"
    record_threshold(run.out, report)
    run.card["semantic_child_check"] = {**report, "space": CHECK_SPACE}


def main() -> None:
    parser = argparse.ArgumentParser(description="Choose the semantic child-query threshold on "
                                     "captions, in the text tower's space, and record it in an "
                                     "artifact.")
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--captions", type=Path, required=True,
                        help="captions file (Flickr captions.txt or CSV image,description)")
    parser.add_argument("--max-false-block-rate", type=float, default=DEFAULT_MAX_FALSE_BLOCK_RATE)
    args = parser.parse_args()
    print(json.dumps(write_threshold(args.artifact, args.captions, args.max_false_block_rate), indent=2))


if __name__ == "__main__":
    main()
