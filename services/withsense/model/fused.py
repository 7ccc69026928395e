"""The fused image-text model: trainable heads over frozen tower features.

Both towers map into one joint space of `dim` dimensions; a pair scores
`p = sigmoid(t * cos(u, v) + b)` (the SigLIP form). The heads start as the zero-shot ConSE
model exactly: the image's joint vector is its concept embedding (top-k ImageNet classes'
prompt embeddings, weighted by probability) and the text's is its MiniLM embedding, so an
untrained model is the zero-shot one and training can only be chosen over it on validation.

Head types (``HeadConfig.head_type``; every one starts as the zero-shot model exactly):

- ``linear``: image = A·concept + W·pooled, text = B·minilm (A, B identity, W zero at init).
- ``residual_mlp``: the linear heads plus a two-layer MLP on each side (image: on
  [concept, pooled]; text: on minilm) whose last layer starts at zero.

Options that default to the original model (so older artifacts load unchanged):
``pooled_sqrt`` takes the signed square root of the pooled features first (power
normalisation); ``pooled_norm`` standardises them with stored train-set mean and std;
``dropout`` (training only) drops input features; ``tta`` tells the runtime which test-time
augmentation of the photo the heads were trained on (``none`` or ``flip``: the mean of the
features of the photo and of its mirror image).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F

from withsense.model.catalog import HEAD_TYPES


@dataclass(frozen=True)
class HeadConfig:
    pooled_dim: int = 1280
    num_classes: int = 1000
    text_dim: int = 384
    dim: int = 384
    concept_top_k: int = 10
    init_scale: float = 10.0
    init_bias: float = -10.0
    head_type: str = "linear"
    hidden: int = 512
    pooled_norm: bool = False
    pooled_sqrt: bool = False
    dropout: float = 0.0
    tta: str = "none"




def _mlp(dim_in: int, hidden: int, dim_out: int) -> nn.Sequential:
    """Two layers; the last starts at zero so the residual branch adds nothing at init."""
    last = nn.Linear(hidden, dim_out)
    nn.init.zeros_(last.weight)
    nn.init.zeros_(last.bias)
    return nn.Sequential(nn.Linear(dim_in, hidden), nn.GELU(), last)


def _identity_linear(dim_in: int, dim_out: int) -> nn.Linear:
    layer = nn.Linear(dim_in, dim_out, bias=True)
    with torch.no_grad():
        layer.weight.copy_(torch.eye(dim_out, dim_in))
        layer.bias.zero_()
    return layer


def _zero_linear(dim_in: int, dim_out: int) -> nn.Linear:
    layer = nn.Linear(dim_in, dim_out, bias=False)
    nn.init.zeros_(layer.weight)
    return layer


class FusedModel(nn.Module):
    """Heads: image = A·concept + W·pooled, text = B·minilm; then L2-normalised."""

    concepts: torch.Tensor
    pooled_mean: torch.Tensor  # with pooled_norm
    pooled_std: torch.Tensor

    def __init__(self, config: HeadConfig, concepts: torch.Tensor) -> None:
        super().__init__()
        if concepts.shape != (config.num_classes, config.text_dim):
            raise ValueError(
                f"concept embeddings have shape {tuple(concepts.shape)}, "
                f"expected ({config.num_classes}, {config.text_dim})"
            )
        self.config = config
        self.register_buffer("concepts", concepts.float().contiguous())
        self.concept_proj = _identity_linear(config.text_dim, config.dim)
        self.pooled_proj = _zero_linear(config.pooled_dim, config.dim)
        self.text_proj = _identity_linear(config.text_dim, config.dim)
        self.scale = nn.Parameter(torch.tensor(float(config.init_scale)))
        self.bias = nn.Parameter(torch.tensor(float(config.init_bias)))
        if config.head_type not in HEAD_TYPES:
            raise ValueError(f"unknown head_type {config.head_type!r}; known: {HEAD_TYPES}")
        if config.pooled_norm:
            self.register_buffer("pooled_mean", torch.zeros(config.pooled_dim))
            self.register_buffer("pooled_std", torch.ones(config.pooled_dim))
        if config.head_type == "residual_mlp":
            self.image_mlp = _mlp(config.text_dim + config.pooled_dim, config.hidden, config.dim)
            self.text_mlp = _mlp(config.text_dim, config.hidden, config.dim)
        self.input_dropout = nn.Dropout(config.dropout)

    def concept_vectors(self, logits: torch.Tensor) -> torch.Tensor:
        """ConSE: softmax over the top-k classes, weighted mean of their prompt embeddings."""
        top_logits, top_index = logits.topk(self.config.concept_top_k, dim=-1)
        weights = top_logits.softmax(dim=-1)
        mixed = (weights.unsqueeze(-1) * self.concepts[top_index]).sum(dim=1)
        return F.normalize(mixed, dim=-1)

    def embed_image(self, pooled: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        return self.embed_image_from_concepts(pooled, self.concept_vectors(logits))

    def pooled_inputs(self, pooled: torch.Tensor) -> torch.Tensor:
        """The pooled features as the image head sees them (signed sqrt, standardised)."""
        if self.config.pooled_sqrt:
            pooled = pooled.sign() * pooled.abs().sqrt()
        if self.config.pooled_norm:
            pooled = (pooled - self.pooled_mean) / self.pooled_std
        return pooled

    def embed_image_from_concepts(self, pooled: torch.Tensor, concept: torch.Tensor) -> torch.Tensor:
        """The image head on precomputed concept vectors (training caches them)."""
        pooled = self.input_dropout(self.pooled_inputs(pooled))
        joint = self.concept_proj(concept) + self.pooled_proj(pooled)
        if self.config.head_type == "residual_mlp":
            joint = joint + self.image_mlp(torch.cat([concept, pooled], dim=-1))
        return F.normalize(joint, dim=-1)

    def embed_text(self, text_features: torch.Tensor) -> torch.Tensor:
        joint = self.text_proj(text_features)
        if self.config.head_type == "residual_mlp":
            joint = joint + self.text_mlp(self.input_dropout(text_features))
        return F.normalize(joint, dim=-1)

    def probability(self, cosine: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.scale * cosine + self.bias)

    def pair_logits(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """[T, I] logits t * cos + b for all text-image pairs (unit vectors in)."""
        return self.scale * text @ image.T + self.bias
