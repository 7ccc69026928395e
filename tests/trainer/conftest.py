"""Trainer fixtures: a synthetic data set in the customer's format and its tower features,
extracted once per session into a content-addressed cache that persists in pytest's cache
folder (.pytest_cache), so later runs skip the towers entirely."""

from __future__ import annotations

from pathlib import Path

import pytest

SYNTHETIC_IMAGES = 80
SYNTHETIC_TEST_IMAGES = 20


@pytest.fixture(scope="session")
def synthetic_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    from withsense_train.synthetic import generate

    return generate(tmp_path_factory.mktemp("synthetic") / "data", images=SYNTHETIC_IMAGES,
                    test_images=SYNTHETIC_TEST_IMAGES, seed=0)


@pytest.fixture(scope="session")
def feature_cache_dir(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    # Keys are content hashes of tower weights and inputs: safe to share between runs.
    cache = getattr(request.config, "cache", None)  # None under -p no:cacheprovider
    if cache is None:
        return tmp_path_factory.mktemp("features")
    return Path(cache.mkdir("withsense_train_features"))


@pytest.fixture(scope="session")
def feature_cache(feature_cache_dir: Path):
    from withsense.model.catalog import model_config
    from withsense_train.features import FeatureCache

    return FeatureCache(model_config("lite0"), feature_cache_dir, progress=False)


@pytest.fixture(scope="session")
def synthetic_dataset(synthetic_dir: Path):
    from withsense_train.data import load_dataset

    return load_dataset(synthetic_dir)


@pytest.fixture(scope="session")
def synthetic_prepared(synthetic_dataset, feature_cache):
    """Features of every synthetic photo (center and flip) and text, computed once."""
    from withsense_train.prepare import prepare

    prep = prepare(synthetic_dataset, feature_cache, tta="flip", include_flagged=True)
    feature_cache.image(list(synthetic_dataset.test_images.values()), "flip")
    feature_cache.text([q.query_text for q in synthetic_dataset.test_queries])
    # The multilingual stage's e5 features too (its captions and the child prototypes).
    from withsense.compliance import CHILD_PROTOTYPE_TEXTS
    from withsense_train.multilingual import E5Features

    captions = [caption.text for caption in synthetic_dataset.captions.values()]
    E5Features(feature_cache.root, progress=False)(sorted(set(captions)) + list(CHILD_PROTOTYPE_TEXTS))
    return prep


@pytest.fixture(scope="session")
def quick_config():
    """A small, fast training config on Lite0 (the tests' tower)."""
    from withsense_train.config import TrainConfig

    return TrainConfig(model="lite0", ridge_lambda=3000.0, tta="flip", epochs=15, patience=5, val_photos=100,
                       batch_size=64, judgment_batch=128, folds=0, seed=0)


@pytest.fixture(scope="session")
def trained_synthetic(tmp_path_factory, synthetic_dir, synthetic_prepared, feature_cache_dir, quick_config):
    """One training run on the synthetic set (features already cached): (result, seconds)."""
    import time

    from withsense_train.train import train

    out = tmp_path_factory.mktemp("artifact") / "model"
    started = time.perf_counter()
    result = train(synthetic_dir, out, quick_config, cache_dir=feature_cache_dir, progress=False)
    return result, time.perf_counter() - started
