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


def check_segments(queries_shape: tuple[int, ...], candidates_shape: tuple[int, ...],
                   offsets: np.ndarray) -> None:
    """Raises ValueError unless queries [B, D] and candidates [N, D] split by offsets [B + 1]
    (from 0 to N, never decreasing) make ragged segments. Shared with the torch dispatch
    (``dispatch.validate_segments``), so both paths refuse the same inputs alike."""
    if len(queries_shape) != 2 or len(candidates_shape) != 2:
        raise ValueError("queries and candidates must be 2-d [rows, dim]")
    if candidates_shape[0] and queries_shape[1] != candidates_shape[1]:
        raise ValueError(
            f"queries have dim {queries_shape[1]} but candidates have dim {candidates_shape[1]}")
    if offsets.size != queries_shape[0] + 1:
        raise ValueError(f"segment_offsets needs {queries_shape[0] + 1} entries, got {offsets.size}")
    if offsets[0] != 0 or offsets[-1] != candidates_shape[0] or (np.diff(offsets) < 0).any():
        raise ValueError("segment_offsets must start at 0, never decrease and end at N")


def cosine_sigmoid_numpy(queries: np.ndarray, candidates: np.ndarray, segment_offsets: np.ndarray,
                         scale: float, bias: float) -> np.ndarray:
    """probs[N] float32 for ragged segments of candidates [N, D], one query [B, D] each."""
    queries = np.asarray(queries, dtype=np.float32)
    candidates = np.asarray(candidates, dtype=np.float32)
    offsets = np.asarray(segment_offsets, dtype=np.int64)
    check_segments(queries.shape, candidates.shape, offsets)
    ids = np.repeat(np.arange(queries.shape[0]), np.diff(offsets))
    cosine = np.einsum("nd,nd->n", _normalise(queries)[ids], _normalise(candidates))
    return sigmoid_of_cosines(cosine, scale, bias)


def sigmoid_of_cosines(cosines: np.ndarray, scale: float, bias: float) -> np.ndarray:
    """probs[N] float32: ``sigmoid(scale * cos + bias)`` of cosines computed elsewhere (the
    kernel's last step; the store's engine gives a search's cosines)."""
    logits = np.float32(scale) * np.asarray(cosines, dtype=np.float32) + np.float32(bias)
    return (1.0 / (1.0 + np.exp(-logits))).astype(np.float32)


__all__ = ["EPS", "check_segments", "cosine_sigmoid_numpy", "sigmoid_of_cosines"]
