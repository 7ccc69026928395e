"""Single-client search latency of `withsense serve all`, two or more stacks side by side.

Each stack is `withsense serve all` (worker and gateway in one process, the embedded store) on its
own copy of a prefilled store of N photos (bench_scale.py's, kept under --root), from a source
tree (--baseline-src, repeatable: another checkout, or `git archive <rev> services trainer`
unpacked) or from this checkout with extra environment (--variant NAME=ENV=VALUE[,ENV=VALUE]). One client
sends the customer's captions that mention no child (region DE: the lexicon and the semantic
check run; top 10; the query cache off, so every search embeds its query) to the stacks in
turn, query by query, the order rotating, so the machine's drift falls on all alike. Each
repeat sends new queries (no cache of the gateway's knows them; `--same-queries`: the same
ones). Only one search is in flight at a time: the stacks are idle but for it (bench_scale's
5 QPS row without the load generator's timer). The stacks are started afresh for each pass,
in a rotated order on rotated store copies, since the place a stack starts in biases it (an
A/A run: the second of two identical stacks 0.3 ms faster at 100k). Per stack: p50, p90 and
p99 of each repeat of each pass (the table shows their medians) and the server's CPU time per
search (/proc).

    cd benchmarks && ../.venv/bin/python bench_single_client.py --size 100k --queries 300 \\
        --repeats 3 --baseline-src /tmp/base \\
        --variant "ef 768=WITHSENSE_STORE_HNSW_EF=768"
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import time
from pathlib import Path

import numpy as np
from bench_scale import (
    REGION,
    SIZES,
    TOP_K,
    Server,
    add_descriptions_argument,
    caption_queries,
    default_build,
    prepare,
)
from bench_utils import cpu_seconds, load_note, markdown_table, parse_variant, rotated
from scale_vectors import SCRATCH
from tqdm import tqdm
from withsense.client import SearchClient
from withsense.config.store import StoreSettings

HERE = Path(__file__).resolve().parent
WARM_UP = 10  # searches per stack before measuring


def stack_envs(args: argparse.Namespace) -> dict[str, dict[str, str]]:
    """Name -> the environment of its server (PYTHONPATH picks the source tree); refuses a
    tree without services/ and a name given twice, before any work."""
    here = f"{HERE.parent / 'services'}:{HERE.parent / 'trainer'}"
    base = {**os.environ, "WITHSENSE_QUERY_CACHE_SIZE": "0"}
    stacks: list[tuple[str, dict[str, str]]] = []
    for tree in (path.resolve() for path in args.baseline_src):
        if not (tree / "services" / "withsense").is_dir():
            raise SystemExit(f"--baseline-src {tree}: no services/withsense there")
        stacks.append((f"baseline ({tree})",
                       {**base, "PYTHONPATH": f"{tree / 'services'}:{tree / 'trainer'}"}))
    stacks.append(("this checkout", {**base, "PYTHONPATH": here}))
    stacks += [(name, {**base, "PYTHONPATH": here, **extra})
               for name, extra in map(parse_variant, args.variant)]
    envs = dict(stacks)
    if len(envs) < len(stacks):
        raise SystemExit(f"two stacks share a name: {[name for name, _ in stacks]}")
    return envs


def store_copy(folder: Path, work: Path, index: int) -> Path:
    """A copy of the prefilled data folder per stack (one store opens in one process only),
    named after the build it copies and kept for later runs; made under a temporary name, so
    that an interrupted copy is never taken for a whole one."""
    copy = work / f"{folder.name}-stack-{index}"
    if not copy.exists():
        partial = copy.with_name(copy.name + ".partial")
        shutil.rmtree(partial, ignore_errors=True)
        shutil.copytree(folder, partial)
        partial.rename(copy)
    return copy


def measure(servers: dict[str, Server], rounds: list[list[str]], warm_up: list[str],
            bar: tqdm) -> dict[str, list[tuple[float, float, float, float]]]:
    """Per stack and repeat (one list of `rounds` each): (p50, p90, p99 ms, server CPU ms per
    search)."""
    clients = {name: SearchClient(server.target) for name, server in servers.items()}
    names = list(servers)
    out: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in names}
    try:
        for client in clients.values():
            for query in warm_up:
                client.search(query, top_k=TOP_K, region=REGION, timeout_s=60)
        for queries in rounds:
            cpu = {name: cpu_seconds(servers[name].proc.pid) for name in names}
            samples: dict[str, list[float]] = {name: [] for name in names}
            for i, query in enumerate(queries):
                for name in rotated(names, i):  # each stack takes each place in turn
                    started = time.perf_counter()
                    clients[name].search(query, top_k=TOP_K, region=REGION, timeout_s=30)
                    samples[name].append(1000 * (time.perf_counter() - started))
                bar.update(1)
            for name in names:
                ms = np.asarray(samples[name])
                used = 1000 * (cpu_seconds(servers[name].proc.pid) - cpu[name]) / len(ms)
                p50, p90, p99 = (float(v) for v in np.percentile(ms, [50, 90, 99]))
                out[name].append((p50, p90, p99, used))
    finally:
        for client in clients.values():
            client.close()
    return out


def run_pass(order: list[str], envs: dict[str, dict[str, str]], folder: Path,
             args: argparse.Namespace, rounds: list[list[str]], warm_up: list[str],
             bar: tqdm) -> dict[str, list[tuple[float, float, float, float]]]:
    """Starts the stacks in `order` (the i-th on store copy i), measures them, stops them.
    Stacks that start first, or on a given copy, measured a few percent apart with everything
    else equal (A/A runs: 0.3 ms at 100k), so passes rotate both."""
    servers: dict[str, Server] = {}
    try:
        for i, name in enumerate(order):
            copy = store_copy(folder, args.work / args.size, i)
            servers[name] = Server(copy, args.startup_timeout, env=envs[name])
        return measure(servers, rounds, warm_up, bar)
    finally:
        for server in servers.values():
            server.stop()


def query_rounds(texts: list[str], queries: int, repeats: int, same: bool) -> list[list[str]]:
    """The queries of each repeat: new ones each time, as a service mostly sees, so that no
    cache of the gateway's (the lexicon's decisions) holds them; or, `same`, the first
    `queries` every time. The last WARM_UP texts are the warm-up's, never measured."""
    needed = queries if same else queries * repeats
    if needed > len(texts) - WARM_UP:
        raise SystemExit(f"--queries x --repeats: {needed} queries asked, "
                         f"{len(texts) - WARM_UP} captions to send")
    if same:
        return [texts[:queries]] * repeats
    return [texts[r * queries:(r + 1) * queries] for r in range(repeats)]


