"""Which scorer runs: the Triton kernel on CUDA, the torch reference elsewhere."""

from __future__ import annotations

import torch

from withsense.kernels.reference import cosine_sigmoid_reference


def validate_segments(queries: torch.Tensor, candidates: torch.Tensor, offsets: torch.Tensor) -> None:
    if queries.ndim != 2 or candidates.ndim != 2:
        raise ValueError("queries and candidates must be 2-d [rows, dim]")
    if candidates.shape[0] and queries.shape[1] != candidates.shape[1]:
        raise ValueError(
            f"queries have dim {queries.shape[1]} but candidates have dim {candidates.shape[1]}"
        )
    if offsets.numel() != queries.shape[0] + 1:
        raise ValueError(f"segment_offsets needs {queries.shape[0] + 1} entries, got {offsets.numel()}")
    if int(offsets[0]) != 0 or int(offsets[-1]) != candidates.shape[0] or bool((offsets.diff() < 0).any()):
        raise ValueError("segment_offsets must start at 0, never decrease and end at N")


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
