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
from withsense.model.fusion import FUSION_FILE, FusionModel, load_fusion
from withsense.model.image_int8 import (
    IMAGE_PRECISIONS,
    Int8Error,
    artifact_table,
    trained_on,
)
from withsense.model.language import ENGLISH, MULTILINGUAL, TEXT_PATHS, TextPath, text_path
from withsense.model.minor import MinorDetector, load_minor_detector
from withsense.model.multilingual import MultilingualError, MultilingualTower, TextMap, load_map
from withsense.model.text_onnx import TEXT_BACKENDS, OnnxTextSession
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


def image_int8_table(artifact_dir: Path | None, config: dict[str, Any],
                     precision: str) -> dict[str, Any] | None:
    """The int8 calibration table the image tower should run with (None: fp32). ``auto`` takes
    the variant the heads were trained on; asking for the other one works but is logged loudly
    (the vectors move), and int8 without a table in the artifact, or of another recipe than this
    build's, is refused."""
    if precision not in ("auto", *IMAGE_PRECISIONS):
        raise ValueError(f"unknown image precision {precision!r}; choose auto or one of {IMAGE_PRECISIONS}")
    trained = trained_on(config)
    wanted = trained if precision == "auto" else precision
    if wanted != trained:
        log.warning("MODEL MISMATCH: the heads of %s were trained on %s image tower features but "
                    "the tower runs in %s as configured (WITHSENSE_WORKER_IMAGE_PRECISION): photo "
                    "vectors differ from the ones the model was evaluated with",
                    config.get("version"), trained, wanted)
    if wanted == "fp32":
        return None
    table = artifact_table(artifact_dir, config)
    if table is None:
        raise Int8Error(f"int8 image tower asked for, but model {config.get('version')} ships no "
                        "int8 calibration table: train it with image_precision int8, or set "
                        "WITHSENSE_WORKER_IMAGE_PRECISION=fp32")
    return table


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
        image_backend: str = DEFAULT_IMAGE_BACKEND, multilingual_threads: int = 1,
        text_backend: str = "torch", text_precision: str = "fp32", text_threads: int = 1,
        image_precision: str = "auto", image_threads: int = 0,
    ) -> None:
        """image_backend: "torch" (eager), "onnx" (ONNX Runtime, CPU only) or "auto" (ONNX
        Runtime on the CPU when installed, else torch; always torch on CUDA).
        multilingual_threads: OpenMP threads of the multilingual text tower (0: all cores).
        text_backend: the English text path (MiniLM + text head) on "torch" (eager, the
        reference), "onnx" or "auto", as image_backend; text_precision (``TEXT_PRECISIONS``) and
        text_threads (intra-op threads) apply to ONNX Runtime (see ``text_onnx``).
        image_precision: the image tower on ONNX Runtime in "fp32" or "int8" (the artifact's
        calibration table), or "auto": the variant the artifact's heads were trained on;
        image_threads: its intra-op threads (0: torch's count)."""
        started = time.perf_counter()
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if self.device.type != "cpu" and image_backend == "auto":
            image_backend = "torch"
        artifact_dir = resolve_artifact_dir(model_dir)
        self.text_tower = TextTower()
        if artifact_dir is None:
            log.warning("no trained model artifact shipped or configured: serving the zero-shot model")
            self.image_tower = image_tower_from_config(model_config()["image_tower"], backend=image_backend,
                                                       onnx_threads=image_threads)
            self.artifact = zero_shot_artifact(image_tower=self.image_tower, text_tower=self.text_tower)
        else:
            self.artifact = load_artifact(artifact_dir)
            table = image_int8_table(artifact_dir, self.artifact.config, image_precision)
            self.image_tower = image_tower_from_config(self.artifact.config["image_tower"],
                                                       backend=image_backend, int8_table=table,
                                                       onnx_threads=image_threads)
        self.text_map: TextMap | None = None
        self.multilingual_tower: MultilingualTower | None = None
        if artifact_dir is not None:
            self.text_map = load_map(artifact_dir, self.artifact.config)
        if self.text_map is not None:
            self.multilingual_tower = MultilingualTower(multilingual_threads)
        self.model = self.artifact.model.to(self.device).eval()
        # The evidence fusion model (applied by the gateway, which holds the descriptions).
        self.fusion: FusionModel | None = None
        if artifact_dir is not None:
            recorded = self.artifact.config.get("files", {}).get(FUSION_FILE)
            self.fusion = load_fusion(artifact_dir, recorded)
        self.minor: MinorDetector | None = load_minor_detector(self.artifact.path, self.artifact.config)
        self.text_onnx: OnnxTextSession | None = None
        self.text_backend = self._set_text_backend(text_backend, text_precision, text_threads)
        if self.minor is None:
            log.warning("model %s has no visual minor detector: the gateway withholds every photo "
                        "indexed with it", self.version)
        self.load_seconds = time.perf_counter() - started
        log.info("model %s loaded in %.1f s", self.version, self.load_seconds)

    def _set_text_backend(self, backend: str, precision: str, threads: int) -> str:
        """Builds the ONNX Runtime text session when asked (``auto``: on the CPU, if it can be
        had); returns the backend in force."""
        if backend not in TEXT_BACKENDS:
            raise ValueError(f"unknown text backend {backend!r}; choose one of {TEXT_BACKENDS}")
        if backend == "torch" or (backend == "auto" and self.device.type != "cpu"):
            return "torch"
        try:
            self.text_onnx = OnnxTextSession(self.text_tower, self.model, precision=precision,
                                             threads=threads)
        except Exception as exc:  # noqa: BLE001 - any export/runtime failure: eager still works
            if backend == "onnx":
                raise
            log.warning("ONNX Runtime text path unavailable (%s): using eager torch", exc)
            return "torch"
        return f"onnx-{precision}"

    def with_text_backend(self, backend: str, precision: str = "fp32", threads: int = 1) -> ModelRuntime:
        """A runtime sharing this one's model whose English text path runs on `backend`."""
        twin = copy.copy(self)
        twin.text_onnx = None
        twin.text_backend = twin._set_text_backend(backend, precision, threads)
        return twin

    def with_image_backend(self, backend: str, precision: str | None = None) -> ModelRuntime:
        """A runtime sharing this one's model whose image tower runs on `backend` (see
        ImageTower.with_backend); "auto" keeps torch on CUDA. ``precision`` as image_precision
        (None: this runtime's)."""
        if self.device.type != "cpu" and backend == "auto":
            backend = "torch"
        table = self.image_tower.int8_table if precision is None else \
            image_int8_table(self.artifact.path, self.artifact.config, precision)
        twin = copy.copy(self)
        twin.image_tower = self.image_tower.with_backend(backend, table)
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

    @property
    def multilingual(self) -> bool:
        """Whether the model has the multilingual text path (the artifact's map)."""
        return self.text_map is not None

    def text_paths(self, texts: list[str], path: str | None = None) -> list[TextPath]:
        """The path of each text: ``path`` when given ("english" or "multilingual"), else by
        its script; without the multilingual map every text takes the English path."""
        if path is not None and path not in TEXT_PATHS:
            raise ValueError(f"unknown text path {path!r}; known: {TEXT_PATHS}")
        if path == MULTILINGUAL and not self.multilingual:
            raise MultilingualError(
                f"model {self.version} has no multilingual text path (no map in its artifact)"
            )
        if path is not None:
            return [path] * len(texts)  # type: ignore[list-item]
        if not self.multilingual:
            return [ENGLISH] * len(texts)
        return [text_path(text) for text in texts]

    def embed_texts(self, texts: list[str]) -> np.ndarray:
        """Unit vectors [N, dim] of texts, each on the path its script picks."""
        return self.embed_texts_routed(texts)[0]

    def embed_texts_routed(
        self, texts: list[str], path: str | None = None
    ) -> tuple[np.ndarray, list[TextPath]]:
        """(unit vectors [N, dim], the path each text took); see ``text_paths``."""
        vectors, _, paths = self.embed_texts_checked(texts, path)
        return vectors, paths

    @torch.inference_mode()
    def embed_texts_checked(
        self, texts: list[str], path: str | None = None
    ) -> tuple[np.ndarray, list[np.ndarray], list[TextPath]]:
        """(unit vectors [N, dim], one check vector per text, the path each text took): the
        check vector is what the semantic child check compares (``withsense.compliance.semantic``):
        the text tower's own vector on the English path (computed on the way to the joint one:
        no second pass), the joint vector on the multilingual path (the two may differ in size)."""
        paths = self.text_paths(texts, path)
        out = np.zeros((len(texts), self.dim), dtype=np.float32)
        check: list[np.ndarray] = [out[i] for i in range(len(texts))]
        english = [i for i, p in enumerate(paths) if p == ENGLISH]
        other = [i for i, p in enumerate(paths) if p == MULTILINGUAL]
        if english:
            chunk = [texts[i] for i in english]
            joint, tower = (self.text_onnx.with_tower(chunk) if self.text_onnx is not None
                            else self.torch_text_vectors_with_tower(chunk))
            out[english] = joint
            for row, i in enumerate(english):
                check[i] = tower[row]
        if other:
            assert self.text_map is not None and self.multilingual_tower is not None
            out[other] = self.text_map(self.multilingual_tower.encode([texts[i] for i in other]))
        return out, check, paths

    def torch_text_vectors(self, texts: list[str]) -> np.ndarray:
        """The English path in eager torch (also the reference the ONNX path is checked against)."""
        return self.torch_text_vectors_with_tower(texts)[0]

    @torch.inference_mode()
    def torch_text_vectors_with_tower(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(joint vectors, the tower's own unit vectors) of English texts in eager torch."""
        features = self.text_tower.encode(texts).to(self.device)
        return (self.model.embed_text(features).float().cpu().numpy(),
                features.float().cpu().numpy())

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
        return self.embed_pixels_with_minor(pixels, minor=False)[0]

    @torch.inference_mode()
    def embed_pixels_with_minor(
        self, pixels: torch.Tensor, *, minor: bool = True,
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """(unit vectors [N, dim], p(photo shows a child) [N] or None when the model has no
        minor detector). The detector reads the tower features the vectors are made from (a
        second pass only if it was trained with another test-time augmentation)."""
        tta = getattr(self.model.config, "tta", "none")
        if pixels.shape[0] == 0:
            empty = np.zeros(0, dtype=np.float32) if minor and self.minor is not None else None
            return np.zeros((0, self.dim), dtype=np.float32), empty
        features = pixel_features(self.image_tower, pixels, tta)
        vectors = self.model.embed_image(features.pooled.to(self.device), features.logits.to(self.device))
        probabilities = None
        if minor and self.minor is not None:
            if self.minor.tta != tta:
                features = pixel_features(self.image_tower, pixels, self.minor.tta)
            probabilities = self.minor.probability(features.pooled.float().cpu().numpy(),
                                                   features.logits.float().cpu().numpy())
            probabilities = probabilities.astype(np.float32)
        return vectors.float().cpu().numpy(), probabilities

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
