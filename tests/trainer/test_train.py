"""Training on a synthetic set: fast, better than zero-shot on held-out photos, calibrated,
reproducible; the artifact round trip; the CLI hooks."""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from withsense.model.artifact import DEFAULT_ARTIFACT_DIR, ArtifactError, load_artifact
from withsense_train.calibration import calibrate
from withsense_train.config import TrainConfig
from withsense_train.evaluate import (
    FIRST_APPROACH,
    TRAINED,
    TRAINED_UNCALIBRATED,
    ZERO_SHOT,
    evaluate_test,
    kfold_evaluate,
)
from withsense_train.train import artifact_bytes

pytestmark = pytest.mark.slow
MAX_ARTIFACT_BYTES = 10 * 1024 * 1024


def test_synthetic_set_trains_in_under_a_minute_and_beats_zero_shot(
    trained_synthetic, synthetic_dataset, feature_cache,
) -> None:
    result, seconds = trained_synthetic
    assert seconds < 60, f"training took {seconds:.1f} s"
    # Held-out photos the training never saw (the synthetic test half).
    test = evaluate_test(synthetic_dataset, result.model, feature_cache)["all"]
    assert test[TRAINED]["MRR"] > test[ZERO_SHOT]["MRR"] + 0.1, test
    assert test[TRAINED]["R@1"] > test[ZERO_SHOT]["R@1"], test
    # And on its own validation split, next to the baselines in the card.
    split = result.metrics
    assert set(split) == {FIRST_APPROACH, ZERO_SHOT, TRAINED_UNCALIBRATED, TRAINED}
    assert split[TRAINED]["MRR"] > split[ZERO_SHOT]["MRR"]


def test_calibration_lowers_the_calibration_error(
    synthetic_dataset, synthetic_prepared, quick_config,
) -> None:
    result = kfold_evaluate(synthetic_dataset, quick_config, folds=3, prep=synthetic_prepared,
                            progress=False, include_flagged=True)
    for section in ("compliant", "all"):
        table = result[section]
        assert table[TRAINED]["ECE"] < table[TRAINED_UNCALIBRATED]["ECE"], table
        assert table[TRAINED]["R@1"] > table[ZERO_SHOT]["R@1"], table
        assert table[TRAINED]["pairs"] > 0


def test_platt_fit_recovers_scale_and_bias(trained_synthetic) -> None:
    import copy

    model = copy.deepcopy(trained_synthetic[0].model)
    rng = np.random.default_rng(0)
    cosine = rng.uniform(-0.2, 1.0, 5000)
    label = rng.random(5000) < 1 / (1 + np.exp(-(12.0 * cosine - 7.0)))
    fitted = calibrate(model, cosine, label.astype(int))
    assert fitted.fitted
    assert abs(fitted.scale - 12.0) < 1.5 and abs(fitted.bias + 7.0) < 1.0
    assert float(model.scale.detach()) == pytest.approx(fitted.scale)
    assert float(model.bias.detach()) == pytest.approx(fitted.bias)
    assert fitted.ece_after <= fitted.ece_before


def test_artifact_round_trip(trained_synthetic, synthetic_dataset, feature_cache) -> None:
    from PIL import Image
    from withsense.model.runtime import ModelRuntime

    result, _ = trained_synthetic
    path = result.artifact_dir
    assert artifact_bytes(path) < MAX_ARTIFACT_BYTES
    loaded = load_artifact(path)
    assert not loaded.zero_shot and loaded.model.config == result.model.config
    names = sorted(synthetic_dataset.train_images)[:6]
    pooled, logits = feature_cache.image([synthetic_dataset.train_images[n] for n in names], "flip")
    texts = ["three red squares on a black background", "a yellow triangle"]
    text = torch.from_numpy(feature_cache.text(texts))
    with torch.no_grad():
        for model in (result.model, loaded.model):
            model.eval()
        before = result.model.embed_image(torch.from_numpy(pooled), torch.from_numpy(logits))
        after = loaded.model.embed_image(torch.from_numpy(pooled), torch.from_numpy(logits))
        assert torch.allclose(before, after, atol=1e-6)
        assert torch.allclose(result.model.embed_text(text), loaded.model.embed_text(text), atol=1e-6)
    assert float(loaded.model.scale.detach()) == pytest.approx(float(result.model.scale.detach()))
    assert float(loaded.model.bias.detach()) == pytest.approx(float(result.model.bias.detach()))

    # The serving runtime (towers + flip TTA from the artifact) gives the trainer's vectors.
    runtime = ModelRuntime(path, device="cpu")
    photos = [Image.open(synthetic_dataset.train_images[n]) for n in names]
    served = runtime.embed_images(photos)
    np.testing.assert_allclose(served, before.numpy(), atol=2e-4)
    np.testing.assert_allclose(runtime.embed_texts(texts), result.model.embed_text(text).detach().numpy(),
                               atol=2e-4)

    card = loaded.card
    assert card["data"]["sha256"] == synthetic_dataset.data_hash()
    assert card["filtering"]["photos_flagged"] > 0
    assert card["training"]["config"]["model"] == "lite0"
    assert card["calibration"]["fitted"]
    assert set(card["metrics"]["validation_split"]) >= {FIRST_APPROACH, ZERO_SHOT, TRAINED}


