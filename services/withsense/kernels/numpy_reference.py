"""The cosine-sigmoid reference (``reference.cosine_sigmoid_reference``) in numpy, for processes
without torch: the gateway scores its candidates with it when no GPU is at hand.

Same arithmetic as the torch reference: both vectors L2-normalised with the norm clamped at
``EPS``, the cosine in float32, then ``sigmoid(scale * cos + bias)``; the results agree to float32
rounding (|Δp| < 1e-6; tests/kernels/test_numpy_reference.py).
"""

from __future__ import annotations

import numpy as np

EPS = 1e-12  # the torch reference's (F.normalize's) clamp of the norm


def _normalise(rows: np.ndarray) -> np.ndarray:
    norms = np.linalg.norm(rows, axis=-1, keepdims=True)
    return rows / np.maximum(norms, np.float32(EPS))


def cosine_sigmoid_numpy(queries: np.ndarray, candidates: np.ndarray, segment_offsets: np.ndarray,
                         scale: float, bias: float) -> np.ndarray:
    """probs[N] float32 for ragged segments of candidates [N, D], one query [B, D] each."""
    queries = np.asarray(queries, dtype=np.float32)
    candidates = np.asarray(candidates, dtype=np.float32)
    offsets = np.asarray(segment_offsets, dtype=np.int64)
    if queries.ndim != 2 or candidates.ndim != 2:
        raise ValueError("queries and candidates must be 2-d [rows, dim]")
    if candidates.shape[0] and queries.shape[1] != candidates.shape[1]:
        raise ValueError(
            f"queries have dim {queries.shape[1]} but candidates have dim {candidates.shape[1]}")
    if offsets.size != queries.shape[0] + 1 or offsets[0] != 0 \
            or offsets[-1] != candidates.shape[0] or (np.diff(offsets) < 0).any():
        raise ValueError("segment_offsets must have B + 1 entries, start at 0, never decrease "
                         "and end at N")
    ids = np.repeat(np.arange(queries.shape[0]), np.diff(offsets))
    cosine = np.einsum("nd,nd->n", _normalise(queries)[ids], _normalise(candidates))
    logits = np.float32(scale) * cosine + np.float32(bias)
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


__all__ = ["EPS", "cosine_sigmoid_numpy"]
