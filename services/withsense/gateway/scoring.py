"""Where a search's candidates are scored: in the gateway, or by the worker's Score call.

The store returns every candidate's vector, and the score is ``sigmoid(t * cos + b)`` with the
model's t and b (GetModelInfo), so the gateway can score without a second worker call (measured:
benchmarks/bench_search_path.py, docs/benchmarks.md "Search path"). The kernel dispatch stays
the rule: with a GPU in the gateway's process the Triton kernel scores; without one the numpy
twin of the torch reference does (the gateway image has no torch), the very numbers the worker's
CPU path gives. When the worker scores on a GPU and the gateway has none, ``auto`` leaves the
scoring to the worker, so the Triton kernel scores wherever a GPU is present.

Without a GPU the gateway does not even need the vectors: the store's engine scores the
candidates' exact cosines (``StoreHit.cosine``) and the numpy path applies the kernel's last
step, ``sigmoid(t * cos + b)``, to them; shipping ~100 image vectors out of the engine as Python
lists cost ~2 ms of a search's CPU.
"""

from __future__ import annotations

import importlib.util
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from withsense.kernels.numpy_reference import cosine_sigmoid_numpy, sigmoid_of_cosines

log = logging.getLogger(__name__)

SCORE_PLACES = ("auto", "gateway", "worker")


def local_gpu() -> bool:
    """Whether this process can run the Triton kernel (torch installed and CUDA present). torch
    is imported only on a machine with an NVIDIA device: elsewhere it would cost the gateway
    seconds of start-up and hundreds of MB for nothing."""
    if importlib.util.find_spec("torch") is None or not Path("/dev/nvidiactl").exists():
        return False
    import torch

    return bool(torch.cuda.is_available())


@dataclass(frozen=True)
class LocalScorer:
    """The model's calibrated pair score, computed in the gateway's process."""

    scale: float
    bias: float
    model_version: str
    backend: str  # "triton" or "numpy"

    def __call__(self, query: np.ndarray, candidates: np.ndarray) -> np.ndarray:
        offsets = np.asarray([0, len(candidates)], dtype=np.int64)
        if self.backend == "triton":
            import torch

            from withsense.kernels import cosine_sigmoid

            probs = cosine_sigmoid(torch.from_numpy(query[None, :]).cuda(),
                                   torch.from_numpy(np.ascontiguousarray(candidates)).cuda(),
                                   torch.from_numpy(offsets).cuda(), self.scale, self.bias)
            return probs.cpu().numpy()
        return cosine_sigmoid_numpy(query[None, :], candidates, offsets, self.scale, self.bias)

    @property
    def needs_vectors(self) -> bool:
        """Whether it scores vectors (the Triton kernel) rather than the store's cosines."""
        return self.backend == "triton"

    def of_cosines(self, cosines: np.ndarray) -> np.ndarray:
        """p of each candidate from its cosine to the query (the numpy path)."""
        return sigmoid_of_cosines(cosines, self.scale, self.bias)


def local_scorer(place: str, *, scale: float, bias: float, model_version: str,
                 worker_backend: str) -> LocalScorer | None:
    """The gateway's scorer for ``place`` ("auto", "gateway", "worker"), None: the worker scores."""
    if place not in SCORE_PLACES:
        raise ValueError(f"unknown score place {place!r}; choose one of {SCORE_PLACES}")
    if place == "worker":
        return None
    gpu = local_gpu()
    if place == "auto" and worker_backend == "triton" and not gpu:
        log.info("candidates are scored by the worker (its Triton kernel; no GPU here)")
        return None
    backend = "triton" if gpu else "numpy"
    log.info("candidates are scored in the gateway (%s)", backend)
    return LocalScorer(scale=scale, bias=bias, model_version=model_version, backend=backend)


__all__ = ["SCORE_PLACES", "LocalScorer", "local_gpu", "local_scorer"]
