"""`serve all`'s worker call: over loopback gRPC (baseline) against in process.

One process holds a real worker (the shipped model, ONNX text path) as `withsense serve all` does;
the same query is embedded through the gateway's gRPC `WorkerClient` and through the
`InProcessWorkerClient`, alternately (the order rotating), one query at a time. Reported per
call: wall p50 / p99 and the process's CPU time (both sides of the hop are in this process).

    PYTHONPATH=services .venv/bin/python benchmarks/bench_worker_hop.py --rounds 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time

import numpy as np
from bench_utils import load_note, markdown_table
from withsense.config import ModelSettings, WorkerSettings
from withsense.gateway.worker_client import WorkerClient
from withsense.loadtest import load_queries
from withsense.worker.in_process import InProcessWorkerClient
from withsense.worker.server import start_worker


async def measure(queries: list[str], rounds: int) -> list[list[str]]:
    with tempfile.TemporaryDirectory(prefix="bench-hop-") as data_dir:
        worker = await start_worker(WorkerSettings(host="127.0.0.1", port=0),
                                    ModelSettings(data_dir=data_dir))
        clients = {"loopback gRPC (baseline)": WorkerClient(f"127.0.0.1:{worker.port}", 30.0),
                   "in process": InProcessWorkerClient(worker.serving, 30.0)}
        walls: dict[str, list[float]] = {name: [] for name in clients}
        cpu: dict[str, float] = dict.fromkeys(clients, 0.0)
        try:
            for client in clients.values():  # warm-up
                for query in queries[:5]:
                    await client.embed_texts_routed([query])
            names = list(clients)
            for r in range(rounds):
                for i, query in enumerate(queries):
                    shift = (i + r) % len(names)
                    for name in names[shift:] + names[:shift]:
                        started, cpu_started = time.perf_counter(), time.process_time()
                        await clients[name].embed_texts_routed([query])
                        walls[name].append(time.perf_counter() - started)
                        cpu[name] += time.process_time() - cpu_started
        finally:
            for client in clients.values():
                await client.close()
            await worker.stop(0)
    base = statistics.median(next(iter(walls.values())))
    rows = []
    for name, values in walls.items():
        ms = np.asarray(values) * 1000
        rows.append([name, f"{np.percentile(ms, 50):.2f}", f"{np.percentile(ms, 99):.2f}",
                     f"{1000 * cpu[name] / len(values):.2f}",
                     f"{base / statistics.median(values):.2f}x"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    queries = load_queries()[:args.queries]
    rows = asyncio.run(measure(queries, args.rounds))
    print(f"\nOne query embedded by the worker of this process, {args.rounds} x {len(queries)} "
          f"calls per path, alternating; {load_note()}")
    print(markdown_table(["path", "wall p50 ms", "wall p99 ms", "CPU ms / call (process)",
                          "speed-up (p50)"], rows))


if __name__ == "__main__":
    main()
