"""Batched cosine-sigmoid scoring: the Triton kernel on CUDA, the torch reference elsewhere
(``dispatch``), and a numpy twin of the reference for processes without torch (``numpy_reference``,
the gateway). Importing this package does not import torch: the dispatch loads on first use."""

from __future__ import annotations

from typing import Any

_DISPATCH = ("cosine_sigmoid", "score_backend", "validate_segments")


def __getattr__(name: str) -> Any:
    if name in _DISPATCH:
        from withsense.kernels import dispatch

        return getattr(dispatch, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = list(_DISPATCH)
