"""Plain torch reference of the batched cosine-sigmoid scoring (the CPU path and the test oracle)."""

from __future__ import annotations

import torch
from torch.nn import functional as F

EPS = 1e-12


def segment_ids(segment_offsets: torch.Tensor, num_candidates: int) -> torch.Tensor:
    """For each candidate, the index of the query whose segment holds it."""
    lengths = segment_offsets[1:] - segment_offsets[:-1]
    queries = torch.arange(lengths.numel(), device=segment_offsets.device)
    ids = torch.repeat_interleave(queries, lengths.long())
    if ids.numel() != num_candidates:
        raise ValueError(
            f"segment_offsets cover {ids.numel()} candidates but {num_candidates} were given"
        )
    return ids


def cosine_sigmoid_reference(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    segment_offsets: torch.Tensor,
    scale: float,
    bias: float,
    *,
    dtype: torch.dtype = torch.float32,
) -> torch.Tensor:
    """probs[n] = sigmoid(scale * cos(queries[seg(n)], candidates[n]) + bias), computed in dtype."""
    q = F.normalize(queries.to(dtype), dim=-1, eps=EPS)
    c = F.normalize(candidates.to(dtype), dim=-1, eps=EPS)
    ids = segment_ids(segment_offsets, candidates.shape[0])
    cosine = (q[ids] * c).sum(dim=-1)
    return torch.sigmoid(scale * cosine + bias).to(torch.float32)
