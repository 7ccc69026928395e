"""The gateway's store call on a freshly opened store, with and without its pages faulted in.

Each mode runs in a fresh child process, the modes alternately, `--repeats` times: open the
prefilled store of `bench_scale.py` (as the sealed start-up does: no full scan), then fault in
its pages (`withsense.store.prefault`, budget `--budget-mb`) or not (the baseline, budget 0),
then time `hybrid_search` of top_k x oversample candidates for `--queries` distinct captions
(the customer's captions that mention no child, as the load test sends them; each query once,
so no query finds pages an earlier one faulted in for it). Reported: p50 / p90 / p99 of the
call, the time the faulting took, and the file-backed RSS it added.

    cd benchmarks && ../.venv/bin/python bench_store_prefault.py \\
        --store /work/scratch/scale/store-100000-m16-efc128-int8-disk/store [--json]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

from bench_utils import load_note, markdown_table, process_memory

TOP_K, OVERSAMPLE = 10, 4


def child(store_path: Path, budget_mb: int, offset: int, queries: int) -> dict:
    import numpy as np
    from bench_scale import caption_queries
    from withsense.config.store import StoreSettings
    from withsense.keywords import query_vector
    from withsense.store import EdgeStore
    from withsense.store.prefault import prefault_store

    texts, vectors = caption_queries()
    picked = [(offset + i) % len(texts) for i in range(queries)]
    with EdgeStore(store_path, vectors.shape[1], settings=StoreSettings()) as store:
        before = process_memory()
        report = prefault_store(store_path, budget_mb)
        after = process_memory()
        times = []
        for i in picked:
            started = time.perf_counter()
            store.hybrid_search(vectors[i], query_vector(texts[i]) or None, TOP_K * OVERSAMPLE,
                                exclude_minor=False)
            times.append((time.perf_counter() - started) * 1e3)
    p50, p90, p99 = np.percentile(times, [50, 90, 99])
    return {"budget_mb": budget_mb, "p50_ms": p50, "p90_ms": p90, "p99_ms": p99,
            "prefault_s": report.seconds, "faulted_mb": report.faulted_bytes / 2**20,
            "rss_file_added_mb": after.get("RssFile", 0) - before.get("RssFile", 0),
            "note": report.describe()}


def drop_page_cache() -> None:
    """Writes dirty pages back and drops the clean ones (needs root)."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError as e:
        raise SystemExit(f"--drop-caches: cannot drop the page cache ({e}); "
                         "run as root or without it") from None


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True, help="a prefilled store folder")
    ap.add_argument("--budget-mb", type=int, default=None,
                    help="the prefault budget (default: StoreSettings' default)")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--queries", type=int, default=500)
    ap.add_argument("--budgets", default=None,
                    help="comma-separated budgets in MB to compare with the baseline (default: --budget-mb)")
    ap.add_argument("--drop-caches", action="store_true",
                    help="drop the kernel's page cache before each run (root): every mode starts "
                    "from the disk, as a gateway does on a fresh node; else a run finds what the "
                    "runs before it read")
    ap.add_argument("--json", action="store_true")
    ap.add_argument("--child", nargs=3, metavar=("BUDGET", "OFFSET", "QUERIES"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.child:
        budget, offset, queries = map(int, args.child)
        print(json.dumps(child(args.store, budget, offset, queries)))
        return
    from withsense.config.store import StoreSettings

    budget = StoreSettings().store_prefault_mb if args.budget_mb is None else args.budget_mb
    budgets = [int(b) for b in args.budgets.split(",")] if args.budgets else [budget]
    modes = {"not faulted in (baseline)": 0, **{f"faulted in, budget {b} MB": b for b in budgets}}
    runs: dict[str, list[dict]] = {name: [] for name in modes}
    for repeat in range(args.repeats):
        for name, mb in modes.items():  # the same queries for every mode of a repeat
            if args.drop_caches:
                drop_page_cache()
            out = subprocess.run([sys.executable, __file__, "--store", str(args.store), "--child",
                                  str(mb), str(repeat * args.queries), str(args.queries)],
                                 check=True, capture_output=True, text=True)
            runs[name].append(json.loads(out.stdout.strip().splitlines()[-1]))
            print(f"repeat {repeat}: {name}: p50 {runs[name][-1]['p50_ms']:.2f} ms", file=sys.stderr)
    base = statistics.median(r["p50_ms"] for r in runs[next(iter(modes))])
    rows = []
    for name, rs in runs.items():
        med = {k: statistics.median(r[k] for r in rs) for k in
               ("p50_ms", "p90_ms", "p99_ms", "prefault_s", "faulted_mb", "rss_file_added_mb")}
        rows.append([name, f"{med['p50_ms']:.2f}", f"{med['p90_ms']:.2f}", f"{med['p99_ms']:.2f}",
                     f"{base / med['p50_ms']:.2f}x", f"{med['prefault_s']:.2f}",
                     f"{med['faulted_mb']:.0f}", f"{med['rss_file_added_mb']:.0f}",
                     " ".join(f"{r['p50_ms']:.1f}" for r in rs)])
    if args.json:
        print(json.dumps({"store": str(args.store), "runs": runs, "load": load_note()}, indent=1))
        return
    print(f"\nThe store call on a freshly opened store ({args.store}), {args.queries} distinct "
          f"queries a run, medians of {args.repeats} runs; {load_note()}")
    print(markdown_table(["pages", "p50 ms", "p90 ms", "p99 ms", "speed-up (p50)", "faulting s",
                          "faulted MB (files)", "RssFile added MB", "p50 of each run"], rows))
    for name in list(modes)[1:]:
        print(f"\n{name}: " + runs[name][-1]["note"])


if __name__ == "__main__":
    main()
