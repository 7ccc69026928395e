"""Checks and times the Triton cosine-sigmoid kernel on a GPU, in one command.

    python benchmarks/gpu_check.py               # on a CUDA machine: N = 10k, 100k, 1M; fp32, fp16
    python benchmarks/gpu_check.py --dry-run     # anywhere: tiny sizes, TRITON_INTERPRET=1 on the CPU

For each N (candidates) and dtype it checks `cosine_sigmoid_triton` against the float64 torch
reference (`cosine_sigmoid_reference`) on B queries with ragged segments (some empty), then
times with `triton.testing.do_bench` (CUDA) the kernel against two torch baselines:

- "gather": normalise, gather each candidate's query row, row-wise dot, sigmoid (the torch
  reference in the input dtype, what the worker runs off CUDA);
- "per-segment matmul": one matvec per query over its segment (B small launches), sigmoid.

It prints microseconds and effective GB/s, where bytes = N*D*elt (candidates, read once)
+ N*4 (fp32 output) + B*D*elt + (B+1)*4, and the floor: those bytes over the bandwidth of a
device-to-device copy measured in the same run. Exit status 1 if any check fails.
In --dry-run the timings are of the Triton interpreter (perf_counter): they only show the
script runs, not the kernel's speed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Callable

TOLERANCE = {"float32": 1e-5, "float16": 2e-3}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny sizes on the CPU under TRITON_INTERPRET=1 (no GPU needed)")
    parser.add_argument("--sizes", type=int, nargs="+", default=None,
                        help="numbers of candidates N (default 10000 100000 1000000)")
    parser.add_argument("--dim", type=int, default=384)
    parser.add_argument("--queries", type=int, default=64, help="B, queries per call")
    parser.add_argument("--dtypes", nargs="+", default=["float32", "float16"],
                        choices=["float32", "float16"])
    parser.add_argument("--seed", type=int, default=0)
    return parser.parse_args()


def time_paths(bench_us, q, c, out, offsets_dev, offsets_long, bounds, scale, bias):
    """Microseconds of the kernel and of the two torch baselines on the same inputs."""
    import torch
    from withsense.kernels.cosine_sigmoid import cosine_sigmoid_triton
    from withsense.kernels.reference import cosine_sigmoid_reference

    queries = q.shape[0]

    def triton_call() -> object:
        return cosine_sigmoid_triton(q, c, offsets_dev, scale, bias, out=out)

    def torch_gather() -> object:
        return cosine_sigmoid_reference(q, c, offsets_long, scale, bias, dtype=c.dtype)

    def torch_segments() -> object:
        qn = torch.nn.functional.normalize(q.float(), dim=-1).to(c.dtype)
        cn = torch.nn.functional.normalize(c, dim=-1)
        parts = [cn[bounds[i]:bounds[i + 1]] @ qn[i] for i in range(queries)]
        return torch.sigmoid(scale * torch.cat(parts).float() + bias)

    return bench_us(triton_call), bench_us(torch_gather), bench_us(torch_segments)


def main() -> int:
    args = parse_args()
    if args.dry_run:
        os.environ["TRITON_INTERPRET"] = "1"  # before triton is imported
    import torch
    import triton
    import triton.testing
    from withsense.kernels.cosine_sigmoid import cosine_sigmoid_triton
    from withsense.kernels.reference import cosine_sigmoid_reference

    if args.dry_run:
        device = "cpu"
        sizes = args.sizes or [300, 1000]
        queries = min(args.queries, 8)
    else:
        if not torch.cuda.is_available():
            print("no CUDA device: run on a GPU machine, or use --dry-run", file=sys.stderr)
            return 2
        device = "cuda"
        sizes = args.sizes or [10_000, 100_000, 1_000_000]
        queries = args.queries
    dim = args.dim
    scale, bias = 10.0, -5.0

    def bench_us(fn: Callable[[], object]) -> float:
        if device == "cuda":
            return 1000 * float(triton.testing.do_bench(fn, warmup=25, rep=100))
        fn()
        samples = []
        for _ in range(3):
            started = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - started)
        return 1e6 * statistics.median(samples)

    if device == "cuda":
        name = torch.cuda.get_device_name()
        print(f"# Triton cosine-sigmoid on {name}: torch {torch.__version__}, "
              f"triton {triton.__version__}, B = {queries}, D = {dim}\n")
    else:
        print(f"# DRY RUN on the CPU under TRITON_INTERPRET=1 (timings are of the interpreter, "
              f"not the kernel): triton {triton.__version__}, B = {queries}, D = {dim}\n")
    print("| N | dtype | max abs err vs fp64 | check | triton, us | triton, GB/s | "
          "torch gather, us | torch per-segment, us | speed-up vs best torch | floor, us |")
    print("|---:|---|---:|---|---:|---:|---:|---:|---:|---:|")

    failures = 0
    generator = torch.Generator().manual_seed(args.seed)
    for n in sizes:
        # Ragged segments: random cut points, and every 8th query gets none.
        cuts = torch.sort(torch.randint(0, n + 1, (queries - 1,), generator=generator)).values
        offsets = torch.cat([torch.tensor([0]), cuts, torch.tensor([n])])
        lengths = offsets.diff()
        for empty in range(0, queries, 8):  # move those candidates to the next query
            if empty + 1 < queries:
                lengths[empty + 1] += lengths[empty]
                lengths[empty] = 0
        offsets = torch.cat([torch.tensor([0]), lengths.cumsum(0)])
        q32 = torch.randn(queries, dim, generator=generator)
        c32 = torch.randn(n, dim, generator=generator)
        ids = torch.repeat_interleave(torch.arange(queries), lengths)
        c32[: min(n, 64)] = q32[ids[: min(n, 64)]] * 2  # some cos = 1, so probs span (0, 1)
        expected = cosine_sigmoid_reference(q32.double(), c32.double(), offsets, scale, bias,
                                            dtype=torch.float64)
        offsets_dev = offsets.to(device=device, dtype=torch.int32)
        offsets_long = offsets.to(device)
        for dtype_name in args.dtypes:
            dtype = getattr(torch, dtype_name)
            q = q32.to(device=device, dtype=dtype)
            c = c32.to(device=device, dtype=dtype)
            out = torch.empty(n, device=device, dtype=torch.float32)
            got = cosine_sigmoid_triton(q, c, offsets_dev, scale, bias, out=out)
            if device == "cuda":
                torch.cuda.synchronize()
            error = float((got.double().cpu() - expected).abs().max())
            ok = error <= TOLERANCE[dtype_name] and bool(torch.isfinite(got).all())
            failures += not ok

            t_triton, t_gather, t_segments = time_paths(
                bench_us, q, c, out, offsets_dev, offsets_long, offsets.tolist(), scale, bias
            )
            elt = c.element_size()
            moved = n * dim * elt + n * 4 + queries * dim * elt + (queries + 1) * 4
            copy_us = bench_us(c.clone)
            floor_us = copy_us * moved / (2 * n * dim * elt)  # a copy reads and writes
            print(f"| {n:,} | {dtype_name} | {error:.1e} | {'ok' if ok else 'FAIL'} | "
                  f"{t_triton:.1f} | {moved / t_triton / 1e3:.0f} | {t_gather:.1f} | "
                  f"{t_segments:.1f} | {min(t_gather, t_segments) / t_triton:.2f}x | "
                  f"{floor_us:.1f} |")
    print()
    if failures:
        print(f"{failures} check(s) FAILED", file=sys.stderr)
        return 1
    print("all checks passed" + (" (dry run: not a GPU measurement)" if device == "cpu" else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
