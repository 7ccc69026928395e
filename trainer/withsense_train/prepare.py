"""A data set made ready for training and evaluation: the legal filter, the frozen tower features
of every photo and text (from the on-disk cache), the split by photo, and the embedding of those
features by a model's heads.

``prepare(dataset, cache) -> Prepared``; ``split_photos``; ``embed`` and ``pair_cosines`` (a
model's vectors of prepared rows); ``zero_shot_model`` (the untrained heads); ``head_config`` (a
TrainConfig's heads); ``torch_threads`` and ``seed_everything`` (the runtime conditions every fit
and evaluation runs under).
"""

from __future__ import annotations

import math
import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from withsense.model.fused import FusedModel, HeadConfig

from withsense_train.config import TrainConfig
from withsense_train.data import Dataset
from withsense_train.features import FeatureCache
from withsense_train.filtering import FilteredData, legal_filter


@dataclass
class Prepared:
    """A data set, its legal filter and the frozen features of its photos and texts."""

    dataset: Dataset
    filtered: FilteredData
    cache: FeatureCache
    tta: str
    photos: list[str]
    pooled: torch.Tensor  # [P, pooled_dim]
    logits: torch.Tensor  # [P, 1000]
    texts: list[str]
    text: torch.Tensor  # [T, 384]
    concepts: torch.Tensor  # [1000, 384]
    prompts: list[str]
    photo_index: dict[str, int] = field(init=False)
    text_index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.photo_index = {name: i for i, name in enumerate(self.photos)}
        self.text_index = {text: i for i, text in enumerate(self.texts)}

    def positives(self, photos: list[str], *, compliant: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(text index, photo index) of every caption-photo positive of these photos."""
        source = self.filtered.positives if compliant else self.dataset.positives()
        text_rows, photo_rows = [], []
        for photo in photos:
            for caption in source.get(photo, []):
                text_rows.append(self.text_index[caption.text])
                photo_rows.append(self.photo_index[photo])
        return np.asarray(text_rows, dtype=np.int64), np.asarray(photo_rows, dtype=np.int64)

    def judgments(self, photos: list[str], *, compliant: bool = True, expert_only: bool = False,
                  exclude_caption_photos: set[str] | None = None) -> dict[str, np.ndarray]:
        """Arrays of the judged pairs whose photo is in ``photos``."""
        wanted = set(photos)
        source = self.filtered.judgments if compliant else self.dataset.judgments()
        rows = [j for j in source if j.image in wanted
                and (not expert_only or j.expert_mean is not None)
                and (exclude_caption_photos is None
                     or j.query_id.rsplit("#", 1)[0] not in exclude_caption_photos)
                and j.text in self.text_index and j.image in self.photo_index]
        return {
            "text": np.asarray([self.text_index[j.text] for j in rows], dtype=np.int64),
            "photo": np.asarray([self.photo_index[j.image] for j in rows], dtype=np.int64),
            "label": np.asarray([j.label for j in rows], dtype=np.int64),
            "soft": np.asarray([j.soft for j in rows], dtype=np.float32),
            "expert": np.asarray([j.expert_mean is not None for j in rows], dtype=bool),
            "expert_mean": np.asarray([j.expert_mean if j.expert_mean is not None else math.nan
                                       for j in rows], dtype=np.float64),
        }


def prepare(dataset: Dataset, cache: FeatureCache, *, tta: str = "none",
            prompts: list[str] | None = None, include_flagged: bool = False) -> Prepared:
    """Filters the data set and loads (or computes, once) the features it needs."""
    filtered = legal_filter(dataset)
    if cache.image_precision == "int8" and cache.int8_table is None:
        # The table comes from allowed photos only, like everything but the minor detector.
        cache.calibrate_int8([dataset.train_images[p] for p in filtered.photos])
    if include_flagged:
        photos = sorted(dataset.positives())
        captions = [c for caps in dataset.positives().values() for c in caps]
        judged = dataset.judgments()
    else:
        photos = filtered.photos
        captions = [c for caps in filtered.positives.values() for c in caps]
        judged = filtered.judgments
    texts = sorted({c.text for c in captions} | {j.text for j in judged})
    pooled, logits = cache.image([dataset.train_images[p] for p in photos], tta)
    text = cache.text(texts)
    prompts = prompts or list(cache.model_config["concept_prompts"])
    concepts = cache.concepts(prompts)
    return Prepared(dataset, filtered, cache, tta, photos, torch.from_numpy(pooled),
                    torch.from_numpy(logits), texts, torch.from_numpy(text), concepts, prompts)


def split_photos(photos: list[str], val_photos: int, seed: int) -> tuple[list[str], list[str]]:
    """(train, validation) photo names: a seeded shuffle; validation takes ``val_photos`` photos
    (at most a fifth of them when there are fewer than twice as many)."""
    order = sorted(photos)
    random.Random(seed).shuffle(order)
    n_val = val_photos if len(order) >= 2 * val_photos else max(1, len(order) // 5)
    return sorted(order[n_val:]), sorted(order[:n_val])


# --- models over prepared features -----------------------------------------------------------

def head_config(config: TrainConfig, model_cfg: dict[str, Any]) -> HeadConfig:
    """The heads a TrainConfig asks for, on the towers of a model config."""
    return HeadConfig(
        pooled_dim=model_cfg["image_tower"]["pooled_dim"],
        num_classes=model_cfg["image_tower"]["num_classes"],
        text_dim=model_cfg["text_tower"]["dim"], dim=model_cfg["dim"],
        concept_top_k=model_cfg["concept_top_k"], init_scale=config.init_scale,
        init_bias=config.init_bias, head_type=config.head, hidden=config.hidden,
        pooled_norm=config.pooled_norm, pooled_sqrt=config.pooled_sqrt, dropout=config.dropout,
        tta=config.tta,
    )


def zero_shot_model(prep: Prepared, model_cfg: dict[str, Any]) -> FusedModel:
    """The untrained model with the model config's own prompts and t, b (the runtime's
    zero-shot model)."""
    from withsense.model.runtime import head_config as runtime_head_config

    concepts = prep.concepts if prep.prompts == model_cfg["concept_prompts"] else \
        prep.cache.concepts(model_cfg["concept_prompts"])
    return FusedModel(runtime_head_config(model_cfg), concepts).eval()


@torch.no_grad()
def embed(model: FusedModel, prep: Prepared, photo_rows: np.ndarray | None = None,
          text_rows: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(image vectors of photo_rows, text vectors of text_rows); None means all."""
    model.eval()
    photos = torch.arange(len(prep.photos)) if photo_rows is None else torch.as_tensor(photo_rows)
    texts = torch.arange(len(prep.texts)) if text_rows is None else torch.as_tensor(text_rows)
    images = model.embed_image(prep.pooled[photos], prep.logits[photos])
    return images, model.embed_text(prep.text[texts])


@torch.no_grad()
def pair_cosines(model: FusedModel, prep: Prepared, text_rows: np.ndarray,
                 photo_rows: np.ndarray) -> np.ndarray:
    """The cosine of each (text row, photo row) pair."""
    if len(text_rows) == 0:
        return np.zeros(0)
    images, texts = embed(model, prep, photo_rows, text_rows)
    return (images * texts).sum(-1).numpy().astype(np.float64)


# --- runtime conditions ----------------------------------------------------------------------

@contextmanager
def torch_threads(count: int = 1) -> Iterator[None]:
    """Small matrices: one intra-op thread is faster than two fighting over shared cores."""
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        with threadpool_limits(limits=count):
            yield
    finally:
        torch.set_num_threads(previous)


def seed_everything(seed: int) -> torch.Generator:
    """Seeds Python, NumPy and torch; returns a torch generator of its own for batch order."""
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
