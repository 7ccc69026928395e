"""Latency vs offered load through the gateway (open loop), to find the knee where p99 leaves
its floor. The embedded stack of `withsense demo --serve`: one worker, one gateway, Qdrant Edge
with 10,000 photos (synthetic vectors for scale), all in one process on this machine.

The baseline is the lowest offered load's p99 (the floor): each row's p99 / floor is the ratio.

    .venv/bin/python benchmarks/bench_capacity.py [--rates 2,4,8,12,16,24] [--duration 10]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
from pathlib import Path

from bench_gateway import OVERSAMPLE, TOP_K, fill_store
from withsense.compliance import mentions_child
from withsense.config import GatewaySettings, WorkerSettings
from withsense.gateway.server import start_gateway
from withsense.loadtest import load_queries, run_loadtest_async
from withsense.model.runtime import ModelRuntime
from withsense.worker.server import start_worker


async def main(args) -> None:
    runtime = ModelRuntime()
    queries = [q for q in load_queries() if not mentions_child(q)]
    rates = [float(r) for r in args.rates.split(",")]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        fill_store(Path(tmp) / "store", args.photos, runtime.dim)
        worker = await start_worker(WorkerSettings(port=0), runtime=runtime)
        gateway = await start_gateway(GatewaySettings(
            port=0, http_port=-1, data_dir=Path(tmp), worker_address=worker.address, oversample=OVERSAMPLE),
            dim=runtime.dim)
        try:
            for rate in rates:
                report = await run_loadtest_async(
                    gateway.address, qps=rate, concurrency=None, duration_s=args.duration,
                    queries=queries, top_k=TOP_K, region="DE", timeout_s=5.0, warmup_requests=3)
                rows.append(report)
                print(f"  {rate:g} QPS offered: p50 {report.p50_ms:.0f} ms, p99 {report.p99_ms:.0f} ms",
                      flush=True)
        finally:
            await gateway.stop(1)
            await worker.stop(1)
    floor = rows[0].p99_ms or 1.0
    print(f"\nLatency vs offered load, {args.photos} photos, top_k {TOP_K}, open loop, "
          f"{args.duration:g} s per rate (ms)")
    print("| offered QPS | achieved QPS | p50 | p90 | p99 | max | errors | p99 / floor |")
    print("|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r.offered_qps:g} | {r.achieved_qps:.1f} | {r.p50_ms:.0f} | {r.p90_ms:.0f} | "
              f"{r.p99_ms:.0f} | {r.max_ms:.0f} | {r.errors} | {r.p99_ms / floor:.1f}x |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument("--rates", default="2,4,8,12,16,24")
    parser.add_argument("--duration", type=float, default=10.0)
    asyncio.run(main(parser.parse_args()))