def render(results: dict[str, list[tuple[float, float, float, float]]]) -> str:
    first = statistics.median(v[0] for v in next(iter(results.values())))
    rows = []
    for name, values in results.items():
        p50, p90, p99, cpu = (statistics.median(v[i] for v in values) for i in range(4))
        rows.append([name, f"{p50:.1f}", f"{p90:.1f}", f"{p99:.1f}", f"{first / p50:.2f}x",
                     f"{cpu:.1f}", " ".join(f"{v[0]:.1f}" for v in values)])
    return markdown_table(["stack", "p50 ms", "p90 ms", "p99 ms", "speed-up (p50)",
                           "server CPU ms / search", "p50 of each repeat"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--size", default="100k", choices=list(SIZES))
    ap.add_argument("--queries", type=int, default=300, help="searches per stack and repeat")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--same-queries", action="store_true",
                    help="every repeat sends the same queries (the gateway's lexicon cache then "
                         "knows them after the first); default: new ones each repeat")
    ap.add_argument("--baseline-src", type=Path, action="append", default=[],
                    help="a source tree with services/ and trainer/ (repeatable)")
    ap.add_argument("--variant", action="append", default=[], metavar="NAME=ENV=VALUE,...",
                    help="also this checkout with these environment settings (repeatable)")
    ap.add_argument("--root", type=Path, default=SCRATCH, help="where prefilled stores are kept")
    add_descriptions_argument(ap)
    ap.add_argument("--work", type=Path, default=SCRATCH / "single-client",
                    help="where the stacks' store copies are kept (reused)")
    ap.add_argument("--passes", type=int, default=0,
                    help="stacks started afresh this many times, each pass in the next order "
                         "(its first stack first, on the first store copy); default: one pass "
                         "per stack, so that each takes each place once")
    ap.add_argument("--startup-timeout", type=float, default=1800.0)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.queries < 1 or args.repeats < 1 or args.passes < 0:
        raise SystemExit("--queries and --repeats must be at least 1, --passes at least 0")

    envs = stack_envs(args)  # first: a bad --variant is refused before any work
    n = SIZES[args.size]
    folder, _ = prepare(n, args.root, default_build(StoreSettings(), args.descriptions))
    texts, _ = caption_queries()
    rounds = query_rounds(texts, args.queries, args.repeats, args.same_queries)
    passes = args.passes or len(envs)
    results: dict[str, list[tuple[float, float, float, float]]] = {name: [] for name in envs}
    with tqdm(total=passes * args.repeats * args.queries, desc="searches", unit="query") as bar:
        for p in range(passes):
            part = run_pass(rotated(list(envs), p), envs, folder, args, rounds, texts[-WARM_UP:], bar)
            for name, repeats in part.items():
                results[name] += repeats
    if args.json:
        print(json.dumps({"size": args.size, "photos": n, "descriptions": args.descriptions,
                          "load": load_note(), "results": results}))
        return
    which = "the same queries" if args.same_queries else "new queries"
    print(f"Single client, `serve all` at {n:,} photos ({args.descriptions or 'no'} descriptions "
          f"each): {args.queries} queries x {args.repeats} "
          f"repeats x {passes} passes per stack ({which} each repeat), order rotating; region "
          f"{REGION}, top {TOP_K}, query cache off; "
          f"{load_note()}\n")
    print(render(results))


if __name__ == "__main__":
    main()
