"""Frozen tower features, cached on disk so that a second run starts in seconds.

Layout under the cache folder (default ``$WITHSENSE_DATA_DIR/cache``)::

    image/<timm name>-<weights sha256[:16]>/<variant>/<file sha256[:2]>/<file sha256>.npy
    image/<companion>-<sha256[:16]>@<timm name>-pixels/<variant>/...  (an ensemble's other network
                                                                   on the first one's pixels)
    image/<timm name>-<sha256[:16]>/int8-<table + recipe sha256[:16]>/<variant>/...  (the int8
                                                                   tower: its table and recipe)
    image/<timm name>-<sha256[:16]>/int8-calibration/<photos and recipe sha256[:24]>.json
    text/minilm-<weights sha256[:16]>/<text sha256[:2]>/<text sha256>.npy

An image entry is the pooled features followed by the ImageNet logits (float32); ``variant`` is
``center`` (the tower's own preprocessing) or ``flip`` (the photo mirrored left-right first).
``tile0`` .. ``tile3`` are the photo's tiles (``withsense_train.tiles``, each through the tower's
own preprocessing), for the visual minor detector.
A text entry is the normalised MiniLM embedding. Keys are content hashes, so a renamed photo
hits the cache and a changed tower misses it. Entries are written atomically (temp + rename).
The towers are loaded only when something is missing.

``image_precision="int8"``: the features of the int8 tower (``withsense.model.image_int8``), as
the worker computes them with the artifact's calibration table; ``calibrate_int8(paths)`` makes
(or reads) the table first.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import random
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from withsense.model.catalog import TTA_MODES
from withsense.model.concepts import concept_embeddings
from withsense.model.image_int8 import (
    IMAGE_PRECISIONS,
    RECIPE,
    SIGNIFICANT_DIGITS,
    Int8Error,
    calibrate,
    graph_key,
)
from withsense.model.runtime import image_features, pixel_features
from withsense.model.towers import (
    ImageFeatures,
    ImageTower,
    TextTower,
    combine_features,
    companion_specs,
    export_image_graph,
    image_tower_from_config,
    image_weights_path,
    sha256_file,
    text_weights_path,
)

from withsense_train.data import file_sha256
from withsense_train.tiles import TILES, tile_images

log = logging.getLogger(__name__)
IMAGE_BATCH = 32
TILE_VARIANTS = tuple(f"tile{k}" for k in range(TILES))
IMAGE_VARIANTS = ("center", "flip", *TILE_VARIANTS)
TEXT_BATCH = 256
INT8_CALIBRATION_PHOTOS = 128  # a seeded sample; each photo and its mirror image
# Photos per calibration step: the calibrator holds every activation of a step (~0.3 GB a photo
# for Lite2 at 260 px), then keeps only their ranges.
CALIBRATION_BATCH = 2


def default_cache_dir() -> Path:
    from withsense.config.model import ModelSettings

    return Path(ModelSettings().data_dir) / "cache"


def _progress(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="item", disable=not enabled or total == 0,
                dynamic_ncols=True, leave=False)


def _save_atomic(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            np.save(handle, array)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _load(path: Path) -> np.ndarray | None:
    try:
        return np.load(path)
    except (FileNotFoundError, ValueError, OSError):
        return None


class FeatureCache:
    """Image and text features of one model config (towers), from disk or computed once."""

    def __init__(self, model_config: dict[str, Any], cache_dir: Path | None = None, *,
                 progress: bool = True, image_precision: str = "fp32") -> None:
        if image_precision not in IMAGE_PRECISIONS:
            raise ValueError(f"unknown image precision {image_precision!r}; known: {IMAGE_PRECISIONS}")
        self.model_config = model_config
        self.image_precision = image_precision
        self.int8_table: dict[str, Any] | None = None  # set by calibrate_int8
        self._int8_tower: ImageTower | None = None
        self.root = Path(cache_dir) if cache_dir is not None else default_cache_dir()
        tower = model_config["image_tower"]
        self.timm_name = tower["timm_name"]
        self.package = tower["package"]
        self.companions = companion_specs(tower)
        self.image_sha = sha256_file(image_weights_path(self.package))
        self.companion_shas = [sha256_file(image_weights_path(pkg)) for _, pkg in self.companions]
        self.text_sha = sha256_file(text_weights_path())
        self.progress = progress
        self._image_tower: ImageTower | None = None
        self._text_tower: TextTower | None = None
        self.computed = {"images": 0, "texts": 0}

    @property
    def image_tower(self) -> ImageTower:
        if self._image_tower is None:
            log.info("loading image tower %s", self.timm_name)
            self._image_tower = image_tower_from_config(self.model_config["image_tower"])
        return self._image_tower

    @property
    def feature_tower(self) -> ImageTower:
        """The tower whose features this cache holds: the eager one, or the int8 graph."""
        if self.image_precision == "fp32":
            return self.image_tower
        if self._int8_tower is None:
            self._int8_tower = self.image_tower.with_backend("onnx", self._table())
        return self._int8_tower

    def _table(self) -> dict[str, Any]:
        if self.int8_table is None:
            raise Int8Error("int8 features need a calibration table: call calibrate_int8 first")
        return self.int8_table

    def calibrate_int8(self, paths: Sequence[Path], seed: int = 0) -> dict[str, Any]:
        """The int8 calibration table of INT8_CALIBRATION_PHOTOS of these photos (a seeded sample,
        each photo and its mirror image, as the worker's test-time augmentation runs them), from
        disk or made once; the cache then holds int8 features of that table."""
        if self.companions:
            raise Int8Error("int8 features of an ensemble tower are not supported")
        keys = sorted({file_sha256(Path(p)) for p in paths})
        by_key = {file_sha256(Path(p)): Path(p) for p in paths}
        chosen = sorted(random.Random(seed).sample(keys, min(INT8_CALIBRATION_PHOTOS, len(keys))))
        name = hashlib.sha256(json.dumps(  # what decides the ranges (not which nodes stay fp32)
            {"photos": chosen, "calibration": RECIPE["calibration"], "digits": SIGNIFICANT_DIGITS,
             "batch": CALIBRATION_BATCH}).encode()).hexdigest()
        path = self.root / "image" / self.image_key / "int8-calibration" / f"{name[:24]}.json"
        try:
            table = json.loads(path.read_text())
        except (OSError, ValueError):
            log.info("int8 calibration of the image tower on %d photos", len(chosen))
            table = calibrate(export_image_graph(self.image_tower.networks, self.image_tower.image_size),
                              self._calibration_batches([by_key[k] for k in chosen]))
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_suffix(f".{os.getpid()}.tmp")  # two test workers may calibrate at once
            tmp.write_text(json.dumps(table))
            os.replace(tmp, path)
        self.use_int8_table(table)
        return table

    def use_int8_table(self, table: dict[str, Any]) -> None:
        """Int8 features of this calibration table (an artifact's, or calibrate_int8's)."""
        self.image_precision = "int8"
        self.int8_table = table
        self._int8_tower = None

    def _calibration_batches(self, paths: list[Path]):
        bar = _progress(len(paths), "int8 calibration", self.progress)
        with bar:
            for start in range(0, len(paths), CALIBRATION_BATCH):
                chunk = paths[start:start + CALIBRATION_BATCH]
                pixels = self.image_tower.preprocess([_variant_image(p, "center") for p in chunk])
                yield torch.cat([pixels, pixels.flip(-1)]).numpy()
                bar.update(len(chunk))

    @property
    def image_key(self) -> str:
        """Names the image tower's networks and weights (a folder name)."""
        own = f"{self.timm_name}-{self.image_sha[:16]}"
        return "+".join([own] + [f"{name}-{sha[:16]}" for (name, _), sha
                                 in zip(self.companions, self.companion_shas, strict=True)])

    @property
    def text_tower(self) -> TextTower:
        if self._text_tower is None:
            log.info("loading text tower")
            self._text_tower = TextTower()
        return self._text_tower

    def tower_descriptions(self) -> tuple[dict[str, Any], dict[str, Any]]:
        return self.image_tower.describe(), self.text_tower.describe()

    # --- images --------------------------------------------------------------------------

    def _image_dir(self, variant: str, network: int = 0) -> Path:
        """Each network's features apart: a companion's folder also names the network whose
        preprocessing it sees, so a Lite0 run on Lite2's pixels never mixes with plain Lite0."""
        if network == 0:
            folder = f"{self.timm_name}-{self.image_sha[:16]}"
            if self.image_precision == "int8":
                folder = f"{folder}/int8-{graph_key(self._table())[:16]}"
        else:
            name = self.companions[network - 1][0]
            folder = f"{name}-{self.companion_shas[network - 1][:16]}@{self.timm_name}-pixels"
        return self.root / "image" / folder / variant

    def image_variant(self, paths: Sequence[Path], variant: str = "center") -> tuple[np.ndarray, np.ndarray]:
        """(pooled [N, P], logits [N, 1000]) of one variant: 'center', 'flip' or a tile."""
        if variant not in IMAGE_VARIANTS:
            raise ValueError(f"unknown image variant {variant!r}; known: {IMAGE_VARIANTS}")
        parts = [self._network_variant(paths, variant, k) for k in range(1 + len(self.companions))]
        if not paths:
            pooled_dim = int(self.model_config["image_tower"]["pooled_dim"])
            return np.zeros((0, pooled_dim), np.float32), np.zeros((0, 1000), np.float32)
        num_classes = int(self.model_config["image_tower"]["num_classes"])
        combined = combine_features([
            ImageFeatures(torch.from_numpy(m[:, :-num_classes]), torch.from_numpy(m[:, -num_classes:]))
            for m in parts])
        return combined.pooled.numpy(), combined.logits.numpy()

    def _network_variant(self, paths: Sequence[Path], variant: str, network: int) -> np.ndarray:
        """[N, pooled + classes] of one network of the tower, from disk or computed."""
        folder = self._image_dir(variant, network)
        keys = [file_sha256(Path(p)) for p in paths]
        rows: list[np.ndarray | None] = [_load(folder / k[:2] / f"{k}.npy") for k in keys]
        missing = [i for i, row in enumerate(rows) if row is None]
        if missing:
            name = self.timm_name if network == 0 else self.companions[network - 1][0]
            bar = _progress(len(missing), f"image features ({name}, {variant})", self.progress)
            with bar:
                for start in range(0, len(missing), IMAGE_BATCH):
                    chunk = missing[start:start + IMAGE_BATCH]
                    images = [_variant_image(paths[i], variant) for i in chunk]
                    pixels = self.image_tower.preprocess(images)
                    if variant == "flip":  # as runtime.pixel_features mirrors them
                        pixels = pixels.flip(-1).contiguous()
                    if self.image_precision == "int8":  # the worker's graph (one network)
                        feats = self.feature_tower.features_from_pixels(pixels)
                    else:
                        feats = self.image_tower.network_features(pixels, [network])[0]
                    block = torch.cat([feats.pooled, feats.logits], dim=1).numpy().astype(np.float32)
                    for row, i in zip(block, chunk, strict=True):
                        _save_atomic(folder / keys[i][:2] / f"{keys[i]}.npy", row)
                        rows[i] = row
                    bar.update(len(chunk))
            self.computed["images"] += len(missing)
        if not rows:
            return np.zeros((0, 0), np.float32)
        return np.stack(rows)  # type: ignore[arg-type]

    def tiles(self, paths: Sequence[Path]) -> tuple[np.ndarray, np.ndarray]:
        """(pooled [N, TILES, P], logits [N, TILES, 1000]) of every photo's tiles."""
        parts = [self.image_variant(paths, variant) for variant in TILE_VARIANTS]
        return np.stack([p for p, _ in parts], 1), np.stack([lg for _, lg in parts], 1)

    def image(self, paths: Sequence[Path], tta: str = "none") -> tuple[np.ndarray, np.ndarray]:
        """Features as the runtime computes them with this test-time augmentation."""
        if tta not in TTA_MODES:
            raise ValueError(f"unknown tta {tta!r}; known: {TTA_MODES}")
        pooled, logits = self.image_variant(paths, "center")
        if tta == "flip":
            flip_pooled, flip_logits = self.image_variant(paths, "flip")
            pooled, logits = (pooled + flip_pooled) / 2, (logits + flip_logits) / 2
        return pooled, logits

    # --- texts ---------------------------------------------------------------------------

    def _text_path(self, text: str) -> Path:
        key = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return self.root / "text" / f"minilm-{self.text_sha[:16]}" / key[:2] / f"{key}.npy"

    def text(self, texts: Sequence[str]) -> np.ndarray:
        """[N, 384] normalised MiniLM embeddings."""
        paths = [self._text_path(t) for t in texts]
        rows: list[np.ndarray | None] = [_load(p) for p in paths]
        missing = sorted({texts[i] for i, row in enumerate(rows) if row is None})
        if missing:
            computed: dict[str, np.ndarray] = {}
            bar = _progress(len(missing), "text features (MiniLM)", self.progress)
            with bar:
                for start in range(0, len(missing), TEXT_BATCH):
                    chunk = missing[start:start + TEXT_BATCH]
                    vectors = self.text_tower.encode(chunk).numpy().astype(np.float32)
                    for text, vector in zip(chunk, vectors, strict=True):
                        _save_atomic(self._text_path(text), vector)
                        computed[text] = vector
                    bar.update(len(chunk))
            self.computed["texts"] += len(missing)
            rows = [row if row is not None else computed[texts[i]] for i, row in enumerate(rows)]
        if not rows:
            return np.zeros((0, int(self.model_config["text_tower"]["dim"])), np.float32)
        return np.stack(rows)  # type: ignore[arg-type]

    def encode(self, texts: list[str], batch_size: int = 64) -> torch.Tensor:
        """The TextTower interface (for concept_embeddings), through the cache."""
        return torch.from_numpy(self.text(texts))

    def concepts(self, prompts: list[str]) -> torch.Tensor:
        """[1000, 384] ImageNet class prompt embeddings (mean over the prompt templates)."""
        return concept_embeddings(self, prompts)


def _variant_image(path: Path, variant: str) -> Image.Image:
    """The photo (or its tile) that a variant runs through the tower's preprocessing."""
    with Image.open(path) as image:
        rgb = image.convert("RGB")
    if variant.startswith("tile"):
        return tile_images(rgb)[int(variant[len("tile"):])]
    return rgb


def image_paths(images: dict[str, Path], names: Sequence[str]) -> list[Path]:
    return [images[name] for name in names]


__all__ = ["FeatureCache", "default_cache_dir", "image_features", "image_paths", "pixel_features"]
