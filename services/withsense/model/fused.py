"""The fused image-text model: trainable heads over frozen tower features.

Both towers map into one joint space of `dim` dimensions; a pair scores
`p = sigmoid(t * cos(u, v) + b)` (the SigLIP form). The heads start as the zero-shot ConSE
model exactly: the image's joint vector is its concept embedding (top-k ImageNet classes'
prompt embeddings, weighted by probability) and the text's is its MiniLM embedding, so an
untrained model is the zero-shot one and training can only be chosen over it on validation.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn
from torch.nn import functional as F


@dataclass(frozen=True)
class HeadConfig:
    pooled_dim: int = 1280
    num_classes: int = 1000
    text_dim: int = 384
    dim: int = 384
    concept_top_k: int = 10
    init_scale: float = 10.0
    init_bias: float = -10.0


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

    def concept_vectors(self, logits: torch.Tensor) -> torch.Tensor:
        """ConSE: softmax over the top-k classes, weighted mean of their prompt embeddings."""
        top_logits, top_index = logits.topk(self.config.concept_top_k, dim=-1)
        weights = top_logits.softmax(dim=-1)
        mixed = (weights.unsqueeze(-1) * self.concepts[top_index]).sum(dim=1)
        return F.normalize(mixed, dim=-1)

    def embed_image(self, pooled: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        joint = self.concept_proj(self.concept_vectors(logits)) + self.pooled_proj(pooled)
        return F.normalize(joint, dim=-1)

    def embed_text(self, text_features: torch.Tensor) -> torch.Tensor:
        return F.normalize(self.text_proj(text_features), dim=-1)

    def probability(self, cosine: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.scale * cosine + self.bias)

    def pair_logits(self, text: torch.Tensor, image: torch.Tensor) -> torch.Tensor:
        """[T, I] logits t * cos + b for all text-image pairs (unit vectors in)."""
        return self.scale * text @ image.T + self.bias
