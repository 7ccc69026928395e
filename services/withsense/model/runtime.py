"""The model as the worker serves it: towers + heads, loaded once, ready before serving."""

from __future__ import annotations

import copy
import logging
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from withsense.kernels import cosine_sigmoid, score_backend
from withsense.model.artifact import (
    DEFAULT_ARTIFACT_DIR,
    Artifact,
    load_artifact,
)
from withsense.model.catalog import DEFAULT_IMAGE_BACKEND, DEFAULT_MODEL, TTA_MODES, model_config
from withsense.model.concepts import concept_embeddings
from withsense.model.fused import FusedModel, HeadConfig
from withsense.model.towers import ImageFeatures, ImageTower, TextTower, image_tower_from_config

log = logging.getLogger(__name__)


def pixel_features(tower: ImageTower, pixels: torch.Tensor, tta: str = "none") -> ImageFeatures:
    """The tower's features of preprocessed pixels [N, 3, H, W] with the heads' test-time
    augmentation: ``none``, or ``flip`` (the mean of the features of each photo and of its
    left-right mirror image). The trainer computes its cached features the same way."""
    if tta not in TTA_MODES:
        raise ValueError(f"unknown test-time augmentation {tta!r}; known: {TTA_MODES}")
    features = tower.features_from_pixels(pixels)
    if tta == "flip":
        mirrored = tower.features_from_pixels(pixels.flip(-1).contiguous())
        features = ImageFeatures(
            pooled=(features.pooled + mirrored.pooled) / 2,
            logits=(features.logits + mirrored.logits) / 2,
        )
    return features


def image_features(tower: ImageTower, images: list[Image.Image], tta: str = "none") -> ImageFeatures:
    """pixel_features of PIL photos (the tower's own preprocessing first)."""
    return pixel_features(tower, tower.preprocess(images), tta)


def head_config(config: dict[str, Any]) -> HeadConfig:
    return HeadConfig(
        pooled_dim=config["image_tower"]["pooled_dim"],
        num_classes=config["image_tower"]["num_classes"],
        text_dim=config["text_tower"]["dim"],
        dim=config["dim"],
        concept_top_k=config["concept_top_k"],
        init_scale=config["init_scale"],
        init_bias=config["init_bias"],
    )


def zero_shot_artifact(
    config_name: str = DEFAULT_MODEL, *, image_tower: ImageTower | None = None,
    text_tower: TextTower | None = None,
) -> Artifact:
    """The untrained model, which equals the zero-shot ConSE model exactly."""
    config = model_config(config_name)
    image_tower = image_tower or image_tower_from_config(config["image_tower"])
    text_tower = text_tower or TextTower()
    concepts = concept_embeddings(text_tower, config["concept_prompts"])
    model = FusedModel(head_config(config), concepts).eval()
    artifact_config = {
        "name": config["name"],
        "version": f"{config['name']}-zeroshot",
        "zero_shot": True,
        "head": vars(model.config),
        "image_tower": image_tower.describe(),
        "text_tower": text_tower.describe(),
        "concept_prompts": config["concept_prompts"],
    }
    return Artifact(model=model, config=artifact_config, card={"kind": "zero-shot"}, path=None)


def resolve_artifact_dir(model_dir: Path | None) -> Path | None:
    """The configured folder, else the shipped default if present, else None (zero-shot)."""
    if model_dir is not None:
        return Path(model_dir)
    if (DEFAULT_ARTIFACT_DIR / "config.json").is_file():
        return DEFAULT_ARTIFACT_DIR
    return None


class ModelRuntime:
    """Loads the artifact and its towers; embeds texts and photos; scores pairs."""

    def __init__(
        self, model_dir: Path | None = None, *, device: str | None = None,
        image_backend: str = DEFAULT_IMAGE_BACKEND,
    ) -> None:
        """image_backend: "torch" (eager), "onnx" (ONNX Runtime, CPU only) or "auto" (ONNX
        Runtime on the CPU when installed, else torch; always torch on CUDA)."""
        started = time.perf_counter()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type != "cpu" and image_backend == "auto":
            image_backend = "torch"
        artifact_dir = resolve_artifact_dir(model_dir)
        self.text_tower = TextTower()
        if artifact_dir is None:
            log.warning("no trained model artifact shipped or configured: serving the zero-shot model")
            self.image_tower = image_tower_from_config(model_config()["image_tower"], backend=image_backend)
            self.artifact = zero_shot_artifact(image_tower=self.image_tower, text_tower=self.text_tower)
        else:
            self.artifact = load_artifact(artifact_dir)
            self.image_tower = image_tower_from_config(self.artifact.config["image_tower"],
                                                       backend=image_backend)
        self.model = self.artifact.model.to(self.device).eval()
        self.load_seconds = time.perf_counter() - started
        log.info("model %s loaded in %.1f s", self.version, self.load_seconds)

    def with_image_backend(self, backend: str) -> ModelRuntime:
        """A runtime sharing this one's model whose image tower runs on `backend` (see
        ImageTower.with_backend); "auto" keeps torch on CUDA."""
        if self.device.type != "cpu" and backend == "auto":
            backend = "torch"
        twin = copy.copy(self)
        twin.image_tower = self.image_tower.with_backend(backend)
        return twin

    @property
    def version(self) -> str:
        return self.artifact.version

    @property
    def dim(self) -> int:
        return self.model.config.dim

    @property
    def backend(self) -> str:
        return score_backend(self.device)

    @torch.inference_mode()
    def embed_texts(self, texts: list[str]) -> np.ndarray:
        features = self.text_tower.encode(texts).to(self.device)
        return self.model.embed_text(features).float().cpu().numpy()

    @torch.inference_mode()
    def embed_images(self, images: list[Image.Image]) -> np.ndarray:
        if not images:
            return np.zeros((0, self.dim), dtype=np.float32)
        return self.embed_pixels(self.image_tower.preprocess(images))

    def preprocess_image(self, image: Image.Image) -> torch.Tensor:
        """One photo's pixels [3, H, W] for embed_pixels (thread-safe: the worker runs it in
        its decode threads so the model thread only runs the network)."""
        return self.image_tower.transform_image(image)

    @torch.inference_mode()
    def embed_pixels(self, pixels: torch.Tensor) -> np.ndarray:
        """Unit vectors [N, dim] of preprocessed pixels [N, 3, H, W]."""
        if pixels.shape[0] == 0:
            return np.zeros((0, self.dim), dtype=np.float32)
        features = pixel_features(self.image_tower, pixels, getattr(self.model.config, "tta", "none"))
        vectors = self.model.embed_image(features.pooled.to(self.device), features.logits.to(self.device))
        return vectors.float().cpu().numpy()

    @property
    def scale(self) -> float:
        return float(self.model.scale.detach())

    @property
    def bias(self) -> float:
        return float(self.model.bias.detach())

    @torch.inference_mode()
    def score(self, queries: np.ndarray, candidates: np.ndarray, offsets: np.ndarray) -> np.ndarray:
        """probs[N] = sigmoid(t * cos + b), candidates in segments of offsets, one query each."""
        probs = cosine_sigmoid(
            torch.from_numpy(queries).to(self.device),
            torch.from_numpy(candidates).to(self.device),
            torch.from_numpy(offsets.astype(np.int64)).to(self.device),
            float(self.model.scale), float(self.model.bias),
        )
        return probs.cpu().numpy()


def preload() -> None:
    """Loads everything once (used by container builds to check the models are in the image)."""
    runtime = ModelRuntime()
    runtime.embed_texts(["warm-up"])
    runtime.embed_images([Image.new("RGB", (64, 64))])
