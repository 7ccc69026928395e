"""The multilingual map's training stage, and the Russian test set it is measured on."""

from __future__ import annotations

import numpy as np
import pytest
from withsense.model.language import MULTILINGUAL, text_path
from withsense.model.multilingual import CONFIG_KEY, MULTILINGUAL_FILE, load_map
from withsense_train.multilingual import fit_text_map, load_paraphrases, load_test_set


def test_ridge_recovers_a_linear_map():
    rng = np.random.default_rng(0)
    weight, bias = rng.standard_normal((6, 10)), rng.standard_normal(6)
    inputs = rng.standard_normal((200, 10))
    fitted = fit_text_map(inputs, inputs @ weight.T + bias, ridge_lambda=1e-6)
    np.testing.assert_allclose(fitted.weight, weight, atol=1e-4)
    np.testing.assert_allclose(fitted.bias, bias, atol=1e-4)
    # The intercept is not shrunk: a strong ridge still predicts the mean target.
    flat = fit_text_map(inputs, inputs @ weight.T + bias, ridge_lambda=1e9)
    np.testing.assert_allclose(flat.bias, (inputs @ weight.T + bias).mean(axis=0), atol=1e-3)


def test_the_russian_test_set_is_complete_and_in_russian():
    queries = load_test_set()
    kinds = [q.kind for q in queries]
    assert kinds.count("adult") >= 200 and kinds.count("child") >= 50
    assert len({q.photo for q in queries}) == len(queries)  # one query per photo
    for query in queries:
        assert query.en and query.ru and query.query_id.count("#") == 1
        assert text_path(query.ru) == MULTILINGUAL, query.ru
    assert len(load_paraphrases()) >= 20


@pytest.mark.slow
def test_training_adds_the_map_to_the_artifact(trained_synthetic, synthetic_prepared):
    """The stage fits the map into the trained text space: a caption's e5 vector, mapped,
    lands next to the text head's vector of the same caption, and far from other captions'."""
    import json

    import torch
    from withsense.model.multilingual import MultilingualTower

    result, _ = trained_synthetic
    config = json.loads((result.artifact_dir / "config.json").read_text())
    assert MULTILINGUAL_FILE in config["files"]
    entry = config[CONFIG_KEY]
    assert entry["fit"]["captions"] > 0
    assert CONFIG_KEY in result.card and result.card[CONFIG_KEY]["files"][MULTILINGUAL_FILE]
    text_map = load_map(result.artifact_dir, config)
    assert text_map is not None
    prep = synthetic_prepared
    texts = sorted({prep.texts[i] for i in prep.positives(prep.filtered.photos)[0]})[:40]
    mapped = text_map(MultilingualTower().encode(texts))
    with torch.no_grad():
        rows = torch.as_tensor([prep.text_index[t] for t in texts])
        heads = result.model.embed_text(prep.text[rows]).numpy()
    similarity = mapped @ heads.T
    assert np.mean(similarity.argmax(axis=1) == np.arange(len(texts))) > 0.5, similarity.round(2)
