"""Adds the evidence fusion model to an artifact trained elsewhere: the `fusion` stage of
`withsense train` alone, on the artifact's validation split (listed in its model card).

    python -m withsense_train.add_fusion --artifact DIR --data ../shared/data/withsense
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from withsense.model.artifact import CARD_FILE, load_artifact, record_files
from withsense.model.fusion import FUSION_FILE

from withsense_train.data import load_dataset
from withsense_train.evaluate import cache_for_artifact
from withsense_train.fusion import fit_on_split, fusion_card
from withsense_train.prepare import prepare


def add_to_artifact(artifact_dir: Path, data_dir: Path, cache_dir: Path | None = None) -> dict[str, Any]:
    """Fits the fusion model for an artifact trained elsewhere, on its validation split (from its
    model card), and records fusion.json in it (the `fusion` stage of `withsense train` alone)."""
    artifact = load_artifact(artifact_dir)
    split = artifact.card.get("validation_split", {})
    if not split.get("photos"):
        raise ValueError(f"{artifact_dir}: its model card lists no validation split")
    dataset = load_dataset(data_dir)
    cache = cache_for_artifact(artifact.config, cache_dir, True, artifact.path)
    prep = prepare(dataset, cache, tta=getattr(artifact.model.config, "tta", "none"),
                   prompts=artifact.config.get("concept_prompts"))
    photos = [p for p in split["photos"] if p in prep.photo_index]
    fusion = fit_on_split(prep, artifact.model, photos, int(split.get("seed", 0)))
    fusion.save(artifact_dir)
    card = {**artifact.card, "fusion": {**fusion_card(fusion, len(photos)),
                                        "files": record_files(artifact_dir, [FUSION_FILE])}}
    (Path(artifact_dir) / CARD_FILE).write_text(json.dumps(card, indent=2) + "\n")
    return card["fusion"]


def main() -> None:
    parser = argparse.ArgumentParser(description="Fit the evidence fusion model for an artifact "
                                     "on its validation split and record fusion.json in it.")
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path)
    args = parser.parse_args()
    print(json.dumps(add_to_artifact(args.artifact, args.data, args.cache), indent=2))


if __name__ == "__main__":
    main()
