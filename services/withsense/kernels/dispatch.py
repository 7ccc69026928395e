"""Which scorer runs: the Triton kernel on CUDA, the torch reference elsewhere."""

from __future__ import annotations

import torch

from withsense.kernels.numpy_reference import check_segments
from withsense.kernels.reference import cosine_sigmoid_reference


def validate_segments(queries: torch.Tensor, candidates: torch.Tensor, offsets: torch.Tensor) -> None:
    check_segments(tuple(queries.shape), tuple(candidates.shape), offsets.detach().cpu().numpy())


def score_backend(device: torch.device | str) -> str:
    """'triton' where the kernel runs natively (CUDA), 'torch' elsewhere."""
    return "triton" if torch.device(device).type == "cuda" else "torch"


def cosine_sigmoid(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    segment_offsets: torch.Tensor,
    scale: float,
    bias: float,
) -> torch.Tensor:
    """probs[N] for ragged segments of candidates, one query each."""
    validate_segments(queries, candidates, segment_offsets)
    if score_backend(candidates.device) == "triton":
        from withsense.kernels.cosine_sigmoid import cosine_sigmoid_triton

        return cosine_sigmoid_triton(queries, candidates, segment_offsets, scale, bias)
    return cosine_sigmoid_reference(queries, candidates, segment_offsets, scale, bias)
