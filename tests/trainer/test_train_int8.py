"""Training on the int8 image tower's features: the artifact records the variant and ships the
calibration table, and the serving runtime computes the very features the heads learnt from."""

from __future__ import annotations

import dataclasses
import logging

import numpy as np
import pytest
import torch

pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def trained_int8(tmp_path_factory, synthetic_dir, synthetic_prepared, feature_cache_dir, quick_config):
    from withsense_train.train import train

    config = dataclasses.replace(quick_config, image_precision="int8")
    out = tmp_path_factory.mktemp("artifact-int8") / "model"
    return train(synthetic_dir, out, config, cache_dir=feature_cache_dir, progress=False)


def test_int8_artifact_serves_the_features_its_heads_learnt_from(
    trained_int8, synthetic_dataset, feature_cache_dir, caplog,
):
    from PIL import Image
    from withsense.model.artifact import load_artifact
    from withsense.model.catalog import model_config
    from withsense.model.image_int8 import CALIBRATION_FILE, CONFIG_KEY, RECIPE, read_table, table_sha256
    from withsense.model.runtime import ModelRuntime
    from withsense_train.features import FeatureCache

    path = trained_int8.artifact_dir
    config = load_artifact(path).config
    section = config[CONFIG_KEY]
    assert section["heads_trained_on"] == "int8" and section["file"] == CALIBRATION_FILE
    assert section["recipe"] == RECIPE  # the worker refuses an int8 graph of another recipe
    assert CALIBRATION_FILE in config["files"]  # hashed: loading checks it
    table = read_table(path / CALIBRATION_FILE)
    assert section["table_sha256"] == table_sha256(table)

    runtime = ModelRuntime(path, device="cpu", image_backend="onnx")
    assert runtime.image_tower.precision == "int8"
    names = sorted(synthetic_dataset.train_images)[:5]  # an odd batch
    cache = FeatureCache(model_config("lite0"), feature_cache_dir, progress=False)
    cache.use_int8_table(table)
    pooled, logits = cache.image([synthetic_dataset.train_images[n] for n in names], "flip")
    with torch.no_grad():
        expected = trained_int8.model.eval().embed_image(torch.from_numpy(pooled), torch.from_numpy(logits))
    served = runtime.embed_images([Image.open(synthetic_dataset.train_images[n]) for n in names])
    np.testing.assert_allclose(served, expected.numpy(), atol=2e-4)

    with caplog.at_level(logging.WARNING):
        fp32 = runtime.with_image_backend("onnx", "fp32")
    assert fp32.image_tower.precision == "fp32" and "MODEL MISMATCH" in caplog.text


def test_fp32_artifact_records_its_variant(trained_synthetic):
    from withsense.model.artifact import load_artifact
    from withsense.model.image_int8 import trained_on

    result, _ = trained_synthetic
    assert trained_on(load_artifact(result.artifact_dir).config) == "fp32"


def test_evaluation_refuses_int8_features_it_cannot_remake(trained_int8, tmp_path):
    """`withsense evaluate` and the fusion stage score an artifact on the features its heads
    learnt from: an int8 artifact of another recipe, or without its table, is refused."""
    from withsense.model.artifact import load_artifact
    from withsense.model.image_int8 import CONFIG_KEY, RECIPE, Int8Error
    from withsense_train.evaluate import cache_for_artifact

    artifact = load_artifact(trained_int8.artifact_dir)
    config, section = artifact.config, artifact.config[CONFIG_KEY]
    assert cache_for_artifact(config, tmp_path, False, artifact.path).int8_table is not None
    first_recipe = {**config, CONFIG_KEY: {**section, "recipe": {**RECIPE, "weights": "int8 per channel"}}}
    with pytest.raises(Int8Error, match="another recipe"):
        cache_for_artifact(first_recipe, tmp_path, False, artifact.path)
    with pytest.raises(Int8Error, match="ships no calibration table"):
        cache_for_artifact({**config, CONFIG_KEY: {**section, "file": ""}}, tmp_path, False, artifact.path)
