"""Start-up and memory of `withsense serve all` over a big embedded store: the full verification
(every point read and fingerprinted) against the sealed check (counts and a random sample; see
withsense.store.seal), in one run.

For each way of starting, on the same prefilled store (bench_scale.py / bench_store_tuning.py
build it): the start-up time (until the server says it serves), the verification line of its
log, the server's memory idle and after a single-client run of searches (VmRSS, anonymous and
file-backed from /proc/PID/status, PSS from smaps_rollup), the single-client p50 / p99 and the
server's CPU per search. The ways, in this order (each server is stopped with SIGINT, so that it
closes the store cleanly and, where the store was verified, seals it):

  old      (with --old-tree) the tree before the seal: full verification, vectors left mapped
  full     WITHSENSE_STORE_VERIFY_FULL=true: full verification, then the engine is reopened
  sealed   the default, on the store the `full` run sealed

Then, in separate processes, the shares: the models alone (the worker's `load_runtime`) and the
store alone (`open_catalogued` and its sealed check, no models).

    .venv/bin/python benchmarks/bench_startup.py --data-dir /work/scratch/scale/store-1000000-... \
        [--old-tree /tmp/old/services] [--ways old,full,sealed] [--searches 200] [--json]

The store's files change on every open: run it on a copy when the store is shared.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench_scale import REGION, TOP_K, Server, caption_queries
from bench_utils import load_note, markdown_table, process_memory
from tqdm import tqdm

WARMUP = 5  # searches sent before the measured ones (their CPU is counted in the server's)

MODELS_ALONE = """
import json, sys
sys.path.insert(0, sys.argv[1])
from bench_utils import process_memory
from withsense.config import ModelSettings, WorkerSettings
from withsense.worker.serving import load_runtime
before = process_memory()
runtime = load_runtime(WorkerSettings(), ModelSettings())
print(json.dumps({"before": before, "after": process_memory(), "text_backend": runtime.text_backend}))
"""

STORE_ALONE = """
import json, sys, time
sys.path.insert(0, sys.argv[1])
from bench_utils import process_memory
from withsense.store.edge import stored_dim
from withsense.store.verified import open_catalogued
data = __import__("pathlib").Path(sys.argv[2])
before = process_memory()
started = time.perf_counter()
store = open_catalogued(data, stored_dim(data / "store") or 384)
opened = time.perf_counter()
report = store.require_intact()
checked = time.perf_counter()
print(json.dumps({"before": before, "after": process_memory(), "open_s": opened - started,
                  "check_s": checked - opened, "mode": report.mode, "images": report.images}))
store.close()
"""


def cpu_s(pid: int) -> float:
    """User + system CPU seconds of a process so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def single_client(target: str, queries: list[str], searches: int) -> dict:
    from withsense.loadtest import run_loadtest_async

    report = await run_loadtest_async(target, qps=None, concurrency=1, duration_s=600.0,
                                      max_requests=searches, queries=queries, top_k=TOP_K,
                                      region=REGION, timeout_s=10.0, warmup_requests=WARMUP)
    return report.to_dict()


def run_way(name: str, env: dict[str, str], args: argparse.Namespace, queries: list[str]) -> dict:
    server = Server(args.data_dir, args.startup_timeout, env=env)
    try:
        verified = next((line.strip() for line in server.log if "store verified" in line),
                        "(no verification line: the old tree logs none)")
        idle = process_memory(server.proc.pid)
        cpu0 = cpu_s(server.proc.pid)
        searched = asyncio.run(single_client(server.target, queries, args.searches))
        cpu = (cpu_s(server.proc.pid) - cpu0) / (searched["requests"] + WARMUP)
        loaded = process_memory(server.proc.pid)
        note = load_note()
    finally:
        server.stop()
    return {"way": name, "startup_s": server.startup_s, "verified": verified, "idle": idle,
            "loaded": loaded, "search": searched, "server_cpu_ms": 1000 * cpu, "load": note}


def alone(code: str, *argv: str) -> dict:
    done = subprocess.run([sys.executable, "-c", code, str(Path(__file__).parent), *argv],
                          capture_output=True, text=True, check=True)
    return json.loads(done.stdout.strip().splitlines()[-1])


