"""The stack as deployed, at 1k, 100k and 1M photos: `withsense serve all` (worker and gateway in
one process, the embedded Qdrant Edge store) under open-loop load from the project's load test,
on this machine.

For each size the store is prefilled with realistic photo vectors (scale_vectors.py) through the
store API (`EdgeStore.upsert`, then `optimize` builds the HNSW graph) before the server opens
it, and recorded in its catalogue by `withsense store verify --adopt`; both are kept under
--root and reused by later runs (bench_store_tuning.py shares them). The gateway then verifies
the whole store against its catalogue at start-up, as it always does (the time is reported).

The floors, measured in the same run before the server starts (interleaved, medians): the text
tower alone (one query embedded in process by the runtime as the worker loads it, ONNX by
default: `load_runtime(WorkerSettings()).embed_texts`) and the store alone in
process (the gateway's store call: `hybrid_search` of top_k x oversample candidates).

The queries are the customer's captions that mention no child (real text, about 3,000 distinct);
region DE (restricted: the lexicon and the semantic check run on every query). The load test
sends them in the same order at every rate, so with the gateway's query cache on (as deployed)
the later rates would mostly replay queries the earlier ones embedded: the cache is off here
(`WITHSENSE_QUERY_CACHE_SIZE=0`, every search embeds its query) unless `--query-cache on`.

    .venv/bin/python benchmarks/bench_scale.py --sizes 1k,100k [--rates 25,50,100,200]
        [--duration 10] [--root /work/scratch/scale] [--json]

Run heavy first builds under `nice`; the load runs at normal priority.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from functools import partial
from pathlib import Path

import numpy as np
from bench_store_tuning import CACHE, DATA, Build, build
from bench_utils import caption_texts, load_note, markdown_table, percentiles_ms, process_memory
from scale_descriptions import MAX_DESCRIPTIONS
from scale_vectors import SCRATCH, cached_real_vectors
from tqdm import tqdm
from withsense.config.store import StoreSettings, search_ef
from withsense.store.catalogue import CATALOGUE_FILE

TOP_K = 10
REGION = "DE"
SIZES = {"1k": 1_000, "10k": 10_000, "100k": 100_000, "300k": 300_000, "1M": 1_000_000}
FLOOR_REPEATS = 100


def default_build(settings: StoreSettings, descriptions: int = 0) -> Build:
    """The build (tuning benchmark's naming) of the store settings in the environment, its
    photos with `descriptions` descriptions each (0: none)."""
    quant = "int8" if settings.quantized else "f32"
    where = "disk" if settings.store_vectors_on_disk else "ram"
    described = f"-d{descriptions}" if descriptions else ""
    return Build(f"m{settings.store_hnsw_m}-efc{settings.store_hnsw_ef_construct}-{quant}-{where}{described}")


def add_descriptions_argument(ap: argparse.ArgumentParser) -> None:
    ap.add_argument("--descriptions", type=int, default=0, choices=range(MAX_DESCRIPTIONS + 1),
                    metavar=f"0-{MAX_DESCRIPTIONS}",
                    help="descriptions a prefilled photo has (its nearest real photo's captions, "
                         "scale_descriptions.py; 0: none, a store of its own for each count)")


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "withsense.cli.main", *args]


def prepare(n: int, root: Path, b: Build) -> tuple[Path, dict]:
    """The data folder holding the prefilled, catalogued store of n photos."""
    folder = root / f"store-{n}-{b.name}"
    built = build(b, n, folder)
    if not (folder / CATALOGUE_FILE).exists():
        started = time.perf_counter()
        subprocess.run(cli("store", "verify", "--adopt", "--data-dir", str(folder), "--json"),
                       check=True, capture_output=True, text=True)
        built["adopt_s"] = time.perf_counter() - started
        (folder / "build.json").write_text(json.dumps(built))
    return folder, built


def caption_queries() -> tuple[list[str], np.ndarray]:
    """The customer's captions that mention no child, and their vectors (shipped model)."""
    from withsense.compliance import mentions_child

    real = cached_real_vectors(DATA, CACHE, SCRATCH / "real.npz")
    texts = caption_texts(DATA)
    keep = [i for i, t in enumerate(texts) if not mentions_child(t)]
    return [texts[i] for i in keep], real.captions[keep]


def floors(folder: Path, texts: list[str], vectors: np.ndarray, settings: StoreSettings) -> dict:
    """p50 / p99 ms of the text tower alone and of the store alone, interleaved."""
    from withsense.config import GatewaySettings, WorkerSettings
    from withsense.keywords import query_vector
    from withsense.store import EdgeStore
    from withsense.worker.serving import load_runtime

    # The runtime as the worker loads it (its text backend, precision and threads), so that the
    # floor is the tower the server runs, not the eager reference.
    runtime = load_runtime(WorkerSettings())
    limit = TOP_K * GatewaySettings().oversample
    wall: dict[str, list[float]] = {"tower": [], "store": []}
    cpu: dict[str, list[float]] = {"tower": [], "store": []}
    with EdgeStore(folder / "store", runtime.dim, settings=settings) as store:
        warm_store_pages(folder / "store", settings)
        for i in range(FLOOR_REPEATS + 3):
            text, vector = texts[i % len(texts)], vectors[i % len(texts)]
            parts = {"tower": partial(runtime.embed_texts, [text]),
                     # The query's keyword vector is part of the store call, as before.
                     "store": lambda text=text, vector=vector: store.hybrid_search(
                         vector, query_vector(text) or None, limit, exclude_minor=False)}
            for part, call in parts.items():
                # Process CPU, not the thread's: the store's engine searches on threads of its own.
                t0, c0 = time.perf_counter(), time.process_time()
                call()
                if i >= 3:  # warm-up
                    wall[part].append(time.perf_counter() - t0)
                    cpu[part].append(time.process_time() - c0)
    return {"tower_ms": percentiles_ms(wall["tower"], [50, 99]),
            "store_ms": percentiles_ms(wall["store"], [50, 99]),
            "tower_cpu_ms": percentiles_ms(cpu["tower"], [50])[0],
            "store_cpu_ms": percentiles_ms(cpu["store"], [50])[0],
            "store_limit": limit, "cpus": len(os.sched_getaffinity(0))}


def floor_bounds(floor: dict) -> tuple[float, float, float]:
    """What the floors allow the whole stack at best: (a single search's wall ms, its CPU ms,
    searches a second on this machine's cores). The tower and the store run one after the
    other in a search (the store needs the query's vector), so their p50s add up; the lexicon,
    the semantic check, fusion, gRPC and the load generator come on top of both bounds."""
    serial = floor["tower_ms"][0] + floor["store_ms"][0]
    cpu = floor["tower_cpu_ms"] + floor["store_cpu_ms"]
    return serial, cpu, floor["cpus"] * 1e3 / cpu


def warm_store_pages(path: Path, settings: StoreSettings) -> None:
    """Faults in the store's pages as the gateway does at start-up (a tree without
    `withsense.store.prefault`, such as a baseline's, does not)."""
    try:
        from withsense.store.prefault import prefault_store
    except ImportError:
        return
    prefault_store(path, settings.store_prefault_mb)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    return process_memory(pid).get("VmRSS", float("nan"))


class Server:
    """`withsense serve all` on free ports, in its own process group."""

    def __init__(self, folder: Path, timeout_s: float, env: dict[str, str] | None = None) -> None:
        self.port = free_port()
        started = time.perf_counter()
        self.proc = subprocess.Popen(
            cli("serve", "all", "--data-dir", str(folder), "--port", str(self.port),
                "--worker-port", str(free_port()), "--http-port", "-1"),
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, start_new_session=True,
            env=env)
        self.log: list[str] = []
        deadline = time.monotonic() + timeout_s
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line)
            if re.search(r"serving: gateway on", line):
                break
            if time.monotonic() > deadline:
                self.stop()
                raise SystemExit(f"the server did not start in {timeout_s:.0f} s")
        else:
            raise SystemExit("the server exited:\n" + "".join(self.log[-30:]))
        self.startup_s = time.perf_counter() - started
        self.target = f"127.0.0.1:{self.port}"
        # Keep reading its output, so that a full pipe never blocks the server's logging.
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.log.append(line)

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGINT)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


