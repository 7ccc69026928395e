"""One-off measurement of EdgeStore at gallery scale (not a test; pytest does not collect it).

    .venv/bin/python benchmarks/bench_edge_store.py [--n 20000] [--dim 384] [--queries 200]

20k random unit vectors (20% flagged minor): upsert time, optimize (HNSW build) time, and the
p50/p95 of filtered top-100 queries (exclude_minor=True, vectors returned, as the gateway asks)
in three modes (exact, HNSW ef=512, HNSW ef=100), each against a baseline in the same run:
exact numpy brute force over the same vectors (matmul, mask, argpartition), with the
recall@100 of each mode against that exact answer. Also that a reload keeps every point.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_utils import percentiles_ms, unit_vectors
from withsense.store import EdgeStore, ImageRecord, point_id_for


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=20_000)
    ap.add_argument("--dim", type=int, default=384)
    ap.add_argument("--queries", type=int, default=200)
    ap.add_argument("--limit", type=int, default=100)
    args = ap.parse_args()

    rng = np.random.default_rng(0)
    x = unit_vectors(rng, args.n, args.dim)
    minor = rng.random(args.n) < 0.2
    ids = [point_id_for(f"bench-{i}".encode()) for i in range(args.n)]
    records = [
        ImageRecord(
            ids[i],
            x[i],
            {
                "uri": f"bench/{i}.jpg",
                "minor": bool(minor[i]),
                "flag_reasons": ["caption:child"] if minor[i] else [],
                "descriptions": [],
                "content_hash": ids[i],
            },
        )
        for i in range(args.n)
    ]
    queries = unit_vectors(rng, args.queries, args.dim)

    folder = Path(tempfile.mkdtemp(prefix="edge-measure-"))
    try:
        store = EdgeStore(folder / "store", args.dim)
        t0 = time.perf_counter()
        for start in range(0, args.n, 1000):  # the indexer's batch size order
            store.upsert(records[start : start + 1000])
        upsert_s = time.perf_counter() - t0

        t0 = time.perf_counter()
        store.optimize()
        optimize_s = time.perf_counter() - t0
        indexed = store.indexed_vectors_count()

        modes = [
            # (label, exact_up_to, hnsw_ef): ef is max(hnsw_ef, limit)
            ("exact (the default up to 25k points)", args.n, 512),
            ("HNSW ef=512 (the default above 25k until issue 11)", 0, 512),
            ("HNSW ef=100 (Qdrant's default ef)", 0, 1),  # ef 1: the limit asked for, 100
        ]
        # Interleaved, so that the baseline (exact numpy brute force over the same vectors)
        # and every mode see the same machine load.
        brute_lat: list[float] = []
        lat: dict[str, list[float]] = {m[0]: [] for m in modes}
        recall: dict[str, list[float]] = {m[0]: [] for m in modes}
        store.search(queries[0], args.limit, exclude_minor=True)  # warm up
        for q in queries:
            t0 = time.perf_counter()
            s = np.where(minor, -np.inf, x @ q)
            top = np.argpartition(-s, args.limit)[: args.limit]
            top = top[np.argsort(-s[top])]
            brute_lat.append(time.perf_counter() - t0)
            truth = {ids[i] for i in top}
            for label, exact_up_to, ef in modes:
                store.exact_up_to, store.hnsw_ef = exact_up_to, ef
                t0 = time.perf_counter()
                hits = store.search(q, args.limit, exclude_minor=True, with_vectors=True)
                lat[label].append(time.perf_counter() - t0)
                assert len(hits) == args.limit and not any(h.payload["minor"] for h in hits)
                recall[label].append(len(truth & {h.image_id for h in hits}) / args.limit)
        store.exact_up_to, store.hnsw_ef = 25_000, 0  # the defaults again
        b50 = percentiles_ms(brute_lat, [50])[0]

        count = store.count()
        store.close()
        t0 = time.perf_counter()
        reopened = EdgeStore(folder / "store", args.dim)
        reload_s = time.perf_counter() - t0
        reloaded = reopened.count()
        reopened.close()

        rows = [
            ("points", f"{args.n} x {args.dim} (minor {int(minor.sum())})"),
            ("upsert (20 batches of 1000, flushed)", f"{upsert_s:.2f} s"),
            ("optimize (HNSW build)", f"{optimize_s:.2f} s, indexed {indexed}"),
            ("reload after close", f"{reload_s:.2f} s, {reloaded}/{count} points"),
            ("baseline: numpy brute force p50", f"{b50:.2f} ms"),
        ]
        for label, _, _ in modes:
            p50 = percentiles_ms(lat[label], [50])[0]
            rows.append(
                (
                    f"filtered top-{args.limit}, {label}",
                    f"p50 {p50:.2f} ms, p95 {percentiles_ms(lat[label], [95])[0]:.2f} ms, "
                    f"x{p50 / b50:.2f} baseline, recall@{args.limit} "
                    f"{np.mean(recall[label]):.3f}",
                )
            )
        width = max(len(k) for k, _ in rows)
        for k, v in rows:
            print(f"{k:<{width}}  {v}")
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
