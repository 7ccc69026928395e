"""The embedded store at scale: HNSW m / ef_construct / ef and int8 quantization (rescoring,
oversampling), vectors on disk or in RAM, on realistic photo vectors (scale_vectors.py).

For each index configuration the store is built once (upserts through `EdgeStore`, then
`optimize`, timed) and kept under --root, so later runs measure without rebuilding. Each is
then measured in a fresh process that opens the store and serves queries: recall@10 against
exact search, p50 / p99 of one query in process, the resident memory of that process (anonymous
and file-backed pages) and the folder's size on disk. Baselines of the same run: the store's own
exact mode (original vectors, no graph), and numpy brute force over the same vectors.

The queries are real caption embeddings (5,000 captions of the customer's photos, text head of
the shipped model); the ground truth is numpy's exact top 10 over the generated vectors.

    .venv/bin/python benchmarks/bench_store_tuning.py --n 100000 --builds m16-efc128-int8-disk \\
        --efs 64,128,256 [--root /work/scratch/scale] [--queries 300] [--json]

A build is named m<M>-efc<EF_CONSTRUCT>-<int8|f32>-<disk|ram>[-d<N>]; `-d<N>` gives every photo N
descriptions (scale_descriptions.py; bench_scale.py --descriptions). Run HNSW builds under `nice`.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from bench_utils import caption_texts, load_note, markdown_table, percentiles_ms, process_memory
from scale_descriptions import Described, Describer
from scale_vectors import SCRATCH, cached_real_vectors, generated_set
from tqdm import tqdm
from withsense.config.store import StoreSettings
from withsense.store import EdgeStore, ImageRecord, point_id_for

DATA = Path(os.environ.get("WITHSENSE_CUSTOMER_DATA", "/work/shared/data/withsense"))
CACHE = Path(os.environ.get("WITHSENSE_FEATURE_CACHE", "/work/cache"))
K = 10
UPSERT_BATCH = 4096
_BUILD = re.compile(r"^m(\d+)-efc(\d+)-(int8|f32)-(disk|ram)(?:-d(\d+))?$")


@dataclass(frozen=True)
class Build:
    """One index configuration, by name (see the module docstring)."""

    name: str

    @property
    def settings(self) -> StoreSettings:
        found = _BUILD.match(self.name)
        if not found:
            raise SystemExit(f"bad build name {self.name!r}: want m<M>-efc<EF>-<int8|f32>-<disk|ram>[-d<N>]")
        m, efc, quant, where, _ = found.groups()
        return StoreSettings(store_hnsw_m=int(m), store_hnsw_ef_construct=int(efc),
                             store_quantization="int8" if quant == "int8" else "none",
                             store_vectors_on_disk=where == "disk", store_exact_up_to=0)

    @property
    def descriptions(self) -> int:
        """Descriptions a photo (`-d<N>`; 0: none)."""
        found = _BUILD.match(self.name)
        return int(found.group(5) or 0) if found else 0


def scale_id(i: int) -> str:
    """The point id of generated photo i (as if its bytes were `scale-<i>`)."""
    return point_id_for(f"scale-{i}".encode())


def scale_record(i: int, vector: np.ndarray, minor: bool, described: Described | None = None,
                 j: int = 0) -> ImageRecord:
    """Generated photo i; with `described`, as the j-th photo of those descriptions."""
    image_id = scale_id(i)
    texts = described.texts[j] if described else []
    minor = bool(minor or (described is not None and described.minor[j]))
    return ImageRecord(image_id, vector, {
        "uri": f"scale/{i}.jpg", "minor": minor,
        "flag_reasons": ["caption:child"] if minor else [], "descriptions": texts,
        "content_hash": image_id,
    }, descriptions=described.vectors[j] if described else None,
        keywords=described.keywords[j] if described else None)


def fill(store, vectors: np.ndarray, minor: np.ndarray, *, descriptions: int = 0,
         progress: bool = True) -> None:
    """Upserts the generated photos into `store` (any VectorStore) in batches, each with
    `descriptions` descriptions (scale_descriptions.py; 0: none)."""
    describer = None
    if descriptions:
        real = cached_real_vectors(DATA, CACHE, SCRATCH / "real.npz")
        describer = Describer(real, caption_texts(DATA), descriptions)
    with tqdm(total=len(vectors), desc="upsert", unit="photo", disable=not progress) as bar:
        for start in range(0, len(vectors), UPSERT_BATCH):
            chunk = np.asarray(vectors[start:start + UPSERT_BATCH])
            described = describer.describe(chunk, start) if describer else None
            store.upsert([scale_record(start + j, v, minor[start + j], described, j)
                          for j, v in enumerate(chunk)])
            bar.update(len(chunk))


def build(build: Build, n: int, folder: Path) -> dict:
    """Builds the store in `folder` (once; a finished build leaves build.json)."""
    done = folder / "build.json"
    if done.exists():
        return json.loads(done.read_text())
    shutil.rmtree(folder, ignore_errors=True)
    vectors, minor = load_set(n)
    started = time.perf_counter()
    with EdgeStore(folder / "store", 384, settings=build.settings) as store:
        fill(store, vectors, minor, descriptions=build.descriptions)
        upserted = time.perf_counter()
        store.optimize()
        info = {"build": build.name, "n": n, "upsert_s": upserted - started,
                "optimize_s": time.perf_counter() - upserted,
                "indexed": store.indexed_vectors_count(), "count": store.count()}
    done.write_text(json.dumps(info))
    return info


def load_set(n: int) -> tuple[np.ndarray, np.ndarray]:
    real = cached_real_vectors(DATA, CACHE, SCRATCH / "real.npz")
    return generated_set(real, n, SCRATCH / "vectors.npy")


def queries(count: int) -> np.ndarray:
    real = cached_real_vectors(DATA, CACHE, SCRATCH / "real.npz")
    pick = np.random.default_rng(1).choice(len(real.captions), count, replace=False)
    return real.captions[pick]


def ground_truth(n: int, count: int, exclude_minor: bool) -> tuple[np.ndarray, float]:
    """Exact top-K indices [count, K] by numpy (cached), and its ms per query."""
    path = SCRATCH / f"truth-{n}-{count}-{int(exclude_minor)}.npz"
    if path.exists():
        with np.load(path) as f:
            return f["top"], float(f["ms"])
    vectors, minor = load_set(n)
    q = queries(count)
    best = np.full((count, K), -np.inf, np.float32)
    top = np.zeros((count, K), np.int64)
    started = time.perf_counter()
    for start in range(0, n, 65536):  # a running top-K over blocks of the memory-mapped set
        block = np.asarray(vectors[start:start + 65536])
        sims = q @ block.T
        if exclude_minor:
            sims[:, minor[start:start + 65536]] = -np.inf
        ids = np.broadcast_to(np.arange(start, start + len(block)), sims.shape)
        sims, ids = np.concatenate([best, sims], axis=1), np.concatenate([top, ids], axis=1)
        keep = np.argsort(-sims, axis=1)[:, :K]
        best, top = np.take_along_axis(sims, keep, 1), np.take_along_axis(ids, keep, 1)
    ms = 1000 * (time.perf_counter() - started) / count
    np.savez(path, top=top, ms=ms)
    return top, ms


def rss() -> dict[str, float]:
    """This process's resident memory in MB (anonymous, file-backed, peak)."""
    return process_memory()


