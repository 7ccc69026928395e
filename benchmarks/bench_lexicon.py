"""The lexicon's check of a query it has not seen before (`child_mention_rules`, every restricted
search's first step), a baseline source tree against this checkout, in child processes.

The check remembers the verdict on a whole query, so a running gateway pays for it once per
distinct query: the cost that matters is a new query's, in a process that has already checked
many others (what it remembers of words by then is warm, as in a service that has run a while).
So each child first checks `--warm` of the customer's captions, then times `--queries` others
(CPU time of the process, one call each), and prints what it found for every query: the two
trees must find the same terms by the same rules, or the run stops. Children of the two trees
alternate, `--repeats` times, each on a new slice of captions.

    .venv/bin/python benchmarks/bench_lexicon.py --baseline-src BASELINE   # git archive REV services
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_utils import caption_texts, load_note, markdown_table, rotated

HERE = Path(__file__).resolve().parent
SERVICES = HERE.parent / "services"
DATA = Path(os.environ.get("WITHSENSE_CUSTOMER_DATA", "/work/shared/data/withsense"))
CAPTIONS = DATA / "extra" / "captions.txt"


def child(warm: list[str], queries: list[str]) -> dict:
    """In a child process: warm the check up, then time it on queries it has not seen."""
    from withsense.compliance.mentions import child_mention_rules

    for text in warm:
        child_mention_rules(text)
    cpu, found = [], []
    for text in queries:
        started = time.process_time()
        found.append(child_mention_rules(text))
        cpu.append(time.process_time() - started)
    verdicts = hashlib.sha256(json.dumps(found).encode()).hexdigest()
    return {"cpu_ms": [1e3 * c for c in cpu], "verdicts": verdicts,
            "flagged": sum(bool(f) for f in found)}


def run_child(services: Path, warm: list[str], queries: list[str]) -> dict:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(services), str(HERE)])}
    done = subprocess.run([sys.executable, __file__, "--child"], input=json.dumps([warm, queries]),
                          env=env, capture_output=True, text=True, check=False, timeout=1800)
    if done.returncode != 0:
        raise SystemExit(f"the child on {services} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout)


def run(args: argparse.Namespace) -> dict:
    texts = caption_texts(DATA)
    trees = {f"baseline ({args.baseline_src})": args.baseline_src / "services",
             "this checkout": SERVICES}
    cpu: dict[str, list[float]] = {name: [] for name in trees}
    flagged = 0
    for repeat in range(args.repeats):
        start = args.warm + repeat * args.queries
        warm, queries = texts[:args.warm], texts[start:start + args.queries]
        if len(queries) < args.queries:
            raise SystemExit(f"--warm + --repeats x --queries exceeds the {len(texts)} captions")
        got = {name: run_child(trees[name], warm, queries) for name in rotated(list(trees), repeat)}
        if len({g["verdicts"] for g in got.values()}) != 1:
            raise SystemExit("the two trees' lexicons disagree on a query")
        for name, g in got.items():
            cpu[name] += g["cpu_ms"]
        flagged += next(iter(got.values()))["flagged"]
    return {"warm": args.warm, "queries": args.queries, "repeats": args.repeats, "flagged": flagged,
            "load": load_note(),
            "cpu_ms": {name: {"p50": statistics.median(c), "mean": statistics.mean(c),
                              "p90": statistics.quantiles(c, n=10)[-1]} for name, c in cpu.items()}}


def render(result: dict) -> str:
    base = next(iter(result["cpu_ms"].values()))
    rows = [[name, f"{c['p50']:.3f}", f"{c['mean']:.3f}", f"{c['p90']:.3f}",
             f"{base['mean'] / c['mean']:.2f}x"] for name, c in result["cpu_ms"].items()]
    return markdown_table(["tree", "CPU ms p50", "CPU ms mean", "CPU ms p90", "speed-up (mean)"], rows)


def main() -> None:
    if "--child" in sys.argv:
        print(json.dumps(child(*json.loads(sys.stdin.read()))))
        return
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--baseline-src", type=Path, required=True,
                    help="a source tree with services/ (another checkout, or git archive REV services)")
    ap.add_argument("--warm", type=int, default=1000, help="captions checked before the timing")
    ap.add_argument("--queries", type=int, default=600, help="new captions timed per child")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.warm < 0 or args.queries < 1 or args.repeats < 1:
        raise SystemExit("--queries and --repeats must be at least 1, --warm at least 0")
    if not (args.baseline_src / "services" / "withsense").is_dir():
        raise SystemExit(f"--baseline-src {args.baseline_src}: no services/withsense there")
    if not CAPTIONS.exists():
        raise SystemExit(f"the customer's captions are not at {CAPTIONS} (WITHSENSE_CUSTOMER_DATA)")
    result = run(args)
    if args.json:
        print(json.dumps(result))
        return
    print(f"The lexicon's check of a query not seen before, in child processes: {result['warm']} "
          f"captions checked first, then {result['queries']} new ones timed, x {result['repeats']} "
          f"repeats per tree, alternating; both trees found the same terms ({result['flagged']} "
          f"queries flagged); {result['load']}\n")
    print(render(result))


if __name__ == "__main__":
    main()
