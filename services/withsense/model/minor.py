"""The visual minor detector: p(photo shows a person under 16) from the image tower's features.

A logistic regression on the frozen image tower's features of the photo (the same pooled
features and ImageNet logits, with the same test-time augmentation, that the worker computes to
embed the photo, so it costs no extra network pass): ``p = sigmoid(w . z + b)`` with ``z`` the
standardised ``[signed sqrt of pooled, logits]``. Trained by ``withsense_train.minor`` on the
customer's photos, whose captions say whether a child is shown; saved as its own file,
``minor_detector.safetensors``, in the model artifact, with the operating point (``threshold``)
and the measured trade-off curve in ``config.json`` under ``minor_detector``.

A photo is flagged ``minor`` by sight when ``p >= threshold``. A deployment may choose another
point of the curve (``WITHSENSE_MINOR_RECALL_TARGET``) or a threshold of its own
(``WITHSENSE_MINOR_THRESHOLD``); see ``choose_threshold_for``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file

MINOR_FILE = "minor_detector.safetensors"
MINOR_CONFIG_KEY = "minor_detector"
FEATURES = "sqrt_pooled+logits"  # the only feature set this build knows


def detector_inputs(pooled: np.ndarray, logits: np.ndarray) -> np.ndarray:
    """The detector's raw inputs [N, pooled + classes]: signed square root of the pooled
    features (power normalisation: a few large activations otherwise dominate), then logits."""
    pooled = np.asarray(pooled, dtype=np.float32)
    logits = np.asarray(logits, dtype=np.float32)
    return np.concatenate([np.sign(pooled) * np.sqrt(np.abs(pooled)), logits], axis=1)


@dataclass
class MinorDetector:
    """Standardisation + logistic regression, and the operating point chosen at training."""

    mean: np.ndarray  # [F]
    std: np.ndarray  # [F]
    weight: np.ndarray  # [F]
    bias: float
    threshold: float
    tta: str = "flip"
    curve: list[dict[str, float]] = field(default_factory=list)  # recall -> threshold, adults withheld
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.mean = np.asarray(self.mean, dtype=np.float32).reshape(-1)
        self.std = np.asarray(self.std, dtype=np.float32).reshape(-1)
        self.weight = np.asarray(self.weight, dtype=np.float32).reshape(-1)
        if not (self.mean.shape == self.std.shape == self.weight.shape):
            raise ValueError(f"minor detector: mean {self.mean.shape}, std {self.std.shape} and "
                             f"weight {self.weight.shape} must have one shape")
        if not 0.0 <= float(self.threshold) <= 1.0:
            raise ValueError(f"minor detector threshold {self.threshold} is not in [0, 1]")

    @property
    def version(self) -> str:
        """``minor-<file sha256[:10]>`` once saved in or loaded from an artifact."""
        return str(self.meta.get("version", ""))

    @property
    def inputs(self) -> int:
        return int(self.weight.shape[0])

    def logit(self, pooled: np.ndarray, logits: np.ndarray) -> np.ndarray:
        x = detector_inputs(pooled, logits)
        if x.shape[1] != self.inputs:
            raise ValueError(f"minor detector expects {self.inputs} inputs, got {x.shape[1]}")
        z = (x - self.mean) / self.std
        return z @ self.weight + np.float32(self.bias)

    def probability(self, pooled: np.ndarray, logits: np.ndarray) -> np.ndarray:
        """p(child) [N] in [0, 1]."""
        return 1.0 / (1.0 + np.exp(-self.logit(pooled, logits).astype(np.float64)))

    def threshold_for(self, recall_target: float | None = None,
                      threshold: float | None = None) -> float:
        """The threshold a deployment uses (``compliance.photo_flags.operating_threshold``)."""
        from withsense.compliance.photo_flags import operating_threshold

        chosen = operating_threshold(self.threshold, self.curve, recall_target=recall_target,
                                     threshold=threshold)
        return float(self.threshold if chosen is None else chosen)

    # --- the artifact file -------------------------------------------------------------------

    def config(self) -> dict[str, Any]:
        """The ``config.json`` section (everything but the tensors)."""
        return {"file": MINOR_FILE, "features": FEATURES, "tta": self.tta,
                "threshold": float(self.threshold), "curve": self.curve, **self.meta}

    def save(self, folder: Path) -> Path:
        path = Path(folder) / MINOR_FILE
        tensors = {"mean": torch.from_numpy(self.mean), "std": torch.from_numpy(self.std),
                   "weight": torch.from_numpy(self.weight),
                   "bias": torch.tensor([float(self.bias)], dtype=torch.float32)}
        save_file(tensors, str(path))
        return path

    @classmethod
    def load(cls, folder: Path, section: dict[str, Any]) -> MinorDetector:
        """From the artifact folder and its ``config.json`` section; ValueError saying what is
        wrong (the caller decides: the worker refuses to flag nothing, see ModelRuntime)."""
        if section.get("features") != FEATURES:
            raise ValueError(f"minor detector features {section.get('features')!r}; this build "
                             f"reads {FEATURES!r}")
        tensors = load_file(str(Path(folder) / section.get("file", MINOR_FILE)))
        meta = {k: v for k, v in section.items()
                if k not in ("file", "features", "tta", "threshold", "curve")}
        return cls(mean=tensors["mean"].numpy(), std=tensors["std"].numpy(),
                   weight=tensors["weight"].numpy(), bias=float(tensors["bias"][0]),
                   threshold=float(section["threshold"]), tta=str(section.get("tta", "flip")),
                   curve=list(section.get("curve", [])), meta=meta)


# --- in the model artifact --------------------------------------------------------------------

def minor_section(detector: MinorDetector, digest: str) -> dict[str, Any]:
    """config.json's ``minor_detector`` section of a detector whose file hashes to ``digest``."""
    return {**detector.config(), "version": f"minor-{digest[:10]}"}


def attach_minor_detector(artifact_dir: Path, detector: MinorDetector) -> dict[str, Any]:
    """Saves the detector into an artifact folder: its own file, its hash under ``files`` and
    its section (version, threshold, curve, training report) in ``config.json``. Returns the
    section."""
    from withsense.model.artifact import record_files, update_config

    folder = Path(artifact_dir)
    detector.save(folder)
    digest = record_files(folder, [MINOR_FILE])[MINOR_FILE]
    section = minor_section(detector, digest)
    update_config(folder, {MINOR_CONFIG_KEY: section})
    detector.meta["version"] = section["version"]
    return section


def load_minor_detector(artifact_dir: Path | None, config: dict[str, Any]) -> MinorDetector | None:
    """The artifact's detector, or None when it has none (an older artifact: the gateway then
    withholds every photo it indexes). ``load_artifact`` has checked the hashes of the files
    config.json lists; a detector file that is missing or not listed is an ArtifactError."""
    from withsense.model.artifact import ArtifactError

    section = config.get(MINOR_CONFIG_KEY)
    if not section or artifact_dir is None:
        return None
    path = Path(artifact_dir) / section.get("file", MINOR_FILE)
    if not path.is_file():
        raise ArtifactError(f"{path} is missing; config.json names a minor detector")
    if path.name not in config.get("files", {}):
        raise ArtifactError(f"{path} is not listed in config.json `files` (no hash to check)")
    try:
        detector = MinorDetector.load(Path(artifact_dir), section)
    except (ValueError, KeyError, OSError) as exc:
        raise ArtifactError(f"{path}: {exc}") from exc
    detector.meta["version"] = str(section.get("version", ""))
    return detector
