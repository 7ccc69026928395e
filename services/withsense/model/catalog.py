"""The names a model is built from, and the model configs the package ships
(``withsense/model/configs/<name>.json``). Torch-free, so the CLI and the trainer's config can name
the choices without loading the model."""

from __future__ import annotations

import json
from importlib import resources
from typing import Any

# model configs: the towers (EfficientNet-Lite0/2 + MiniLM; lite2-lite0: both image networks on
# Lite2's pixels, an ensemble)
MODEL_NAMES = ("lite0", "lite2", "lite2-lite0")
DEFAULT_MODEL = "lite2"  # the towers of the shipped artifact (and of a zero-shot fallback);
# lite2-lite0 buys about +0.02 R@1 for 1.6x the indexing cost: not the default (docs/model.md)
HEAD_TYPES = ("linear", "residual_mlp")  # see fused.py
TTA_MODES = ("none", "flip")  # test-time augmentation of photos (runtime.pixel_features)
# How the image tower runs (towers.ImageTower): eager torch, ONNX Runtime on the CPU, or "auto"
# (ONNX Runtime on the CPU when installed, else torch; torch on CUDA), which serving uses.
IMAGE_BACKENDS = ("torch", "onnx", "auto")
DEFAULT_IMAGE_BACKEND = "auto"
# The image tower's precision on ONNX Runtime (model.image_int8): the heads are trained on one.
IMAGE_PRECISIONS = ("fp32", "int8")


def model_config(name: str = DEFAULT_MODEL) -> dict[str, Any]:
    """A model's JSON config from withsense/model/configs (one of MODEL_NAMES)."""
    if name not in MODEL_NAMES:
        raise ValueError(f"unknown model config {name!r}; known: {MODEL_NAMES}")
    text = resources.files("withsense.model").joinpath("configs", f"{name}.json").read_text()
    return json.loads(text)