async def load(target: str, rate: float, duration: float, queries: list[str]) -> dict:
    from withsense.loadtest import run_loadtest_async

    report = await run_loadtest_async(target, qps=rate, concurrency=None, duration_s=duration,
                                      queries=queries, top_k=TOP_K, region=REGION, timeout_s=5.0,
                                      warmup_requests=3)
    return report.to_dict()


def run_size(name: str, args: argparse.Namespace, bar: tqdm) -> dict:
    n = SIZES[name]
    settings = StoreSettings()
    b = default_build(settings, args.descriptions)
    bar.set_description(f"{name}: prefill")
    folder, built = prepare(n, args.root, b)
    texts, vectors = caption_queries()
    bar.set_description(f"{name}: floors")
    floor = floors(folder, texts, vectors, settings)
    bar.set_description(f"{name}: start server")
    cache = {} if args.query_cache == "on" else {"WITHSENSE_QUERY_CACHE_SIZE": "0"}
    server = Server(folder, args.startup_timeout, env={**os.environ, **cache})
    rows = []
    try:
        rss_idle = rss_mb(server.proc.pid)
        for rate in args.rates:
            bar.set_description(f"{name}: {rate:g} QPS")
            rows.append(asyncio.run(load(server.target, rate, args.duration, texts)))
            bar.update(1)
        rss_loaded = rss_mb(server.proc.pid)
    finally:
        server.stop()
    return {"size": name, "photos": n, "build": b.name, "built": built, "floors": floor,
            "startup_s": server.startup_s, "rss_idle_mb": rss_idle, "rss_loaded_mb": rss_loaded,
            "rows": rows, "load": load_note(), "query_cache": args.query_cache,
            "hnsw_ef": search_ef(settings.store_hnsw_ef, n),
            "exact_up_to": settings.store_exact_up_to}


