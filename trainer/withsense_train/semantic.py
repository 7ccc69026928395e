"""Choosing the semantic child-query threshold on data, in the model's own text space.

The gateway blocks a query whose embedding is closer than a threshold to one of the
child-concept prototypes (`withsense.compliance.CHILD_PROTOTYPE_TEXTS`). The right threshold
depends on the text head, so the trainer chooses it on the captions it trains on and stores it in
the artifact: captions that the lexicon flags are the child set, the others the adult set, and the
threshold is the smallest that blocks at most `max_false_block_rate` of the adult captions.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from withsense.compliance import (
    CHILD_PROTOTYPE_TEXTS,
    SemanticChildCheck,
    choose_threshold,
    mentions_child,
    semantic_text,
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
    # Judged as the gateway judges queries: without words the lexicon knows are no child.
    adult_sims = check.similarities(embed_texts([semantic_text(c) for c in adult]))
    threshold = choose_threshold(child_sims, adult_sims, max_false_block_rate)
    report = threshold_report(child_sims, adult_sims, threshold)
    report["max_false_block_rate"] = max_false_block_rate
    return {k: float(v) for k, v in report.items()}


def write_threshold(artifact_dir: Path, captions_file: Path,
                    max_false_block_rate: float = DEFAULT_MAX_FALSE_BLOCK_RATE) -> dict[str, float]:
    """Chooses the threshold in the artifact's text space and records it in its config.json
    (`semantic_child_threshold`, with the measurement under `semantic_child_check`)."""
    from withsense.descriptions import read_descriptions
    from withsense.model.artifact import CONFIG_FILE, load_artifact
    from withsense.model.towers import TextTower

    artifact = load_artifact(artifact_dir)
    tower = TextTower()
    captions = [c for texts in read_descriptions(captions_file).values() for c in texts]

    def embed(texts: list[str]) -> np.ndarray:
        with torch.inference_mode():
            return artifact.model.embed_text(tower.encode(texts)).numpy()

    report = choose_semantic_threshold(embed, captions, max_false_block_rate)
    config_path = Path(artifact_dir) / CONFIG_FILE
    config = json.loads(config_path.read_text())
    config["semantic_child_threshold"] = report["threshold"]
    config["semantic_child_check"] = {**report, "captions": str(captions_file.name)}
    config_path.write_text(json.dumps(config, indent=2) + "\n")
    return report


def main() -> None:
    parser = argparse.ArgumentParser(description="Choose the semantic child-query threshold on "
                                     "captions, in an artifact's text space, and record it there.")
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--captions", type=Path, required=True,
                        help="captions file (Flickr captions.txt or CSV image,description)")
    parser.add_argument("--max-false-block-rate", type=float, default=DEFAULT_MAX_FALSE_BLOCK_RATE)
    args = parser.parse_args()
    print(json.dumps(write_threshold(args.artifact, args.captions, args.max_false_block_rate), indent=2))


if __name__ == "__main__":
    main()
