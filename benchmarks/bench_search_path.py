"""Single-client search latency, before against after, and where a search's time goes.

Stacks of real processes (a worker and a gateway each, ``search_servers``) serve copies of one
gallery (``search_gallery``: N photos with image vectors, description vectors and keywords that
look like ours). In one run, for each gallery size:

* ``main (baseline)``: main's checkout (``--baseline-src``), as deployed today;
* ``this checkout``: this checkout's defaults.

(The variants of earlier runs, the ONNX text path and scoring in the gateway, are main's
defaults now: docs/benchmarks.md keeps their tables.)

One client sends searches (region DE: lexicon and semantic checks run; top 10; the query cache
off in every stack so each search embeds its query) to the stacks in turn, query by query, the
order rotating, so background load falls on all alike. p50 and p99 per repeat; the table shows
medians over repeats, and the load average. With ``--profile`` it then samples the worker and
the gateway of the baseline and of the new default with py-spy (started under py-spy: it could
not attach to a running process here) and reads the gateway's per-stage wall times
(``withsense_gateway_search_stage_seconds``) and each process's CPU time per search.

    PYTHONPATH=services .venv/bin/python benchmarks/bench_search_path.py --photos 100 100000 \\
        --repeats 3 --rounds 2 --profile
"""

from __future__ import annotations

import argparse
import collections
import os
import shutil
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path

import numpy as np
from bench_utils import cpu_seconds, load_note, markdown_table
from search_gallery import ensure_gallery
from search_servers import Stack, free_port
from withsense.client import SearchClient
from withsense.compliance import mentions_child
from withsense.loadtest import load_queries

