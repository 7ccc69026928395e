"""Does a store call hold Python's GIL? The event loop's view of the embedded store.

The gateway runs each store call in a thread (`asyncio.to_thread`), so that the event loop keeps
serving while the engine searches. That only works if the engine releases the GIL. Here one
thread runs `hybrid_search` calls, one after another, on a prefilled store. Meanwhile the main
thread spins a pure-Python loop that stands in for the event loop, and records the gaps between
its iterations. The baseline is the same loop alone for as long.

    cd benchmarks && ../.venv/bin/python bench_store_gil.py \\
        --store /work/scratch/scale/store-100000-m16-efc128-int8-disk/store [--calls 200] [--json]
"""

from __future__ import annotations

import argparse
import json
import threading
import time
from pathlib import Path

import numpy as np
from bench_utils import load_note, markdown_table


def spin(seconds: float, until_done: threading.Thread | None = None) -> dict[str, float]:
    """Iterations of a pure-Python loop and its longest gaps, for `seconds` or while a thread runs."""
    gaps, count = [], 0
    started = last = time.perf_counter()
    while (until_done.is_alive() if until_done else last - started < seconds):
        now = time.perf_counter()
        gaps.append(now - last)
        last, count = now, count + 1
    wall = last - started
    gaps_ms = np.asarray(gaps) * 1e3
    return {"wall_s": wall, "iterations_per_s": count / wall, "longest_gap_ms": float(gaps_ms.max()),
            "gaps_over_5ms": int((gaps_ms > 5).sum())}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--store", type=Path, required=True, help="a prefilled store folder")
    ap.add_argument("--calls", type=int, default=200)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    from bench_scale import caption_queries
    from withsense.config.store import StoreSettings
    from withsense.keywords import query_vector
    from withsense.store import EdgeStore
    from withsense.store.prefault import prefault_store

    texts, vectors = caption_queries()
    settings = StoreSettings()
    with EdgeStore(args.store, vectors.shape[1], settings=settings) as store:
        prefault_store(args.store, settings.store_prefault_mb)

        def calls() -> None:
            for i in range(args.calls):
                store.hybrid_search(vectors[i], query_vector(texts[i]) or None, 40, exclude_minor=False)

        calls()  # warm: the same queries as timed below
        started = time.perf_counter()
        calls()
        alone_s = time.perf_counter() - started
        baseline = spin(alone_s)
        worker = threading.Thread(target=calls)
        worker.start()
        beside = spin(0, until_done=worker)
        worker.join()
    rows = [["the loop alone (baseline)", baseline], ["beside a thread of store calls", beside]]
    if args.json:
        print(json.dumps({"store_call_ms": alone_s / args.calls * 1e3, "rows": dict(rows)}, indent=1))
        return
    print(f"{args.calls} hybrid_search calls of 40 candidates on {args.store}: "
          f"{alone_s / args.calls * 1e3:.2f} ms a call alone; {load_note()}")
    print(markdown_table(["main thread", "loop iterations / s", "share of the baseline",
                          "longest gap ms", "gaps over 5 ms"],
                         [[name, f"{r['iterations_per_s']:,.0f}",
                           f"{r['iterations_per_s'] / baseline['iterations_per_s']:.1%}",
                           f"{r['longest_gap_ms']:.1f}", r["gaps_over_5ms"]] for name, r in rows]))


if __name__ == "__main__":
    main()