def measure(build: Build, n: int, folder: Path, efs: list[int], oversamplings: list[float],
            count: int) -> dict:
    """In this (fresh) process: open the store, serve queries, report (see the docstring)."""
    before = rss()
    started = time.perf_counter()
    store = EdgeStore(folder / "store", 384, settings=build.settings)
    open_s = time.perf_counter() - started
    q = queries(count)
    truth = {flag: ground_truth(n, count, flag) for flag in (False, True)}
    rows = []

    def run(label: str, exclude_minor: bool, **attrs) -> None:
        for key, value in attrs.items():
            setattr(store, key, value)
        store.search(q[0], K, exclude_minor=exclude_minor)  # warm
        lat, hits = [], []
        for vector in q:
            t0 = time.perf_counter()
            found = store.search(vector, K, exclude_minor=exclude_minor, with_vectors=False)
            lat.append(time.perf_counter() - t0)
            hits.append([h.image_id for h in found])
        top = truth[exclude_minor][0]
        recall = np.mean([len({scale_id(int(i)) for i in top[j]} & set(hits[j])) / K
                          for j in range(len(q))])
        p50, p99 = percentiles_ms(lat, [50, 99])
        rows.append({"mode": label, "filter": exclude_minor, "recall": float(recall),
                     "p50_ms": p50, "p99_ms": p99, **attrs})

    for ef in efs:
        for oversampling in oversamplings if store.quantized else [1.0]:
            run(f"HNSW ef={ef}" + (f", int8 x{oversampling:g} rescored" if store.quantized else ""),
                False, exact_up_to=0, hnsw_ef=ef, oversampling=oversampling, rescore=True)
    served = rss()
    best = rows[-1]
    # The minor filter (a restricted region) at the last (largest) setting, and its baseline.
    run(best["mode"], True, exact_up_to=0, hnsw_ef=best["hnsw_ef"],
        oversampling=best["oversampling"], rescore=True)
    exact_queries = min(count, 30 if n > 200_000 else 100)
    q_all = q
    q = q_all[:exact_queries]
    truth = {flag: (t[0][:exact_queries], t[1]) for flag, t in truth.items()}
    run("store exact (baseline)", False, exact_up_to=10**12)
    store.close()
    disk = sum(f.stat().st_size for f in (folder / "store").rglob("*") if f.is_file())
    return {"build": build.name, "n": n, "open_s": open_s, "rows": rows,
            "numpy_exact_ms": truth[False][1], "rss_before_mb": before, "rss_served_mb": served,
            "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "disk_mb": disk / 2**20, "queries": count, "exact_queries": exact_queries,
            "load": load_note()}


