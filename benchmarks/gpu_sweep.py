"""Sweeps the cosine-sigmoid kernel's launch parameters at N = 1M, D = 384 (fp32, fp16) on a GPU.

    python benchmarks/gpu_sweep.py     # CUDA only; about 2 minutes on an H200

Prints the 12 fastest (BLOCK_N, BLOCK_D, warps, stages) per dtype with their share of the
device-to-device copy floor measured in the same run, and the original launch (64, 128, 4 warps,
3 stages) as the baseline. The winners are `LAUNCH` in `withsense/kernels/cosine_sigmoid.py`.
"""

from __future__ import annotations

import itertools
import math
import sys
from pathlib import Path

import torch
import triton
import triton.testing

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "services"))
from withsense.kernels.cosine_sigmoid import _cosine_sigmoid_kernel  # noqa: E402
from withsense.kernels.reference import cosine_sigmoid_reference  # noqa: E402

B, D, N = 64, 384, 1_000_000
SCALE, BIAS = 10.0, -5.0
GRID = itertools.product((32, 64, 128, 256), (128, 512), (4, 8, 16), (1, 3))
BASELINE = (64, 128, 4, 3)


def time_launch(q, c, offsets, out, expected, params) -> tuple[float, float]:
    block_n, block_d, warps, stages = params
    steps = math.ceil(math.log2(B))

    def call() -> None:
        _cosine_sigmoid_kernel[(triton.cdiv(N, block_n),)](
            q, c, offsets, out, N, B, D, q.stride(0), c.stride(0), SCALE, BIAS,
            SEARCH_STEPS=steps, BLOCK_N=block_n, BLOCK_D=block_d, num_warps=warps, num_stages=stages)

    call()
    torch.cuda.synchronize()
    error = float((out.double().cpu() - expected).abs().max())
    return 1000 * triton.testing.do_bench(call, warmup=10, rep=60), error


def main() -> None:
    generator = torch.Generator().manual_seed(0)
    cuts = torch.sort(torch.randint(0, N + 1, (B - 1,), generator=generator)).values
    offsets = torch.cat([torch.tensor([0]), cuts, torch.tensor([N])])
    q32 = torch.randn(B, D, generator=generator)
    c32 = torch.randn(N, D, generator=generator)
    expected = cosine_sigmoid_reference(q32.double(), c32.double(), offsets, SCALE, BIAS,
                                        dtype=torch.float64)
    offsets_dev = offsets.to("cuda", torch.int32)
    grid = [p for p in GRID if p[0] * p[1] <= 65536]
    print("| dtype | BLOCK_N | BLOCK_D | warps | stages | us | share of copy floor | max err |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|")
    for dtype in (torch.float32, torch.float16):
        q, c = q32.to("cuda", dtype), c32.to("cuda", dtype)
        out = torch.empty(N, device="cuda", dtype=torch.float32)
        elt = c.element_size()
        moved = N * D * elt + N * 4 + B * D * elt + (B + 1) * 4
        floor = 1000 * triton.testing.do_bench(c.clone, warmup=25, rep=200) * moved / (2 * N * D * elt)
        rows = []
        for params in grid:
            try:
                us, error = time_launch(q, c, offsets_dev, out, expected, params)
            except Exception as exc:  # a launch the device cannot run (registers, shared memory)
                print(f"skipped {params}: {type(exc).__name__}", file=sys.stderr)
                continue
            rows.append((us, params, error))
        rows.sort()
        best = rows[:12] + [r for r in rows if r[1] == BASELINE]
        for us, (block_n, block_d, warps, stages), error in best:
            tag = " (baseline)" if (block_n, block_d, warps, stages) == BASELINE else ""
            print(f"| {str(dtype)[6:]}{tag} | {block_n} | {block_d} | {warps} | {stages} | {us:.1f} | "
                  f"{floor / us:.2f} | {error:.1e} |")


if __name__ == "__main__":
    main()
