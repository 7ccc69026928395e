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
