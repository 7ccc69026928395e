"""Search latency through the gateway vs the in-process sum of its parts, in one run.

An index of 10,000 photos (synthetic unit vectors for scale, 10% flagged) in the embedded
Qdrant Edge store; real worker, real gateway, real gRPC on 127.0.0.1. The parts are the same
model and store called in process: query embedding + store search + scoring. The ratio of the
gateway's p50 to the parts' p50 is the gateway's own overhead (gRPC hops, validation,
compliance checks, protobuf of the candidate vectors).

    .venv/bin/python benchmarks/bench_gateway.py [--photos 10000] [--duration 10] [--repeats 3]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_utils import percentiles_ms, unit_vectors
from withsense.compliance import mentions_child
from withsense.config import GatewaySettings, WorkerSettings
from withsense.gateway.server import start_gateway
from withsense.loadtest import load_queries, run_loadtest_async
from withsense.model.runtime import ModelRuntime
from withsense.store import EdgeStore, ImageRecord
from withsense.worker.server import start_worker

TOP_K, OVERSAMPLE = 10, 4


def fill_store(path: Path, photos: int, dim: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    store = EdgeStore(path, dim)
    for start in range(0, photos, 1000):
        vectors = unit_vectors(rng, min(1000, photos - start), dim)
        store.upsert([
            ImageRecord(f"00000000-0000-4000-8000-{start + i:012d}", vector, {
                "uri": f"photo-{start + i}.jpg", "minor": (start + i) % 10 == 0, "flag_reasons": [],
                "descriptions": [], "content_hash": str(start + i)})
            for i, vector in enumerate(vectors)
        ])
    store.optimize()
    store.close()


def time_parts(runtime: ModelRuntime, store, queries: list[str], rounds: int) -> list[float]:
    """Per query: embed + store search + score, in process, seconds."""
    samples = []
    for i in range(rounds):
        started = time.perf_counter()
        query = runtime.embed_texts([queries[i % len(queries)]])[0]
        hits = store.search(query, TOP_K * OVERSAMPLE, exclude_minor=False, with_vectors=True)
        candidates = np.stack([hit.vector for hit in hits])
        runtime.score(query[None, :], candidates, np.array([0, len(candidates)]))
        samples.append(time.perf_counter() - started)
    return samples


async def main(args) -> None:
    runtime = ModelRuntime()
    queries = [q for q in load_queries() if not mentions_child(q)]
    with tempfile.TemporaryDirectory() as tmp:
        data_dir = Path(tmp)
        print(f"filling the store with {args.photos} photos …", flush=True)
        fill_store(data_dir / "store", args.photos, runtime.dim)
        worker = await start_worker(WorkerSettings(port=0), runtime=runtime)
        gateway = await start_gateway(GatewaySettings(
            port=0, data_dir=data_dir, worker_address=worker.address, oversample=OVERSAMPLE,
            restricted_regions=["*"]), dim=runtime.dim)
        rows: dict[str, list[tuple[float, float, float]]] = {"parts": [], "c1": [], "c16": []}
        try:
            for _ in range(args.repeats):
                parts = await asyncio.to_thread(time_parts, runtime, gateway.engine.store, queries, 60)
                rows["parts"].append(tuple(percentiles_ms(parts)))
                for name, concurrency in [("c1", 1), ("c16", 16)]:
                    report = await run_loadtest_async(
                        gateway.address, qps=None, concurrency=concurrency, duration_s=args.duration,
                        queries=queries, top_k=TOP_K, region="DE", warmup_requests=5)
                    assert report.ok == report.requests, report.errors_by_code
                    rows[name].append((report.p50_ms, report.p95_ms, report.p99_ms))
        finally:
            await gateway.stop(1)
            await worker.stop(1)
    print_table(rows, args)


def print_table(rows, args) -> None:
    med = {name: [statistics.median(r[i] for r in runs) for i in range(3)] for name, runs in rows.items()}
    base = med["parts"][0]
    print(f"\nSearch latency, {args.photos} photos, top_k {TOP_K}, oversample {OVERSAMPLE}, "
          f"medians of {args.repeats} runs (ms)")
    print(f"| {'path':<42} | {'p50':>7} | {'p95':>7} | {'p99':>7} | {'p50 / parts':>11} |")
    print(f"|{'-' * 44}|{'-' * 9}|{'-' * 9}|{'-' * 9}|{'-' * 13}|")
    labels = {"parts": "in process: embed + store + score (baseline)",
              "c1": "gateway over gRPC, 1 client",
              "c16": "gateway over gRPC, 16 concurrent clients"}
    for name, (p50, p95, p99) in med.items():
        print(f"| {labels[name]:<42} | {p50:7.1f} | {p95:7.1f} | {p99:7.1f} | {p50 / base:10.2f}x |")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=10_000)
    parser.add_argument("--duration", type=float, default=8.0)
    parser.add_argument("--repeats", type=int, default=3)
    asyncio.run(main(parser.parse_args()))
