"""Triton kernel: batched cosine-sigmoid scoring of ragged query segments in one launch.

queries[B, D], candidates[N, D], segment_offsets[B + 1] (candidates offsets[i]..offsets[i+1] belong
to query i) -> probs[N] = sigmoid(t * cos(q, c) + b). fp32 or fp16 inputs, fp32 accumulation.

One program scores BLOCK_N candidates: it finds each candidate's query by a binary search over
the offsets (so empty segments cost nothing), then streams the candidate rows once in BLOCK_D
chunks, accumulating q·c, |q|² and |c|². Candidates are read exactly once, so the kernel is
memory bound: its floor is N * D * bytes / bandwidth. Queries are small and stay in cache.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl

# Launch parameters per input dtype, from a sweep on an H200 at N = 1M, D = 384
# (docs/benchmarks.md, "The Triton kernel on a GPU"). fp32 rows are twice the bytes: smaller
# blocks with more warps keep more loads in flight (0.64 -> 0.90 of the copy floor); fp16 is
# best at the original 64 x 128 with 4 warps (0.83).
LAUNCH = {
    torch.float32: {"block_n": 32, "block_d": 128, "num_warps": 16},
    torch.float16: {"block_n": 64, "block_d": 128, "num_warps": 4},
}
DEFAULT_LAUNCH = LAUNCH[torch.float32]


@triton.jit
def _cosine_sigmoid_kernel(
    q_ptr, c_ptr, offsets_ptr, out_ptr,
    n_candidates, n_queries, dim,
    stride_q, stride_c,
    scale, bias,
    SEARCH_STEPS: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_D: tl.constexpr,
):
    pid = tl.program_id(0)
    rows = pid * BLOCK_N + tl.arange(0, BLOCK_N)
    row_mask = rows < n_candidates

    # Binary search: the largest query index i with offsets[i] <= row (skips empty segments).
    lo = tl.zeros([BLOCK_N], dtype=tl.int32)
    hi = tl.zeros([BLOCK_N], dtype=tl.int32) + (n_queries - 1)
    for _ in range(SEARCH_STEPS):
        mid = (lo + hi + 1) // 2
        start = tl.load(offsets_ptr + mid, mask=row_mask, other=0)
        go_right = start <= rows
        lo = tl.where(go_right, mid, lo)
        hi = tl.where(go_right, hi, mid - 1)
    query = lo

    dot = tl.zeros([BLOCK_N], dtype=tl.float32)
    q_norm = tl.zeros([BLOCK_N], dtype=tl.float32)
    c_norm = tl.zeros([BLOCK_N], dtype=tl.float32)
    for d0 in range(0, dim, BLOCK_D):
        cols = d0 + tl.arange(0, BLOCK_D)
        mask = row_mask[:, None] & (cols[None, :] < dim)
        c = tl.load(c_ptr + rows[:, None].to(tl.int64) * stride_c + cols[None, :], mask=mask, other=0.0)
        q = tl.load(q_ptr + query[:, None].to(tl.int64) * stride_q + cols[None, :], mask=mask, other=0.0)
        c = c.to(tl.float32)
        q = q.to(tl.float32)
        dot += tl.sum(q * c, axis=1)
        q_norm += tl.sum(q * q, axis=1)
        c_norm += tl.sum(c * c, axis=1)

    eps = 1e-12
    cosine = dot / (tl.maximum(tl.sqrt(q_norm), eps) * tl.maximum(tl.sqrt(c_norm), eps))
    logit = scale * cosine + bias
    prob = 1.0 / (1.0 + tl.exp(-logit))
    tl.store(out_ptr + rows, prob, mask=row_mask)


def cosine_sigmoid_triton(
    queries: torch.Tensor,
    candidates: torch.Tensor,
    segment_offsets: torch.Tensor,
    scale: float,
    bias: float,
    *,
    block_n: int | None = None,
    block_d: int | None = None,
    num_warps: int | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Launches the kernel; inputs on one device (CUDA, or CPU under TRITON_INTERPRET=1).

    Block sizes and warps default to the measured best for the candidates' dtype (``LAUNCH``).
    """
    launch = LAUNCH.get(candidates.dtype, DEFAULT_LAUNCH)
    block_n = block_n or launch["block_n"]
    block_d = block_d or launch["block_d"]
    num_warps = num_warps or launch["num_warps"]
    n_candidates, dim = candidates.shape
    n_queries = queries.shape[0]
    if out is None:
        out = torch.empty(n_candidates, dtype=torch.float32, device=candidates.device)
    if n_candidates == 0:
        return out
    queries = queries.contiguous()
    candidates = candidates.contiguous()
    offsets = segment_offsets.to(device=candidates.device, dtype=torch.int32).contiguous()
    search_steps = max(1, math.ceil(math.log2(max(n_queries, 2))))
    grid = (triton.cdiv(n_candidates, block_n),)
    _cosine_sigmoid_kernel[grid](
        queries, candidates, offsets, out,
        n_candidates, n_queries, dim,
        queries.stride(0), candidates.stride(0),
        float(scale), float(bias),
        SEARCH_STEPS=search_steps, BLOCK_N=block_n, BLOCK_D=block_d, num_warps=num_warps,
    )
    return out