HERE = Path(__file__).resolve().parent
SERVICES = HERE.parent / "services"
REGION, TOP_K = "DE", 10
COMMON = {"WITHSENSE_QUERY_CACHE_SIZE": "0", "WITHSENSE_RESTRICTED_REGIONS": "*",
          "OMP_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
VARIANTS = {
    "main (baseline)": ("baseline", {}),
    "this checkout": ("this", {}),
}


def make_stacks(gallery: Path, work: Path, baseline_src: Path, names: list[str]) -> dict[str, Stack]:
    stacks = {}
    for i, name in enumerate(names):
        tree, env = VARIANTS[name]
        data_dir = work / f"stack-{i}"
        shutil.copytree(gallery, data_dir)
        src = baseline_src if tree == "baseline" else SERVICES
        stacks[name] = Stack(name, src, data_dir, env={**COMMON, **env})
    return stacks


def timed_search(client: SearchClient, query: str) -> float:
    started = time.perf_counter()
    client.search(query, top_k=TOP_K, region=REGION, timeout_s=30)
    return time.perf_counter() - started


def latency_rounds(clients: dict[str, SearchClient], queries: list[str],
                   rounds: int) -> dict[str, list[float]]:
    """Each query to every stack in turn (the order rotates), `rounds` times."""
    names = list(clients)
    samples: dict[str, list[float]] = {name: [] for name in names}
    for r in range(rounds):
        for i, query in enumerate(queries):
            shift = (i + r) % len(names)
            for name in names[shift:] + names[:shift]:
                samples[name].append(timed_search(clients[name], query))
    return samples


def stack_cpu_seconds(stack: Stack) -> float:
    """CPU time so far of a stack's server processes (worker and gateway together)."""
    return sum(cpu_seconds(pid) for pid in server_pids(stack))


def measure_latency(stacks: dict[str, Stack], queries: list[str], repeats: int, rounds: int) -> list[list]:
    """Per stack: p50 and p99 wall, and the servers' CPU per search (/proc: steadier than wall
    on a loaded machine), medians over repeats."""
    clients = {name: SearchClient(stack.target) for name, stack in stacks.items()}
    per_repeat: dict[str, list[tuple[float, float, float]]] = {name: [] for name in stacks}
    loads = []
    try:
        for client in clients.values():
            for query in queries[:10]:  # warm-up
                client.search(query, top_k=TOP_K, region=REGION, timeout_s=60)
        for _ in range(repeats):
            cpu_before = {name: stack_cpu_seconds(stack) for name, stack in stacks.items()}
            samples = latency_rounds(clients, queries, rounds)
            loads.append(os.getloadavg()[0])
            for name, values in samples.items():
                ms = np.asarray(values) * 1000
                cpu_ms = 1000 * (stack_cpu_seconds(stacks[name]) - cpu_before[name]) / len(values)
                per_repeat[name].append((float(np.percentile(ms, 50)), float(np.percentile(ms, 99)),
                                         cpu_ms))
    finally:
        for client in clients.values():
            client.close()
    base = statistics.median(v[0] for v in per_repeat[next(iter(stacks))])
    rows = []
    for name, values in per_repeat.items():
        p50 = statistics.median(v[0] for v in values)
        p99 = statistics.median(v[1] for v in values)
        cpu = statistics.median(v[2] for v in values)
        rows.append([name, f"{p50:.1f}", f"{p99:.1f}", f"{base / p50:.2f}x", f"{cpu:.1f}",
                     " ".join(f"{v[0]:.1f}" for v in values), f"{statistics.median(loads):.1f}"])
    return rows


# --- profile -------------------------------------------------------------------------------

# (category, path fragment, function names or None for any): the innermost frame that matches
# decides a sample's category; frames of no rule (grpc, asyncio, threading) count as the hop.
RULES = [
    ("text tower (ONNX Runtime)", "withsense/model/text_onnx.py", None),
    ("text tower (eager torch)", "sentence_transformers/", None),
    ("text tower (eager torch)", "transformers/", None),
    ("text tower (eager torch)", "withsense/model/fused.py", None),
    ("text tower (eager torch)", "withsense/model/towers.py", None),
    ("cosine-sigmoid scoring", "withsense/kernels/", None),
    ("Score request parsing (worker)", "withsense/worker/protocol.py", {"parse_score"}),
    ("EmbedText request parsing (worker)", "withsense/worker/protocol.py", None),
    ("worker batching + model thread", "withsense/worker/batching.py", None),
    ("replies to protobuf (worker)", "withsense/worker/serving.py", {"_vectors", "score", "embed_text"}),
    ("cosine-sigmoid scoring", "withsense/gateway/scoring.py", None),
    ("store query (Qdrant Edge)", "withsense/store/edge.py", None),
    ("store hits to numpy", "withsense/store/base.py", None),
    ("Score request to protobuf (gateway)", "withsense/gateway/worker_client.py", {"score", "_pb_vector"}),
    ("EmbedText reply from protobuf (gateway)", "withsense/gateway/worker_client.py", {"_vectors"}),
    ("fusion (descriptions, keywords)", "withsense/gateway/evidence.py", None),
    ("fusion (descriptions, keywords)", "withsense/model/fusion.py", None),
    ("keywords of the query", "withsense/keywords.py", None),
    ("semantic child check", "withsense/compliance/semantic.py", None),
    ("lexicon policy", "withsense/compliance/", None),
    ("validation + reply (gateway)", "withsense/gateway/protocol.py", None),
    ("validation + reply (gateway)", "withsense/gateway/servicer.py", None),
    ("metrics", "prometheus_client/", None),
]
# py-spy samples a process from its start (it could not attach here): samples of start-up and of
# lazy one-off loads (imports, dictionaries, model export, warm-up, the gateway's prototypes on
# the multilingual path) are left out by these names, and so are idle threads that py-spy
# counts as busy (an event loop in select, a thread pool waiting for work).
START_UP = ("start_gateway", "start_worker", "_gateway", "EdgeStore.__init__", "EdgeStore.close",
            "local_gpu", "serve_worker", "cmd_serve", "MultilingualTower.encode")
ONE_OFF_FILES = ("simplemma/strategies/dictionaries/",)
IDLE_LEAVES = ("EpollSelector.select", "Thread.run", "Thread._bootstrap_inner", "Thread._bootstrap",
               "_worker (concurrent/futures/thread.py:81)", "Condition.wait", "Event.wait")


def categorise(stack_line: str) -> str | None:
    """A sample's category; None for start-up, one-off loads and idle threads."""
    frames = [f for f in stack_line.split(";") if f.strip()]
    names = [f.split(" (", 1)[0] for f in frames]
    if not frames or names[-1].endswith("select") or any(frames[-1].startswith(leaf) for leaf in IDLE_LEAVES):
        return None
    if any(name in START_UP or "load" in name.lower() or "warm" in name.lower() for name in names):
        return None
    if any(part in frame for frame in frames for part in ONE_OFF_FILES):
        return None
    for frame in reversed(frames):
        for category, fragment, functions in RULES:
            if fragment in frame and (functions is None or frame.split(" (", 1)[0] in functions):
                return category
    return "gRPC + event loop + threads"


def read_profile(path: Path) -> collections.Counter:
    counts: collections.Counter = collections.Counter()
    if not path.exists():
        return counts
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        category = categorise(stack)
        if category is not None and n.isdigit():
            counts[category] += int(n)
    return counts


def stage_means(metrics_port: int) -> dict[str, tuple[float, float]]:
    """stage -> (sum seconds, count) from the gateway's Prometheus endpoint."""
    text = urllib.request.urlopen(f"http://127.0.0.1:{metrics_port}/metrics", timeout=10).read().decode()
    out: dict[str, list[float]] = collections.defaultdict(lambda: [0.0, 0.0])
    for line in text.splitlines():
        if line.startswith("withsense_gateway_search_stage_seconds_sum") or \
                line.startswith("withsense_gateway_search_stage_seconds_count"):
            name, value = line.rsplit(" ", 1)
            stage = name.split('stage="', 1)[1].split('"', 1)[0]
            out[stage][0 if "_sum" in name else 1] = float(value)
    return {k: (v[0], v[1]) for k, v in out.items()}


def server_pids(stack: Stack) -> list[int]:
    """The server processes' pids: py-spy's children when it wraps them."""
    pids = []
    for process in stack.processes:
        children = Path(f"/proc/{process.pid}/task/{process.pid}/children")
        kids = children.read_text().split() if children.exists() else []
        pids.append(int(kids[0]) if stack.wrap and kids else process.pid)
    return pids


def profile(name: str, gallery: Path, work: Path, args, queries: list[str]) -> list[list]:
    """One stack under py-spy: CPU per search by category, per process; stage wall times."""
    out = args.profile_dir
    out.mkdir(parents=True, exist_ok=True)
    metrics_port = free_port()
    spy = [str(Path(os.environ.get("PYSPY", shutil.which("py-spy") or "py-spy"))), "record",
           "--rate", str(args.rate), "--format", "raw", "--nonblocking", "-o"]
    stack = make_stacks(gallery, work / f"profile-{len(list(work.iterdir()))}", args.baseline_src,
                        [name])[name]
    stack.env["WITHSENSE_METRICS_PORT"] = str(metrics_port)
    files = {role: out / f"{name[:4]}-{gallery.name}-{role}.txt" for role in ("worker", "gateway")}
    stack.wrap = {role: [*spy, str(path), "--"] for role, path in files.items()}
    stack.start()
    client = SearchClient(stack.target)
    try:
        stack.wait_ready(client)
        for query in queries[:10]:
            client.search(query, top_k=TOP_K, region=REGION, timeout_s=60)
        pids = server_pids(stack)
        cpu_before = [cpu_seconds(p) for p in pids]
        stages_before = stage_means(metrics_port)
        walls = []
        searches = 0
        for _ in range(args.profile_rounds):
            for query in queries:
                walls.append(timed_search(client, query))
                searches += 1
        cpu = [cpu_seconds(p) - b for p, b in zip(pids, cpu_before, strict=True)]
        stages_after = stage_means(metrics_port)
    finally:
        client.close()
        stack.stop()
    rows = []
    wall_ms = 1000 * statistics.median(walls)
    for stage, (total, count) in stages_after.items():
        before = stages_before.get(stage, (0.0, 0.0))
        n = count - before[1]
        if n:
            rows.append([f"gateway wall: {stage}", f"{1000 * (total - before[0]) / n:.2f}", "", ""])
    rows.append(["client wall per search (median)", f"{wall_ms:.2f}", "", ""])
    # Two views of CPU, both shown: the kernel's CPU time of each process per search (/proc:
    # exact, native threads included, no split), and py-spy's samples per category per search
    # (the split; it counts a thread waiting for a core or for the GIL as busy, so on a loaded
    # machine its milliseconds run high, and it does not see native threads of its own).
    for (label, path), seconds in zip(files.items(), cpu, strict=True):
        rows.append([f"**{label} CPU per search (/proc)**", "", f"{1000 * seconds / searches:.2f}", ""])
        counts = read_profile(path)
        total = sum(counts.values()) or 1
        for category, samples in counts.most_common():
            if samples / total >= 0.005:
                rows.append([f"{label}: {category}", "", f"{1000 * samples / args.rate / searches:.2f}",
                             f"{samples / total:.1%}"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, nargs="+", default=[100, 100_000])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--rounds", type=int, default=2, help="passes over the queries per repeat")
    parser.add_argument("--queries", type=int, default=40)
    parser.add_argument("--baseline-src", type=Path, default=Path("/work/main/services"))
    parser.add_argument("--galleries", type=Path, default=Path("/tmp/withsense-search-galleries"))
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--profile-only", action="store_true")
    parser.add_argument("--profile-rounds", type=int, default=3)
    parser.add_argument("--profile-dir", type=Path, default=Path("/tmp/withsense-search-profiles"))
    parser.add_argument("--rate", type=int, default=250, help="py-spy samples per second")
    args = parser.parse_args()
    queries = [q for q in load_queries() if not mentions_child(q)][:args.queries]
    print(f"{len(queries)} queries, region {REGION}, top {TOP_K}, query cache off; "
          f"baseline: {args.baseline_src}; {load_note()}", flush=True)
    for photos in args.photos:
        gallery = ensure_gallery(args.galleries, photos, _embedder(), 384)
        with tempfile.TemporaryDirectory(prefix="bench-search-") as tmp:
            work = Path(tmp)
            if not args.profile_only:
                stacks = make_stacks(gallery, work, args.baseline_src, list(VARIANTS))
                try:
                    for stack in stacks.values():
                        stack.start()
                    for stack in stacks.values():
                        with SearchClient(stack.target) as client:
                            stack.wait_ready(client)
                    rows = measure_latency(stacks, queries, args.repeats, args.rounds)
                finally:
                    for stack in stacks.values():
                        stack.stop()
                print(f"\nSingle-client search latency, {photos} photos, medians of {args.repeats} "
                      f"repeats x {args.rounds * len(queries)} searches per stack (ms)")
                print(markdown_table(["stack", "p50", "p99", "speed-up (p50)",
                                      "CPU ms / search (servers)", "p50 of each repeat",
                                      "load avg"], rows), flush=True)
            if args.profile or args.profile_only:
                for name in VARIANTS:
                    rows = profile(name, gallery, work, args, queries)
                    print(f"\nProfile of one search, {photos} photos, {name}: the gateway's stage "
                          f"histogram (wall; main has none), CPU per process from /proc, py-spy's "
                          f"samples per category ({args.rate} Hz); {load_note()}")
                    print(markdown_table(["part", "wall ms (mean)", "CPU ms", "share of samples"],
                                         rows), flush=True)


def _embedder():
    """The caption embedder of a new gallery (the shipped model, loaded only when needed)."""
    cache: dict[str, object] = {}

    def embed(texts: list[str]) -> np.ndarray:
        if "runtime" not in cache:
            from withsense.model.runtime import ModelRuntime

            cache["runtime"] = ModelRuntime()
        return cache["runtime"].embed_texts(texts)  # type: ignore[attr-defined]

    return embed


if __name__ == "__main__":
    main()
