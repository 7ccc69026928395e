"""A training run's component stages: files recorded in the artifact, checked when it loads."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
import torch
from withsense.model.artifact import ArtifactError, load_artifact, save_artifact
from withsense.model.fused import FusedModel, HeadConfig
from withsense_train.config import TrainConfig
from withsense_train.run import TrainRun


def tiny_artifact(out: Path) -> Path:
    head = HeadConfig(pooled_dim=8, num_classes=4, text_dim=6, dim=6, concept_top_k=2)
    model = FusedModel(head, torch.randn(4, 6, generator=torch.Generator().manual_seed(0)))
    return save_artifact(model, out, name="tiny", image_tower={}, text_tower={"dim": 6},
                         concept_prompts=[], zero_shot=False, card={})


def test_a_component_is_hashed_into_the_artifact_and_checked_on_load(tmp_path: Path) -> None:
    out = tiny_artifact(tmp_path / "artifact")
    run = TrainRun(tmp_path, out, TrainConfig(model="lite0"))
    (out / "extra.bin").write_bytes(b"weights")
    run.add_component("extra", ["extra.bin"], {"kind": "test"})

    digest = hashlib.sha256(b"weights").hexdigest()
    files = json.loads((out / "config.json").read_text())["files"]
    assert files["extra.bin"] == digest and "heads.safetensors" in files
    assert run.card["extra"] == {"kind": "test", "files": {"extra.bin": digest}}
    load_artifact(out, verify_towers=False)

    (out / "extra.bin").write_bytes(b"tampered")
    with pytest.raises(ArtifactError, match=r"extra.bin hashes to .*config.json says"):
        load_artifact(out, verify_towers=False)
    (out / "extra.bin").unlink()
    with pytest.raises(ArtifactError, match="extra.bin is missing"):
        load_artifact(out, verify_towers=False)


def test_a_component_must_write_its_files_and_name_a_new_section(tmp_path: Path) -> None:
    out = tiny_artifact(tmp_path / "artifact")
    run = TrainRun(tmp_path, out, TrainConfig(model="lite0"))
    with pytest.raises(ArtifactError, match="never.bin is missing"):
        run.add_component("ghost", ["never.bin"], {})
    (out / "a.bin").write_bytes(b"a")
    run.add_component("a", ["a.bin"], {})
    with pytest.raises(ValueError, match="already has a section 'a'"):
        run.add_component("a", ["a.bin"], {})


def test_config_choices_are_checked_and_folds_default_to_the_cli() -> None:
    from withsense_train.config import CHOICES

    assert TrainConfig().folds == 5
    for name, allowed in CHOICES.items():
        with pytest.raises(ValueError, match=f"{name} must be one of"):
            TrainConfig(**{name: "nonsense"})
        assert getattr(TrainConfig(), name) in allowed
