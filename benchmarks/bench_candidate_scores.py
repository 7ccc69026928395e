"""A hybrid search's exact scores of its candidates, in process on Qdrant Edge: one search at a
time (the baseline: how `EdgeStore` took them before) against one batch (`EdgeShard.query_batch`,
how it takes them now).

After the hybrid query the store scores its ~40-120 candidates exactly, in searches restricted
to their ids: the image cosine, and for a store that summarises its descriptions their best
(MaxSim of the rows), mean and count. The baseline ran them one after the other, the count
first and the best and mean only for the candidates it found described. The batch sends all
four at once (`candidate_score_queries`), and the engine plans them together.

For each store (the same photos, with `--descriptions` description vectors each; 0: none), the
candidates of each query come from the gateway's hybrid search (`hybrid_search` of top_k x
oversample); both ways then score the same candidates, alternately, timed (wall and this
process's CPU), and must agree to 1e-6 or the run stops.

    .venv/bin/python benchmarks/bench_candidate_scores.py --photos 30000 --descriptions 5,0
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from bench_description_summary import DIM, SCENES, TOP_K, near, photos
from bench_utils import load_note, markdown_table, rotated, unit_vectors
from search_gallery import IMAGE_NOISE
from tqdm import tqdm
from withsense.config.gateway import GatewaySettings
from withsense.config.store import StoreSettings
from withsense.store import EdgeStore
from withsense.store.base import candidate_score_queries, stats_queries, summaries_of
from withsense.store.edge import DESCRIPTION_STATS_VECTOR, DESCRIPTIONS_VECTOR, VECTOR_NAME

Scores = list[dict[str, float]]


def one_by_one(store: EdgeStore, query: list[float], ids: list[Any]) -> Scores:
    """The baseline: image cosines, then the count, then the best and mean of the described."""
    shard = store._open_shard()
    image = store._scores(shard, [(query, VECTOR_NAME)], ids)[0]
    mean_query, count_query = stats_queries(query)
    count = store._scores(shard, [(count_query, DESCRIPTION_STATS_VECTOR)], ids)[0]
    described = [i for i in ids if str(i) in count]
    best = store._scores(shard, [([query], DESCRIPTIONS_VECTOR)], described)[0]
    mean = store._scores(shard, [(mean_query, DESCRIPTION_STATS_VECTOR)], described)[0]
    return [image, best, mean, count]


def batched(store: EdgeStore, query: list[float], ids: list[Any]) -> Scores:
    """This checkout: the four searches as one batch."""
    return store._scores(store._open_shard(), candidate_score_queries(query, summarised=True), ids)


WAYS: dict[str, Callable[[EdgeStore, list[float], list[Any]], Scores]] = {
    "one search at a time (baseline)": one_by_one,
    "one batch (this checkout)": batched,
}


def same(first: Scores, second: Scores) -> bool:
    """Equal image cosines and equal (best, mean, count) summaries, to 1e-6."""
    def close(a: dict, b: dict) -> bool:
        return a.keys() == b.keys() and all(np.allclose(a[k], b[k], atol=1e-6) for k in a)
    return close(first[0], second[0]) and close(summaries_of(*first[1:]), summaries_of(*second[1:]))


def timed(way: Callable, store: EdgeStore, query: list[float], ids: list[Any]) -> tuple[float, float, Scores]:
    wall, cpu = time.perf_counter(), time.process_time()
    scores = way(store, query, ids)
    return time.perf_counter() - wall, time.process_time() - cpu, scores


def measure(store: EdgeStore, queries: list[np.ndarray], repeats: int, limit: int, bar: tqdm) -> dict:
    samples = {name: {"wall": [], "cpu": []} for name in WAYS}
    candidates = []
    for _ in range(repeats):
        for i, vector in enumerate(queries):
            ids = [hit.image_id for hit in store.hybrid_search(vector, None, limit, exclude_minor=False)]
            query = [float(x) for x in vector]
            got = []
            for name in rotated(list(WAYS), i):  # who goes first alternates
                wall, cpu, scores = timed(WAYS[name], store, query, ids)
                samples[name]["wall"].append(wall)
                samples[name]["cpu"].append(cpu)
                got.append(scores)
            if not same(*got):
                raise SystemExit("the batch and the one-by-one searches disagree on a candidate's scores")
            candidates.append(len(ids))
            bar.update()
    return {"candidates_p50": statistics.median(candidates),
            "ms": {name: {f"{k}_p50": 1e3 * statistics.median(v) for k, v in s.items()}
                   for name, s in samples.items()}}


def run(args: argparse.Namespace) -> dict:
    settings = StoreSettings()
    limit = TOP_K * GatewaySettings().oversample
    scenes = unit_vectors(np.random.default_rng(0), SCENES, DIM)
    rng = np.random.default_rng(1)
    queries = [near(rng, scenes[rng.integers(SCENES)], IMAGE_NOISE, 1)[0] for _ in range(args.queries)]
    result = {"photos": args.photos, "limit": limit, "load": load_note(), "stores": {}}
    with tempfile.TemporaryDirectory() as tmp:
        for descriptions in args.descriptions:
            store = EdgeStore(Path(tmp) / f"d{descriptions}", DIM, settings=settings)
            try:
                records = photos(scenes, args.photos, descriptions)
                for start in tqdm(range(0, len(records), 1000), unit="k photos",
                                  desc=f"fill ({descriptions} descriptions a photo)"):
                    store.upsert(records[start:start + 1000])
                store.optimize()
                with tqdm(total=args.repeats * args.queries, desc="searches", unit="query") as bar:
                    result["stores"][descriptions] = measure(store, queries, args.repeats, limit, bar)
            finally:
                store.close()
    return result


def render(result: dict) -> str:
    rows = []
    for descriptions, store in result["stores"].items():
        base = next(iter(store["ms"].values()))
        rows += [[descriptions, name, f"{ms['wall_p50']:.2f}", f"{ms['cpu_p50']:.2f}",
                  f"{base['wall_p50'] / ms['wall_p50']:.2f}x"] for name, ms in store["ms"].items()]
    headers = ["descriptions a photo", "candidates' scores", "wall ms (p50)", "CPU ms (p50)",
               "speed-up (wall)"]
    return markdown_table(headers, rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=30000)
    ap.add_argument("--descriptions", default="5,0",
                    help="comma-separated: description vectors a photo, one store each")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    try:
        args.descriptions = [int(d) for d in args.descriptions.split(",")]
    except ValueError:
        raise SystemExit(f"--descriptions: not a comma-separated list of counts: "
                         f"{args.descriptions!r}") from None
    if args.photos < 1 or args.queries < 1 or args.repeats < 1 or min(args.descriptions) < 0:
        raise SystemExit("--photos, --queries and --repeats must be at least 1, --descriptions at least 0")
    result = run(args)
    if args.json:
        print(json.dumps(result))
        return
    print(f"A hybrid search's exact scores of its candidates, in process (Qdrant Edge): "
          f"{result['photos']:,} photos, the candidates of a hybrid search of {result['limit']} "
          f"(median {', '.join(str(s['candidates_p50']) for s in result['stores'].values())}), "
          f"both ways alternating and agreeing to 1e-6; {result['load']}\n")
    print(render(result))


if __name__ == "__main__":
    main()
