"""The descriptions' evidence of a search: taken out as rows (the baseline) against summarised
by the engine (`DESCRIPTION_STATS_VECTOR`), in process, on two stores of the same photos.

A search's fusion needs, for each candidate, the best and the mean cosine of its descriptions
to the query and their count. A store made before the summary existed hands out every
description row of every candidate (Python lists of floats: the engine builds them, the
gateway converts them) and the gateway works the three numbers out. A store with the summary
scores them in the engine: MaxSim of the rows, and the summary vector against two queries.

Both stores hold the same photos: N scenes (random unit centres), each photo an image vector
near its scene and `--descriptions` description vectors nearer to it (the customer's data has
five captions a photo). The two are searched alternately, query by query, with the gateway's
call (`hybrid_search` of top_k x oversample candidates, then `description_summaries`), and
timed (wall and this process's CPU). Every query's (best, mean, count) must agree between the
two to 1e-5, or the run stops.

    .venv/bin/python benchmarks/bench_description_summary.py --photos 20000 --descriptions 5
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_utils import load_note, markdown_table, rotated, unit_vectors
from qdrant_edge import EdgeShard
from search_gallery import DESCRIPTION_NOISE, IMAGE_NOISE, noisy
from tqdm import tqdm
from withsense.config.gateway import GatewaySettings
from withsense.config.store import StoreSettings
from withsense.gateway.evidence import description_summaries
from withsense.store import EdgeStore, ImageRecord, point_id_for
from withsense.store.edge import edge_config

DIM = 384
SCENES = 500
TOP_K = 10
LAYOUTS = {"rows out (baseline: a store made before the summary)": False,
           "summarised in the engine (this checkout)": True}


def near(rng: np.random.Generator, scene: np.ndarray, scale: float, n: int) -> np.ndarray:
    """n unit vectors around a scene (search_gallery's noise)."""
    return noisy(rng, np.repeat(scene[None], n, axis=0), scale)


def photos(scenes: np.ndarray, n: int, descriptions: int, seed: int = 0) -> list[ImageRecord]:
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        scene = scenes[i % SCENES]
        texts = [f"description {j} of photo {i}" for j in range(descriptions)]
        payload = {"uri": f"bench/{i}.jpg", "minor": False, "flag_reasons": [],
                   "descriptions": texts, "content_hash": str(i)}
        out.append(ImageRecord(point_id_for(f"bench-{i}".encode()), near(rng, scene, IMAGE_NOISE, 1)[0],
                               payload, descriptions=near(rng, scene, DESCRIPTION_NOISE, descriptions)
                               if descriptions else None))
    return out


def open_layout(folder: Path, summarised: bool, settings: StoreSettings) -> EdgeStore:
    if not summarised:  # the shard as With Sense made it before the summary
        folder.mkdir(parents=True)
        EdgeShard.create(str(folder / "store"), edge_config(DIM, settings, stats=False)).close()
    return EdgeStore(folder / "store", DIM, settings=settings)


def search(store: EdgeStore, query: np.ndarray, limit: int
           ) -> tuple[float, float, dict[str, tuple[float, float, float]]]:
    """(wall s, CPU s, id -> (best, mean, count) of each candidate) of the gateway's call."""
    wall, cpu = time.perf_counter(), time.process_time()
    hits = store.hybrid_search(query, None, limit, exclude_minor=False)
    best, mean, count = description_summaries(query, hits)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return wall, cpu, {h.image_id: v for h, *v in zip(hits, best, mean, count, strict=True)}


def disagree(first: dict[str, tuple], second: dict[str, tuple]) -> int:
    """How many candidates both searches found have evidence apart by more than 1e-5 (each
    store has its own HNSW graph, so the candidate lists may differ at the margin)."""
    return sum(not np.allclose(first[i], second[i], atol=1e-5) for i in first.keys() & second.keys())


def run(args: argparse.Namespace) -> dict:
    settings = StoreSettings()
    limit = TOP_K * GatewaySettings().oversample
    scenes = unit_vectors(np.random.default_rng(0), SCENES, DIM)
    records = photos(scenes, args.photos, args.descriptions)
    rng = np.random.default_rng(1)
    queries = [near(rng, scenes[rng.integers(SCENES)], IMAGE_NOISE, 1)[0]
               for _ in range(args.queries + 10)]
    samples = {name: {"wall": [], "cpu": []} for name in LAYOUTS}
    with tempfile.TemporaryDirectory() as tmp:
        stores = {name: open_layout(Path(tmp) / str(i), summarised, settings)
                  for i, (name, summarised) in enumerate(LAYOUTS.items())}
        try:
            for name, store in stores.items():
                layout = "new" if LAYOUTS[name] else "old"
                for start in tqdm(range(0, len(records), 1000), desc=f"fill the {layout} layout",
                                  unit="k photos"):
                    store.upsert(records[start:start + 1000])
                store.optimize()
            for query in queries[:10]:  # warm-up
                for store in stores.values():
                    search(store, query, limit)
            compared = candidates = 0
            with tqdm(total=args.repeats * args.queries, desc="searches", unit="query") as bar:
                for _ in range(args.repeats):
                    for i, query in enumerate(queries[10:]):
                        got = {}
                        for name in rotated(list(stores), i):  # who goes first alternates
                            wall, cpu, got[name] = search(stores[name], query, limit)
                            samples[name]["wall"].append(wall)
                            samples[name]["cpu"].append(cpu)
                        first, second = got.values()
                        if disagree(first, second):
                            raise SystemExit("the two layouts disagree on a candidate's description evidence")
                        compared += len(first.keys() & second.keys())
                        candidates += len(first)
                        bar.update()
        finally:
            for store in stores.values():
                store.close()
    return {"photos": args.photos, "descriptions": args.descriptions, "candidates": limit,
            "load": load_note(),
            "ms": {name: {f"{k}_p50": 1e3 * statistics.median(v) for k, v in s.items()}
                   for name, s in samples.items()},
            "samples": len(samples[next(iter(LAYOUTS))]["wall"]),
            "shared_candidates": compared / max(candidates, 1)}


def render(result: dict) -> str:
    base = next(iter(result["ms"].values()))
    rows = [[name, f"{ms['wall_p50']:.2f}", f"{ms['cpu_p50']:.2f}",
             f"{base['wall_p50'] / ms['wall_p50']:.2f}x"] for name, ms in result["ms"].items()]
    headers = ["descriptions' evidence", "wall ms (p50)", "CPU ms (p50)", "speed-up (wall)"]
    return markdown_table(headers, rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--photos", type=int, default=20000)
    ap.add_argument("--descriptions", type=int, default=5, help="description vectors per photo")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    if args.photos < 1 or args.descriptions < 0 or args.queries < 1 or args.repeats < 1:
        raise SystemExit("--photos, --queries and --repeats must be at least 1, --descriptions at least 0")
    result = run(args)
    if args.json:
        print(json.dumps(result))
        return
    print(f"The gateway's store call and description evidence, in process: {result['photos']:,} photos "
          f"x {result['descriptions']} descriptions, {result['candidates']} candidates a search, "
          f"{result['samples']} searches per layout, alternating; the evidence agreed to 1e-5 on "
          f"the {result['shared_candidates']:.1%} of candidates both found; {result['load']}\n")
    print(render(result))


if __name__ == "__main__":
    main()