def render(results: list[dict], shares: dict) -> str:
    rows = []
    for r in results:
        i, lo, s = r["idle"], r["loaded"], r["search"]
        rows.append([r["way"], f"{r['startup_s']:.0f}",
                     f"{i['VmRSS']:,.0f} ({i['RssAnon']:,.0f} / {i['RssFile']:,.0f})",
                     f"{lo['VmRSS']:,.0f} ({lo['RssAnon']:,.0f} / {lo['RssFile']:,.0f})",
                     f"{lo.get('Pss_Anon', float('nan')):,.0f} / {lo.get('Pss_File', float('nan')):,.0f}",
                     f"{s['p50_ms']:.1f} / {s['p99_ms']:.1f}", f"{r['server_cpu_ms']:.1f}",
                     f"{s['requests']} ({s['errors']} errors)", r["load"].split(" on")[0]])
    table = markdown_table(
        ["start-up", "start-up s", "RSS idle MB (anon / file)", "RSS after searches MB (anon / file)",
         "PSS after MB (anon / file)", "single client p50 / p99 ms", "server CPU ms / search",
         "searches", "load"], rows)
    m, st = shares["models"], shares["store"]
    lines = ["Verification, as each server logged it:"]
    lines += [f"- {r['way']}: {r['verified'].split(' - ')[-1]}" for r in results]
    lines.append(
        f"\nShares, each in its own process: the models alone (the worker's runtime, text backend "
        f"{m['text_backend']}) RSS {m['after']['VmRSS']:,.0f} MB (anon {m['after']['RssAnon']:,.0f}, "
        f"file {m['after']['RssFile']:,.0f}; the interpreter before them {m['before']['VmRSS']:,.0f}); "
        f"the store alone ({st['images']:,} photos, opened in {st['open_s']:.1f} s, {st['mode']} "
        f"check in {st['check_s']:.1f} s) RSS {st['after']['VmRSS']:,.0f} MB (anon "
        f"{st['after']['RssAnon']:,.0f}, file {st['after']['RssFile']:,.0f}; before "
        f"{st['before']['VmRSS']:,.0f}).")
    return table + "\n\n" + "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--data-dir", type=Path, required=True, help="a prefilled, catalogued data folder")
    ap.add_argument("--old-tree", type=Path, help="services/ of the tree before the seal (baseline)")
    ap.add_argument("--ways", default="old,full,sealed",
                    help="which start-ups, in this order (old only with --old-tree; sealed needs "
                    "a store sealed by an earlier clean stop)")
    ap.add_argument("--searches", type=int, default=200, help="single-client searches per server")
    ap.add_argument("--startup-timeout", type=float, default=3600.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    queries, _ = caption_queries()
    wanted = {w.strip() for w in args.ways.split(",")}
    base = {k: v for k, v in os.environ.items() if k != "WITHSENSE_STORE_VERIFY_FULL"}
    ways = [(name, env) for key, name, env in (
        ("old", "old: full, vectors stay mapped", {**base, "PYTHONPATH": str(args.old_tree)}),
        ("full", "full, then the engine reopened", {**base, "WITHSENSE_STORE_VERIFY_FULL": "true"}),
        ("sealed", "sealed: counts and a sample", base),
    ) if key in wanted and (key != "old" or args.old_tree)]
    results = []
    with tqdm(total=len(ways) + 2, desc="bench_startup", disable=args.json) as bar:
        for name, env in ways:
            bar.set_description(name)
            results.append(run_way(name, env, args, queries))
            bar.update(1)
        bar.set_description("models alone")
        shares = {"models": alone(MODELS_ALONE)}
        bar.update(1)
        bar.set_description("store alone")
        shares["store"] = alone(STORE_ALONE, str(args.data_dir))
        bar.update(1)
    if args.json:
        print(json.dumps({"ways": results, "shares": shares}, indent=1))
        return
    print(f"\nbench_startup: {args.data_dir}; {args.searches} single-client searches per server "
          f"(top_k {TOP_K}, region {REGION}); {time.strftime('%Y-%m-%d %H:%M')}\n")
    print(render(results, shares))


if __name__ == "__main__":
    main()