def report(built: dict, measured: dict) -> str:
    n = measured["n"]
    served = measured["rss_served_mb"]
    base = measured["rss_before_mb"]
    head = (f"### {measured['build']}, {n:,} photos ({measured['load']})\n\n"
            f"build: upsert {built['upsert_s']:.0f} s, optimize (HNSW) {built['optimize_s']:.0f} s, "
            f"{built['indexed']:,} vectors indexed; open {measured['open_s']:.1f} s; disk "
            f"{measured['disk_mb']:.0f} MB; RSS serving {served['VmRSS']:.0f} MB (anon "
            f"{served['RssAnon']:.0f}, file {served['RssFile']:.0f}; the process before opening: "
            f"{base['VmRSS']:.0f}), i.e. {(served['VmRSS'] - base['VmRSS']) * 2**20 / n:.0f} bytes "
            f"per photo; numpy brute force {measured['numpy_exact_ms']:.1f} ms per query.\n\n")
    rows = [[r["mode"], "exclude minor" if r["filter"] else "none", f"{r['recall']:.3f}",
             f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}"] for r in measured["rows"]]
    return head + markdown_table(["search", "filter", f"recall@{K}", "p50 ms", "p99 ms"], rows)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--builds", default="m16-efc128-int8-disk")
    ap.add_argument("--efs", default="64,128,256")
    ap.add_argument("--oversamplings", default="1,2")
    ap.add_argument("--queries", type=int, default=300)
    ap.add_argument("--root", type=Path, default=SCRATCH)
    ap.add_argument("--build-only", action="store_true")
    ap.add_argument("--measure-one", help=argparse.SUPPRESS)  # the fresh measuring process
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    efs = [int(e) for e in args.efs.split(",")]
    oversamplings = [float(o) for o in args.oversamplings.split(",")]
    if args.measure_one:
        b = Build(args.measure_one)
        out = measure(b, args.n, args.root / f"store-{args.n}-{b.name}", efs, oversamplings, args.queries)
        print(json.dumps(out))
        return
    results = []
    for name in args.builds.split(","):
        b = Build(name)
        folder = args.root / f"store-{args.n}-{b.name}"
        built = build(b, args.n, folder)
        if args.build_only:
            print(json.dumps(built))
            continue
        ground_truth(args.n, args.queries, False)
        ground_truth(args.n, args.queries, True)
        proc = subprocess.run([sys.executable, __file__, "--measure-one", name, "--n", str(args.n),
                               "--efs", args.efs, "--oversamplings", args.oversamplings,
                               "--queries", str(args.queries), "--root", str(args.root)],
                              capture_output=True, text=True, check=False)
        if proc.returncode:
            raise SystemExit(f"measuring {name} failed:\n{proc.stderr[-3000:]}")
        measured = json.loads(proc.stdout.strip().splitlines()[-1])
        results.append({"built": built, "measured": measured})
        if not args.json:
            print(report(built, measured) + "\n", flush=True)
    if args.json:
        print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