def render(result: dict, duration: float) -> str:
    f = result["floors"]
    head = (f"#### {result['photos']:,} photos ({result['build']}, ef {result['hnsw_ef']}, "
            f"exact up to {result['exact_up_to']:,}; query cache {result['query_cache']}; "
            f"{result['load']})\n\n"
            f"Floors (in process, p50 / p99 ms): text tower {f['tower_ms'][0]:.1f} / "
            f"{f['tower_ms'][1]:.1f}; store alone ({f['store_limit']} candidates, hybrid) "
            f"{f['store_ms'][0]:.1f} / {f['store_ms'][1]:.1f}. {_bounds(f)}"
            f"Server start-up (store verified "
            f"against its catalogue) {result['startup_s']:.0f} s; server RSS idle "
            f"{result['rss_idle_mb']:.0f} MB, after the load {result['rss_loaded_mb']:.0f} MB.\n\n")
    rows = [[f"{r['offered_qps']:g}", f"{r['achieved_qps']:.1f}", _ms(r["p50_ms"]), _ms(r["p99_ms"]),
             f"{_ms(r.get('served_p50_ms'))} / {_ms(r.get('served_p99_ms'))}",
             f"{r['requests']}", f"{r['shed']}", f"{r['errors']}"] for r in result["rows"]]
    return head + markdown_table(
        ["offered QPS", "achieved QPS", "p50 ms", "p99 ms", "served p50 / p99 ms",
         f"requests ({duration:g} s)", "shed", "errors"], rows)


def _bounds(floor: dict) -> str:
    if "tower_cpu_ms" not in floor:  # a report from before the CPU floors
        return ""
    serial, cpu, qps = floor_bounds(floor)
    return (f"CPU p50: tower {floor['tower_cpu_ms']:.1f} ms, store {floor['store_cpu_ms']:.1f} ms. "
            f"So a search's median cannot be under {serial:.1f} ms (tower then store), nor the "
            f"stack serve more than {qps:.0f} searches a second on {floor['cpus']} CPUs ({cpu:.1f} "
            f"CPU-ms each, before the rest of the path and the load generator). ")


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.0f}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="1k,100k", help=f"comma-separated, of {', '.join(SIZES)}")
    ap.add_argument("--rates", default="25,50,100,200")
    ap.add_argument("--duration", type=float, default=10.0, help="seconds per rate")
    ap.add_argument("--root", type=Path, default=SCRATCH, help="where prefilled stores are kept")
    add_descriptions_argument(ap)
    ap.add_argument("--startup-timeout", type=float, default=1800.0)
    ap.add_argument("--query-cache", choices=["off", "on"], default="off",
                    help="the gateway's query cache (off: every search embeds its query)")
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        ap.error(f"unknown size(s) {unknown}; known: {', '.join(SIZES)}")
    args.rates = [float(r) for r in args.rates.split(",")]
    results = []
    with tqdm(total=len(sizes) * len(args.rates), desc="bench_scale", disable=args.json) as bar:
        for name in sizes:
            results.append(run_size(name, args, bar))
    if args.json:
        print(json.dumps(results, indent=1))
        return
    print(f"\nbench_scale: {' '.join(sys.argv[1:])}; top_k {TOP_K}, region {REGION}, open loop, "
          f"{args.duration:g} s per rate\n")
    for result in results:
        print(render(result, args.duration) + "\n")


if __name__ == "__main__":
    main()
