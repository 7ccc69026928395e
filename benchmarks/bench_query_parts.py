"""A search's gateway parts in process, main's checkout (baseline) against this one.

Each tree runs in a child process of its own (``--baseline-src``: main's ``services`` folder),
the two alternately, ``--repeats`` times; each child times, one call at a time, CPU time
(``time.process_time``) and wall:

* ``lexicon``: the query policy's check of queries it has not seen (the customer's captions,
  a new slice each repeat: the check caches what it has seen);
* ``store``: the gateway's store call on a gallery of ``bench_search_path`` (``hybrid_search``
  of top_k x oversample candidates, query vectors = stored photos plus noise);
* ``score + fuse``: the candidates' pixel probabilities and the fusion model, as ``_rescore``
  does them (main: from the image vectors; this checkout: from the engine's cosines).

    PYTHONPATH=services .venv/bin/python benchmarks/bench_query_parts.py \\
        --store /tmp/withsense-search-galleries/gallery-100000/store --baseline-src ../main/services

The store folder is opened by one child at a time (an embedded store is locked by its process).
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

from bench_utils import markdown_table

HERE = Path(__file__).resolve().parent
CAPTIONS = Path("/work/shared/data/withsense/extra/captions.txt")
TOP_K, OVERSAMPLE, QUERIES = 10, 4, 40


def _timed(fn, items) -> tuple[float, float]:
    """Median wall ms and mean CPU ms of fn over items, one call each."""
    walls, cpu_started = [], time.process_time()
    for item in items:
        started = time.perf_counter()
        fn(item)
        walls.append(time.perf_counter() - started)
    return 1000 * statistics.median(walls), 1000 * (time.process_time() - cpu_started) / len(items)


def child(store_path: Path, repeat: int) -> dict[str, tuple[float, float]]:
    """The parts' times in this process (whichever withsense PYTHONPATH holds)."""
    import numpy as np
    from withsense.compliance.policy import QueryPolicy
    from withsense.gateway.evidence import fuse
    from withsense.kernels.numpy_reference import cosine_sigmoid_numpy
    from withsense.keywords import query_words, words_vector
    from withsense.model.fusion import load_fusion
    from withsense.store import EdgeStore, StoreHit

    captions = [line.split("\t", 1)[1].strip() for line in CAPTIONS.read_text().splitlines()
                if "\t" in line]
    # Not filtered by the lexicon: that would fill the very cache the check would then hit.
    fresh = captions[1000 + repeat * 300:1000 + (repeat + 1) * 300]
    policy = QueryPolicy()
    policy.check("dogs running on beaches, собаки бегают")  # loads the dictionaries
    out = {"lexicon": _timed(policy.check, fresh)}

    fusion = load_fusion(HERE.parent / "services/withsense/model/artifacts/default")
    scale, bias = 10.0, -5.0  # any t and b: the same arithmetic in both trees
    rng = np.random.default_rng(repeat)
    store = EdgeStore(store_path, 384)
    try:
        stored = store.points(sorted(store.ids())[:QUERIES])
        queries = []
        for text, (_, vectors) in zip(captions, stored.values(), strict=False):
            x = np.asarray(vectors["image"], np.float32) + 0.05 * rng.standard_normal(384).astype(np.float32)
            queries.append((x / np.linalg.norm(x), query_words(text)))
        limit = TOP_K * OVERSAMPLE

        def search(query):
            vector, words = query
            return store.hybrid_search(vector, words_vector(words) or None, limit, exclude_minor=True)

        for query in queries:
            search(query)  # warm the pages the graph search touches (a shared machine evicts them)
        out["store"] = _timed(search, queries)
        found = [(query, search(query)) for query in queries]
    finally:
        store.close()

    def score_and_fuse(item):
        (vector, words), candidates = item
        if "cosine" in StoreHit.__dataclass_fields__:  # this checkout: the engine's cosines
            from withsense.kernels.numpy_reference import sigmoid_of_cosines

            pixels = sigmoid_of_cosines(np.asarray([c.cosine for c in candidates]), scale, bias)
        else:
            vectors = np.stack([c.vector for c in candidates])
            offsets = np.asarray([0, len(vectors)])
            pixels = cosine_sigmoid_numpy(vector[None, :], vectors, offsets, scale, bias)
        fuse(fusion, words, vector, candidates, pixels)

    out["score + fuse"] = _timed(score_and_fuse, found)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--store", type=Path, required=True, help="a gallery's store folder")
    parser.add_argument("--baseline-src", type=Path, default=Path("/work/main/services"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child is not None:
        print(json.dumps(child(args.store, args.child)))
        return
    trees = {"main (baseline)": args.baseline_src, "this checkout": HERE.parent / "services"}
    results: dict[str, list[dict]] = {name: [] for name in trees}
    loads = []
    for repeat in range(args.repeats):
        for name, src in trees.items():
            env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{HERE}", "OMP_NUM_THREADS": "1"}
            reply = subprocess.run([sys.executable, __file__, "--store", str(args.store),
                                    "--child", str(repeat)], env=env, check=True,
                                   capture_output=True, text=True)
            results[name].append(json.loads(reply.stdout.strip().splitlines()[-1]))
            loads.append(os.getloadavg()[0])
    rows = []
    for part in results["main (baseline)"][0]:
        base_cpu = statistics.median(r[part][1] for r in results["main (baseline)"])
        for name, runs in results.items():
            wall = statistics.median(r[part][0] for r in runs)
            cpu = statistics.median(r[part][1] for r in runs)
            rows.append([part, name, f"{wall:.2f}", f"{cpu:.2f}", f"{base_cpu / cpu:.2f}x"])
    print(f"\nA search's gateway parts in process, medians of {args.repeats} repeats (each "
          f"{QUERIES} store calls, 300 fresh lexicon checks); load average "
          f"{statistics.median(loads):.1f} on {os.cpu_count()} CPUs")
    print(markdown_table(["part", "tree", "wall ms (median)", "CPU ms / call", "CPU speed-up"], rows))


if __name__ == "__main__":
    main()
