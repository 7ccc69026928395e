"""The ensemble towers (Lite2 + Lite0 on Lite2's pixels) end to end: trained on the synthetic
set, saved, loaded by the serving runtime (eager and ONNX Runtime), which gives the trainer's
vectors; every network's features cached apart."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch


@pytest.fixture(scope="module")
def tiny_dataset(tmp_path_factory):
    """30 synthetic photos: two networks' features of each are what this test pays for."""
    from withsense_train.data import load_dataset
    from withsense_train.synthetic import generate

    return load_dataset(generate(tmp_path_factory.mktemp("tiny") / "data", images=30, test_images=0,
                                 seed=1))


@pytest.fixture(scope="module")
def ensemble_trained(tmp_path_factory, tiny_dataset, feature_cache_dir, quick_config):
    from withsense_train.train import train

    config = replace(quick_config, model="lite2-lite0", epochs=2, val_photos=6)
    out = tmp_path_factory.mktemp("ensemble") / "model"
    return train(tiny_dataset.root, out, config, cache_dir=feature_cache_dir, progress=False,
                 dataset=tiny_dataset)


@pytest.mark.slow
def test_ensemble_artifact_round_trip(ensemble_trained, tiny_dataset, feature_cache_dir):
    from PIL import Image
    from withsense.model.artifact import load_artifact
    from withsense.model.catalog import model_config
    from withsense.model.runtime import ModelRuntime
    from withsense_train.features import FeatureCache

    path = ensemble_trained.artifact_dir
    loaded = load_artifact(path)
    assert loaded.model.config.pooled_dim == 2560
    assert [c["timm_name"] for c in loaded.config["image_tower"]["companions"]] == ["tf_efficientnet_lite0"]

    cache = FeatureCache(model_config("lite2-lite0"), feature_cache_dir, progress=False)
    names = sorted(tiny_dataset.train_images)[:5]
    paths = [tiny_dataset.train_images[n] for n in names]
    pooled, logits = cache.image(paths, "flip")
    computed = cache.computed["images"]
    again, _ = cache.image(paths, "flip")
    assert cache.computed["images"] == computed  # both networks' features come from the cache
    np.testing.assert_array_equal(again, pooled)
    lite2, _ = FeatureCache(model_config("lite2"), feature_cache_dir, progress=False).image(paths, "flip")
    np.testing.assert_array_equal(pooled[:, :1280], lite2)  # the first network's cache is Lite2's own
    with torch.no_grad():
        expected = ensemble_trained.model.embed_image(torch.from_numpy(pooled), torch.from_numpy(logits))

    photos = [Image.open(p) for p in paths]
    for backend in ("torch", "onnx"):
        runtime = ModelRuntime(path, device="cpu", image_backend=backend)
        assert runtime.image_tower.backend == backend
        np.testing.assert_allclose(runtime.embed_images(photos), expected.numpy(), atol=2e-4)
