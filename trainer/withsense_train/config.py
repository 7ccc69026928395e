"""What decides the heads: ``TrainConfig`` and the choices of its fields. Torch-free, so the CLI
can build ``withsense train --help`` without loading the model."""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from withsense.model.catalog import (
    DEFAULT_MODEL,
    HEAD_TYPES,
    IMAGE_PRECISIONS,
    MODEL_NAMES,
    TTA_MODES,
    model_config,
)

PROMPT_ENSEMBLE = [
    "a photo of a {}.", "a photo of the {}.", "a close-up photo of a {}.",
    "a bright photo of a {}.", "a photo of a small {}.", "a photo of a large {}.",
    "a good photo of a {}.", "a cropped photo of the {}.",
]
PROMPT_MODES = ("default", "ensemble")
INIT_MODES = ("ridge", "zero_shot")
OPTIMIZERS = ("adam", "sgd")
JUDGMENT_MODES = ("none", "expert", "expert+crowd")
CALIBRATION_MODES = ("all", "expert", "balanced")  # see calibration.py

# The allowed values of each TrainConfig field that has a fixed set (the CLI's choices).
CHOICES: dict[str, tuple[str, ...]] = {
    "model": MODEL_NAMES, "head": HEAD_TYPES, "tta": TTA_MODES, "prompts": PROMPT_MODES,
    "judgments": JUDGMENT_MODES, "init": INIT_MODES, "optimizer": OPTIMIZERS,
    "calibration": CALIBRATION_MODES, "image_precision": IMAGE_PRECISIONS,
}


@dataclass
class TrainConfig:
    """Everything that decides the heads; recorded in the model card. The defaults are the
    configuration chosen by the ablations in docs/model.md."""

    model: str = DEFAULT_MODEL  # model config: withsense/model/configs/<model>.json (MODEL_NAMES)
    head: str = "linear"  # linear (identity init) | residual_mlp
    hidden: int = 256  # residual_mlp width
    tta: str = "flip"  # none | flip (mean of the photo's and its mirror image's features)
    # the image tower's features the heads learn from: fp32 | int8 (the worker's quantized graph,
    # calibrated on the allowed photos; the table ships in the artifact, image_int8.py)
    image_precision: str = "fp32"
    prompts: str = "default"  # concept prompts: default (the model config's) | ensemble
    pooled_sqrt: bool = True  # signed square root of the pooled features (power normalisation)
    pooled_norm: bool = True  # standardise pooled features (train-set mean and std)
    init: str = "ridge"  # ridge: closed-form start, then SigLIP; zero_shot: identity start
    ridge_lambda: float = 3000.0  # Lite2 (1,280 pooled inputs); 5000 for lite2-lite0, docs/model.md
    ridge_concept_weight: float = 10.0
    ridge_prior: float = 0.2  # shrink the ridge head towards this much of the zero-shot map
    text_whiten: float = 0.02  # ridge start: text head whitens MiniLM (eigenvalue floor; 0: off)
    text_center: bool = False  # ... and subtracts the mean caption first
    dropout: float = 0.0
    epochs: int = 30
    batch_size: int = 256
    lr: float = 3e-4
    scale_lr: float = 1e-2  # learning rate of t and b
    weight_decay: float = 0.05  # decoupled, towards the starting heads
    patience: int = 5
    early_stopping: bool = True  # keep the best validation epoch (False: the last one)
    val_photos: int = 100
    seed: int = 0
    init_scale: float = 10.0
    init_bias: float = -10.0
    train_text: bool = True  # text head trainable (False: frozen at its start)
    train_image: bool = False  # image head trainable (False: frozen at its start)
    optimizer: str = "adam"  # adam | sgd (momentum 0.9)
    judgments: str = "expert+crowd"  # soft labels: none | expert | expert+crowd
    judgment_weight: float = 1.0
    judgment_batch: int = 512
    hard_negatives: int = 0  # per caption, the hardest other training photos added to its batch
    calibrate: bool = True
    calibration: str = "expert"  # pairs of the t, b fit: expert | balanced | all (calibration.py)
    folds: int = 5  # K-fold evaluation by photo after training, for the model card (0: none)

    def __post_init__(self) -> None:
        for name, allowed in CHOICES.items():
            value = getattr(self, name)
            if value not in allowed:
                raise ValueError(f"{name} must be one of {allowed}, not {value!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def concept_prompts(self) -> list[str]:
        if self.prompts == "ensemble":
            return list(PROMPT_ENSEMBLE)
        return list(model_config(self.model)["concept_prompts"])
