"""The gateway's numpy scorer against the torch reference (the worker's CPU path)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from withsense.kernels.numpy_reference import cosine_sigmoid_numpy
from withsense.kernels.reference import cosine_sigmoid_reference


@pytest.mark.parametrize("lengths", [[40], [0, 3, 0, 17], [1], [0]])
@pytest.mark.parametrize("scale,bias", [(10.0, -10.0), (37.5, -12.25), (1.0, 0.0)])
def test_numpy_matches_the_torch_reference(lengths, scale, bias):
    rng = np.random.default_rng(sum(lengths) + int(scale))
    queries = rng.standard_normal((len(lengths), 384)).astype(np.float32)
    candidates = rng.standard_normal((sum(lengths), 384)).astype(np.float32) * 3
    offsets = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
    expected = cosine_sigmoid_reference(torch.from_numpy(queries), torch.from_numpy(candidates),
                                        torch.from_numpy(offsets), scale, bias).numpy()
    got = cosine_sigmoid_numpy(queries, candidates, offsets, scale, bias)
    assert got.dtype == np.float32 and got.shape == expected.shape
    assert np.abs(got - expected).max(initial=0.0) < 1e-6


def test_a_zero_vector_scores_like_the_reference():
    queries = np.zeros((1, 8), dtype=np.float32)
    candidates = np.ones((2, 8), dtype=np.float32)
    offsets = np.array([0, 2])
    expected = cosine_sigmoid_reference(torch.from_numpy(queries), torch.from_numpy(candidates),
                                        torch.from_numpy(offsets), 10.0, -1.0).numpy()
    assert np.allclose(cosine_sigmoid_numpy(queries, candidates, offsets, 10.0, -1.0), expected)


@pytest.mark.parametrize("queries,candidates,offsets,message", [
    (np.zeros((1, 4)), np.zeros((2, 5)), [0, 2], "dim"),
    (np.zeros((1, 4)), np.zeros((2, 4)), [0, 1], "segment_offsets"),
    (np.zeros((2, 4)), np.zeros((2, 4)), [0, 2], "segment_offsets"),
    (np.zeros((2, 4)), np.zeros((2, 4)), [0, 2, 1], "segment_offsets"),
    (np.zeros(4), np.zeros((2, 4)), [0, 2], "2-d"),
])
def test_bad_segments_are_refused(queries, candidates, offsets, message):
    with pytest.raises(ValueError, match=message):
        cosine_sigmoid_numpy(queries, candidates, np.asarray(offsets), 1.0, 0.0)


def test_the_gateway_scores_without_importing_torch():
    """The gateway image has no torch: the kernels package, the gateway and its scorer must
    import (and score) without it."""
    import subprocess
    import sys

    code = ("import sys, numpy as np; import withsense.gateway.server; "
            "from withsense.gateway.scoring import local_scorer; "
            "s = local_scorer('gateway', scale=10.0, bias=-10.0, model_version='v', "
            "worker_backend='torch'); s(np.ones(4, np.float32), np.ones((2, 4), np.float32)); "
            "assert 'torch' not in sys.modules, 'torch imported'")
    subprocess.run([sys.executable, "-c", code], check=True)
