"""The model artifact: a folder with `heads.safetensors`, `config.json` and `model_card.json`,
and any further component files (each listed in `config.json` `files`).

`config.json` records the towers (names, package versions, weight hashes, preprocessing), the
head dims and the file hashes; loading refuses an artifact whose tower hashes or dims do not
match what is installed, saying which, because heads trained on other tower features would
silently give wrong vectors, and one whose listed files are missing or hash otherwise.

Writing: `save_artifact` writes the heads, config and card; `record_files` adds the hashes of
further files a component wrote into the folder; `update_config` sets top-level config keys.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from safetensors.torch import load_file, save_file

from withsense.model.fused import FusedModel, HeadConfig
from withsense.model.towers import image_weights_path, sha256_file, text_weights_path

FORMAT_VERSION = 1
HEADS_FILE = "heads.safetensors"
CONFIG_FILE = "config.json"
CARD_FILE = "model_card.json"
DEFAULT_ARTIFACT_DIR = Path(__file__).parent / "artifacts" / "default"


class ArtifactError(RuntimeError):
    """The artifact is missing, malformed, or does not fit the installed towers."""


@dataclass
class Artifact:
    model: FusedModel
    config: dict[str, Any]
    card: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def version(self) -> str:
        return str(self.config.get("version", "unknown"))

    @property
    def zero_shot(self) -> bool:
        return bool(self.config.get("zero_shot", False))


def save_artifact(
    model: FusedModel,
    out_dir: Path,
    *,
    name: str,
    image_tower: dict[str, Any],
    text_tower: dict[str, Any],
    concept_prompts: list[str],
    zero_shot: bool,
    card: dict[str, Any] | None = None,
) -> Path:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    tensors = {key: value.detach().cpu().contiguous() for key, value in model.state_dict().items()}
    save_file(tensors, str(out_dir / HEADS_FILE))
    heads_hash = sha256_file.__wrapped__(out_dir / HEADS_FILE)
    config = {
        "format_version": FORMAT_VERSION,
        "name": name,
        "version": f"{name}-{'zeroshot' if zero_shot else 'trained'}-{heads_hash[:10]}",
        "zero_shot": zero_shot,
        "head": asdict(model.config),
        "image_tower": image_tower,
        "text_tower": text_tower,
        "concept_prompts": concept_prompts,
        "files": {HEADS_FILE: heads_hash},
    }
    (out_dir / CONFIG_FILE).write_text(json.dumps(config, indent=2) + "\n")
    (out_dir / CARD_FILE).write_text(json.dumps(card or {}, indent=2) + "\n")
    return out_dir


def update_config(out_dir: Path, values: dict[str, Any]) -> dict[str, Any]:
    """Sets top-level keys of an artifact's config.json; returns the new config."""
    path = Path(out_dir) / CONFIG_FILE
    config = _read_json(path)
    config.update(values)
    path.write_text(json.dumps(config, indent=2) + "\n")
    return config


def record_files(out_dir: Path, names: list[str]) -> dict[str, str]:
    """Adds the sha256 of these files (names inside the artifact folder) to config.json `files`,
    so that loading checks them; returns their hashes."""
    out_dir = Path(out_dir)
    hashes = {}
    for name in names:
        path = out_dir / name
        if not path.is_file():
            raise ArtifactError(f"{path} is missing: write a component's file before recording it")
        hashes[name] = sha256_file.__wrapped__(path)
    files = _read_json(out_dir / CONFIG_FILE).get("files", {})
    update_config(out_dir, {"files": {**files, **hashes}})
    return hashes


def _check_files(path: Path, config: dict[str, Any]) -> None:
    """Every file config.json lists is there and hashes as recorded."""
    if HEADS_FILE not in config.get("files", {}):
        raise ArtifactError(f"{path / CONFIG_FILE}: `files` does not list {HEADS_FILE}")
    for name, expected in config["files"].items():
        file = path / name
        if not file.is_file():
            raise ArtifactError(f"{file} is missing")
        actual = sha256_file.__wrapped__(file)
        if expected != actual:
            raise ArtifactError(f"{file} hashes to {actual[:12]}…, config.json says {expected}")


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise ArtifactError(f"{path} is missing: not a model artifact folder") from exc
    except json.JSONDecodeError as exc:
        raise ArtifactError(f"{path} is not valid JSON: {exc}") from exc


def check_towers(config: dict[str, Any]) -> None:
    """Raises ArtifactError naming the tower whose installed weights differ from the artifact's."""
    for image in [config["image_tower"], *config["image_tower"].get("companions", [])]:
        installed = sha256_file(image_weights_path(image["package"]))
        if installed != image["weights_sha256"]:
            raise ArtifactError(
                f"artifact was built for image tower {image['timm_name']} weights sha256 "
                f"{image['weights_sha256'][:12]}… ({image['package']} {image.get('package_version')}), "
                f"but the installed weights hash to {installed[:12]}…: retrain or install that version"
            )
    text = config["text_tower"]
    installed = sha256_file(text_weights_path())
    if installed != text["weights_sha256"]:
        raise ArtifactError(
            f"artifact was built for text tower {text['name']} weights sha256 "
            f"{text['weights_sha256'][:12]}… ({text['package']} {text.get('package_version')}), "
            f"but the installed weights hash to {installed[:12]}…: retrain or install that version"
        )


def load_artifact(path: Path, *, verify_towers: bool = True) -> Artifact:
    path = Path(path)
    config = _read_json(path / CONFIG_FILE)
    if config.get("format_version") != FORMAT_VERSION:
        raise ArtifactError(
            f"{path / CONFIG_FILE}: format_version {config.get('format_version')!r}, "
            f"this build reads {FORMAT_VERSION}"
        )
    heads_path = path / HEADS_FILE
    if not heads_path.is_file():
        raise ArtifactError(f"{heads_path} is missing")
    _check_files(path, config)
    head = HeadConfig(**config["head"])
    if head.text_dim != config["text_tower"].get("dim", head.text_dim):
        raise ArtifactError(
            f"artifact head expects {head.text_dim}-d text features but its text tower "
            f"gives {config['text_tower']['dim']}-d"
        )
    if verify_towers:
        check_towers(config)
    tensors = load_file(str(heads_path))
    model = FusedModel(head, tensors["concepts"])
    missing, unexpected = model.load_state_dict(tensors, strict=False)
    if missing or unexpected:
        raise ArtifactError(f"{heads_path}: missing tensors {missing}, unexpected {unexpected}")
    card_path = path / CARD_FILE
    card = _read_json(card_path) if card_path.exists() else {}
    return Artifact(model=model.eval(), config=config, card=card, path=path)
