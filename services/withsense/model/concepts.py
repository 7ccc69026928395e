"""ImageNet class names as text prompts: the bridge of the zero-shot (ConSE) start.

ConSE (Norouzi et al. 2014) places an image in the text space as the probability-weighted mean
of the text embeddings of its top-k ImageNet classes.
"""

from __future__ import annotations

from functools import lru_cache

import torch


@lru_cache(maxsize=1)
def imagenet_class_names() -> tuple[str, ...]:
    """The 1000 ImageNet-1k class names, first synonym of each (e.g. 'tiger cat')."""
    from timm.data import ImageNetInfo

    info = ImageNetInfo()
    return tuple(info.index_to_description(i).split(",")[0].strip() for i in range(1000))


def concept_embeddings(text_tower, prompts: list[str]) -> torch.Tensor:
    """[1000, D] unit vectors: the mean over prompt templates of each class's text embedding."""
    names = imagenet_class_names()
    total = None
    for template in prompts:
        vectors = text_tower.encode([template.format(name) for name in names])
        total = vectors if total is None else total + vectors
    assert total is not None, "at least one prompt template is needed"
    return torch.nn.functional.normalize(total, dim=-1)
