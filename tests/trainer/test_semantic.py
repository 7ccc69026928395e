"""The semantic child-query threshold is chosen on captions in the model's own text space."""

from __future__ import annotations

import numpy as np
import pytest
from withsense_train.semantic import choose_semantic_threshold

pytestmark = pytest.mark.slow


def test_threshold_bounds_false_blocks_on_real_text_embeddings(model_runtime):
    captions = [
        "A boy jumps into a pool .", "Two girls play on the grass .", "A child on a swing .",
        "A toddler eats an ice cream .", "A baby sleeps in a crib .", "Kids run on the beach .",
        "A man climbs a rock .", "A woman walks a dog .", "Two men ride bicycles .",
        "A dog runs through the snow .", "A crowd at a concert .", "A surfer rides a wave .",
        "An old man sits on a bench .", "A woman in a red coat crosses the street .",
        "Three dogs play in a field .", "A man is crossing a mountain pass on a metal bridge .",
    ]
    report = choose_semantic_threshold(model_runtime.embed_texts, captions, max_false_block_rate=0.0)
    assert report["false_block_rate"] == 0.0 and report["n_child"] == 6 and report["n_adult"] == 10
    assert 0.0 < report["child_recall"] <= 1.0
    sims = model_runtime.embed_texts(["A man is crossing a mountain pass on a metal bridge ."])
    assert np.isfinite(sims).all()


def test_needs_both_kinds_of_captions(model_runtime):
    with pytest.raises(ValueError, match="both"):
        choose_semantic_threshold(model_runtime.embed_texts, ["A man climbs a rock ."])


def test_the_trained_threshold_is_chosen_in_the_tower_space(trained_synthetic, synthetic_dataset,
                                                           feature_cache):
    """The stage chooses on the captions' text-tower vectors: the trained head plays no part,
    so retraining the heads cannot move it (the joint-space threshold it replaced did move)."""
    import json

    import torch
    from withsense.compliance import CHECK_SPACE, tower_threshold

    result, _ = trained_synthetic
    config = json.loads((result.artifact_dir / "config.json").read_text())
    assert config["semantic_child_check"]["space"] == CHECK_SPACE
    captions = [caption.text for caption in synthetic_dataset.captions.values()]
    in_tower = choose_semantic_threshold(feature_cache.text, captions)
    assert tower_threshold(config) == pytest.approx(in_tower["threshold"], abs=1e-9)
    assert config["semantic_child_check"]["false_block_rate"] <= 0.01

    def joint(texts: list[str]) -> np.ndarray:
        with torch.no_grad():
            return result.model.embed_text(torch.from_numpy(feature_cache.text(texts))).numpy()

    assert choose_semantic_threshold(joint, captions)["threshold"] != pytest.approx(
        in_tower["threshold"], abs=1e-3)


def test_the_shipped_artifact_has_a_tower_threshold():
    import json

    from withsense.compliance import tower_threshold
    from withsense.model.artifact import DEFAULT_ARTIFACT_DIR

    config_file = DEFAULT_ARTIFACT_DIR / "config.json"
    if not config_file.is_file():
        pytest.skip("no trained artifact shipped")
    assert 0.3 < tower_threshold(json.loads(config_file.read_text())) < 0.6