@pytest.mark.parametrize("tower, key, name", [
    ("image_tower", "weights_sha256", "image tower tf_efficientnet_lite0"),
    ("text_tower", "weights_sha256", "text tower sentence-transformers/all-MiniLM-L6-v2"),
])
def test_mismatching_tower_hash_is_refused(trained_synthetic, tmp_path: Path, tower: str, key: str,
                                           name: str) -> None:
    copy = tmp_path / "artifact"
    shutil.copytree(trained_synthetic[0].artifact_dir, copy)
    config = json.loads((copy / "config.json").read_text())
    config[tower][key] = "0" * 64
    (copy / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match=name):
        load_artifact(copy)


def test_training_is_reproducible(trained_synthetic, synthetic_dir, feature_cache_dir, quick_config,
                                  tmp_path: Path) -> None:
    from withsense_train.train import train

    again = train(synthetic_dir, tmp_path / "again", quick_config, cache_dir=feature_cache_dir,
                  progress=False)
    first = json.loads((trained_synthetic[0].artifact_dir / "config.json").read_text())
    second = json.loads((again.artifact_dir / "config.json").read_text())
    assert first["files"] == second["files"]  # heads.safetensors hashes alike
    assert again.best_epoch == trained_synthetic[0].best_epoch


def test_second_run_uses_the_cache_only(synthetic_prepared, synthetic_dataset, feature_cache_dir) -> None:
    from withsense.model.catalog import model_config
    from withsense_train.features import FeatureCache

    cache = FeatureCache(model_config("lite0"), feature_cache_dir, progress=False)
    cache.image(list(synthetic_dataset.train_images.values()), "flip")
    cache.text([c.text for c in synthetic_dataset.captions.values()])
    cache.concepts(model_config("lite0")["concept_prompts"])
    assert cache.computed == {"images": 0, "texts": 0}
    assert cache._image_tower is None and cache._text_tower is None  # no tower was loaded


def _parse(add, argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add(parser)
    return parser.parse_args(argv)


def test_cli_hooks(synthetic_dir, synthetic_prepared, feature_cache_dir, tmp_path: Path, capsys) -> None:
    from withsense_train import cli

    out = tmp_path / "cli-model"
    args = _parse(cli.add_train_arguments, [
        "--data", str(synthetic_dir), "--out", str(out), "--cache", str(feature_cache_dir),
        "--config", "lite0", "--tta", "flip", "--epochs", "3", "--folds", "0", "--json", "--quiet",
    ])
    assert cli.config_from_args(args) == TrainConfig(model="lite0", tta="flip", epochs=3, folds=0)
    assert cli.train_command(args) == 0
    trained = json.loads(capsys.readouterr().out)
    assert trained["artifact_bytes"] < MAX_ARTIFACT_BYTES
    assert (out / "heads.safetensors").is_file()

    args = _parse(cli.add_evaluate_arguments, [
        "--data", str(synthetic_dir), "--artifact", str(out), "--cache", str(feature_cache_dir),
        "--json", "--quiet",
    ])
    assert cli.evaluate_command(args) == 0
    evaluated = json.loads(capsys.readouterr().out)
    assert evaluated["mode"] == "test half"
    assert set(evaluated["test"]["all"]) == {FIRST_APPROACH, ZERO_SHOT, TRAINED}

    broken = tmp_path / "broken"
    shutil.copytree(synthetic_dir, broken)
    (broken / "ExpertAnnotations.tsv").write_text("a.jpg\tb.jpg#2\t1\n")
    args = _parse(cli.add_train_arguments, ["--data", str(broken), "--out", str(tmp_path / "x"),
                                            "--cache", str(feature_cache_dir), "--quiet"])
    assert cli.train_command(args) == 2
    assert "ExpertAnnotations.tsv:1: expected 5 tab-separated columns" in capsys.readouterr().err


@pytest.mark.skipif(not (DEFAULT_ARTIFACT_DIR / "config.json").is_file(),
                    reason="no trained artifact shipped yet")
def test_shipped_artifact() -> None:
    artifact = load_artifact(DEFAULT_ARTIFACT_DIR)
    assert artifact_bytes(DEFAULT_ARTIFACT_DIR) < MAX_ARTIFACT_BYTES
    assert not artifact.zero_shot
    card = artifact.card
    assert card["filtering"]["photos_flagged"] > 0
    assert card["calibration"]["fitted"]
    metrics = card["metrics"]["validation_split"]
    assert metrics[TRAINED]["R@5"] > metrics[ZERO_SHOT]["R@5"]
    assert not list(DEFAULT_ARTIFACT_DIR.glob("*.jpg")), "photos must never be copied into the repository"
