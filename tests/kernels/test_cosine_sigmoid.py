"""The Triton kernel against a float64 torch reference, under TRITON_INTERPRET=1 on the CPU."""

from __future__ import annotations

import os

import pytest
import torch
from withsense.kernels import cosine_sigmoid, validate_segments
from withsense.kernels.reference import cosine_sigmoid_reference

pytestmark = pytest.mark.skipif(
    not torch.cuda.is_available() and os.environ.get("TRITON_INTERPRET") != "1",
    reason="the Triton kernel runs on CUDA or under TRITON_INTERPRET=1",
)

TOLERANCE = {torch.float32: 2e-6, torch.float16: 2e-3}
# WITHSENSE_KERNEL_SEED: an integer fixes the cases' seed (default 0, so a failure reproduces);
# "random" draws a new one for every case (the failure message names it).
SEED_SETTING = os.environ.get("WITHSENSE_KERNEL_SEED", "0")
DEVICE = "cuda" if torch.cuda.is_available() else "cpu"


def make_case(lengths: list[int], dim: int, dtype: torch.dtype, seed: int):
    gen = torch.Generator().manual_seed(seed)
    queries = torch.randn(len(lengths), dim, generator=gen).to(dtype)
    candidates = torch.randn(sum(lengths), dim, generator=gen).to(dtype)
    # Mix in near-duplicates of the query so probabilities span (0, 1), not only the tail.
    offsets = torch.tensor([0, *torch.tensor(lengths).cumsum(0).tolist()], dtype=torch.int32)
    for i, n in enumerate(lengths):
        if n:
            start = int(offsets[i])
            candidates[start] = (queries[i].float() * 3).to(dtype)
    return queries.to(DEVICE), candidates.to(DEVICE), offsets.to(DEVICE)


def case_seed() -> int:
    if SEED_SETTING == "random":
        return int.from_bytes(os.urandom(4), "little")
    return int(SEED_SETTING)


def run_kernel(*args, **kwargs):
    from withsense.kernels.cosine_sigmoid import cosine_sigmoid_triton

    return cosine_sigmoid_triton(*args, **kwargs)


CASES = [
    pytest.param([1], 384, id="single"),
    pytest.param([5, 0, 3], 33, id="empty-middle-odd-dim"),
    pytest.param([0, 0, 7], 130, id="leading-empty-dim-not-block-multiple"),
    pytest.param([67, 1, 0, 129], 384, id="n-not-block-multiple"),
    pytest.param([200], 17, id="one-long-segment"),
    pytest.param([3] * 41 + [0], 64, id="many-queries-trailing-empty"),
]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=["fp32", "fp16"])
@pytest.mark.parametrize(("lengths", "dim"), CASES)
def test_kernel_matches_float64_reference(lengths, dim, dtype):
    seed = case_seed()
    queries, candidates, offsets = make_case(lengths, dim, dtype, seed)
    scale, bias = 10.0, -5.0
    expected = cosine_sigmoid_reference(
        queries.cpu(), candidates.cpu(), offsets.cpu(), scale, bias, dtype=torch.float64
    )
    got = run_kernel(queries, candidates, offsets, scale, bias, block_n=16, block_d=32).cpu()
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, expected.float(), atol=TOLERANCE[dtype], rtol=0, msg=f"seed={seed}")


def test_every_output_is_written():
    queries, candidates, offsets = make_case([9, 0, 23], 50, torch.float32, 1)
    poisoned = torch.full((candidates.shape[0],), float("nan"), device=DEVICE)
    run_kernel(queries, candidates, offsets, 4.0, -1.0, block_n=8, block_d=16, out=poisoned)
    assert torch.isfinite(poisoned).all(), "some outputs were never written"
    expected = cosine_sigmoid_reference(queries, candidates, offsets, 4.0, -1.0, dtype=torch.float64)
    torch.testing.assert_close(poisoned.cpu(), expected.float().cpu(), atol=2e-6, rtol=0)


def test_no_candidates_gives_empty_output():
    queries = torch.randn(2, 8, device=DEVICE)
    candidates = torch.empty(0, 8, device=DEVICE)
    offsets = torch.zeros(3, dtype=torch.int32, device=DEVICE)
    assert run_kernel(queries, candidates, offsets, 10.0, -10.0).numel() == 0


def test_dispatch_equals_reference_on_cpu():
    queries, candidates, offsets = make_case([4, 2], 24, torch.float32, 7)
    got = cosine_sigmoid(queries.cpu(), candidates.cpu(), offsets.cpu(), 10.0, -10.0)
    expected = cosine_sigmoid_reference(
        queries.cpu(), candidates.cpu(), offsets.cpu(), 10.0, -10.0, dtype=torch.float64
    )
    torch.testing.assert_close(got, expected.float(), atol=1e-6, rtol=0)


@pytest.mark.parametrize(
    ("offsets", "message"),
    [([0, 2], "needs 3 entries"), ([1, 2, 3], "start at 0"), ([0, 3, 2], "never decrease")],
)
def test_bad_segments_are_rejected(offsets, message):
    with pytest.raises(ValueError, match=message):
        validate_segments(torch.zeros(2, 4), torch.zeros(3, 4), torch.tensor(offsets))
