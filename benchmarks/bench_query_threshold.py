"""The semantic child-query check, old against new, on artifacts trained on held-out folds.

Issue 14's "with descriptions, nothing regresses" asks for every child query blocked and at most
2% of innocent queries blocked in a restricted region. The query policy is the lexicon, then the
semantic check (``withsense.compliance.semantic``). It used to compare the query's joint-space
vector, which moves when the text head is retrained: the threshold the trainer chose moved too
(0.40-0.44 on 800-photo folds, 0.37 on all photos), and so did the share of innocent queries it
blocked. The new check compares the text tower's own vector (MiniLM before the head), which
training does not move, with a threshold the trainer chooses there.

For each chosen fold of the K-fold split by photo that ``bench_compliance_e2e.py`` uses (seeded,
stratified): a real artifact trained by ``withsense train`` on the other folds' photos (kept in
``--work`` and reused when its training photos are the same and its config records a
text-tower threshold), loaded in a ``ModelRuntime`` as the worker loads it (ONNX text path);
then every query of that benchmark (the held-out photos' captions and the labelled queries of
tests/compliance/data, English and Russian) goes through the gateway's decision: the lexicon,
then the semantic check of the query's path on ``semantic_text(query)``:

- old: English queries in the joint space with the threshold the old rule chooses there (1% of
  the training captions without child terms, in the artifact's trained text space);
- new: English queries in the text tower's space with the threshold the artifact records
  (the same rule, in that space).

Russian queries take the multilingual path in both (its joint space), with the rule's threshold
at 1% of the captions (old) and at the trainer's MULTILINGUAL_MAX_FALSE_BLOCK_RATE (new). That
rate is chosen here on data: rows for each of MULTILINGUAL_RATES, the choice made on a fixed half
of the labelled Russian queries and reported on the other half. Otherwise no threshold sees a
labelled query or a held-out caption, so every row is measured on held-out data. The shipped
artifact (trained on all photos) is measured on the labelled queries and the child paraphrases
only (its captions are not held out).
Also: the child paraphrases of ``withsense_train/testsets`` (no lexicon term: what the semantic
check is for), and the extra cost per query of returning the tower vector (ms and CPU ms,
interleaved, medians).

    PYTHONPATH=services:trainer .venv/bin/python benchmarks/bench_query_threshold.py \\
        --data ../shared/data/withsense --cache /work/cache --fold 0,1,2 --work DIR \\
        [--servers 0] [--json]

``--servers FOLD`` also searches that fold's queries in RU through a real worker and gateway
(bench_compliance_e2e's servers, an empty store: only the query policy decides) and prints their
counts beside the in-process ones.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_compliance_e2e import (  # noqa: E402
    REPO,
    Query,
    build_queries,
    photos_of,
    split,
    train_artifact,
    write_training_folder,
)
from bench_utils import markdown_table  # noqa: E402
from withsense_train.semantic import (  # noqa: E402
    DEFAULT_MAX_FALSE_BLOCK_RATE,
    MULTILINGUAL_MAX_FALSE_BLOCK_RATE,
)

SHIPPED = REPO / "services" / "withsense" / "model" / "artifacts" / "default"
# The multilingual path's rate (share of the training captions without child terms that its
# semantic step may block) is chosen here, on data: the largest of MULTILINGUAL_RATES whose
# false-block rate on the selection half of the labelled Russian innocent queries, summed over
# the fold artifacts, is within TARGET; the report half measures it (HALF_OF splits the list).
MULTILINGUAL_RATES = (0.01, 0.005, 0.0025)
TARGET = 0.02


def design_of(rate: float) -> str:
    if rate == MULTILINGUAL_MAX_FALSE_BLOCK_RATE:
        return "new"
    return f"new, multilingual path at {rate:.2%}"


def half_of(text: str) -> str:
    """"selection" or "report": a fixed split of the labelled Russian queries by their text."""
    import hashlib

    return ("selection", "report")[int(hashlib.sha256(text.encode("utf-8")).hexdigest()[:8], 16) % 2]


@dataclass(frozen=True)
class Judged:
    """One query as the gateway judges it: lexicon verdict, path, joint and check vectors."""

    query: Query
    group: str
    lexicon: bool
    path: str
    joint: np.ndarray
    check: np.ndarray


def fold_artifact(dataset: Any, keep: list[str], work: Path, cache: Path | None) -> Path:
    """The fold's artifact: reused from ``work`` when trained on exactly ``keep`` and recording
    a text-tower threshold, else trained now (``withsense train``, niced)."""
    import shutil

    from withsense.compliance import tower_threshold

    marker, artifact = work / "trained-on.json", work / "artifact"
    if marker.is_file() and json.loads(marker.read_text()).get("photos") == sorted(keep) and \
            (artifact / "config.json").is_file() and \
            tower_threshold(json.loads((artifact / "config.json").read_text())) is not None:
        return artifact
    for old in (work / "train-data", artifact):
        shutil.rmtree(old, ignore_errors=True)
    work.mkdir(parents=True, exist_ok=True)
    train_artifact(write_training_folder(dataset, set(keep), work / "train-data"), artifact,
                   cache, work / "train.log")
    marker.write_text(json.dumps({"photos": sorted(keep)}))
    return artifact


def paraphrase_queries() -> list[tuple[Query, str]]:
    from withsense_train.multilingual import load_paraphrases

    pairs = load_paraphrases()
    return ([(Query(en, True, "paraphrase"), "paraphrases en") for en, _ in pairs]
            + [(Query(ru, True, "paraphrase"), "paraphrases ru") for _, ru in pairs])


def group_of(query: Query) -> str:
    from withsense.model.language import ENGLISH, text_path

    if query.source == "caption":
        return "held-out captions"
    return "labelled en" if text_path(query.text) == ENGLISH else "labelled ru"


def judge(runtime: Any, queries: list[tuple[Query, str]]) -> list[Judged]:
    """Embeds ``semantic_text`` of every query once (joint and check vectors, one pass)."""
    from withsense.compliance import QueryPolicy, semantic_text

    lexicon = QueryPolicy()
    judged_texts = [semantic_text(q.text) for q, _ in queries]
    joint, check, paths = runtime.embed_texts_checked(judged_texts)
    return [Judged(q, group, lexicon.check(q.text).blocked, path, joint[i], check[i])
            for i, ((q, group), path) in enumerate(zip(queries, paths, strict=True))]


def old_threshold(runtime: Any, captions: list[str]) -> float:
    """The old rule: 1% of the training captions without child terms, in the joint space of
    the English path (the prototypes too: the gateway embedded them on that path)."""
    from withsense_train.semantic import choose_semantic_threshold

    def joint(texts: list[str]) -> np.ndarray:
        return runtime.embed_texts_routed(texts, "english")[0]
    return choose_semantic_threshold(joint, captions)["threshold"]


def prototype_checks(runtime: Any, thresholds: dict[str, tuple[float, float | None]]
                     ) -> dict[str, dict[str, Any]]:
    """design -> path -> SemanticChildCheck, embedded as the gateway embeds the prototypes;
    ``thresholds``: design -> (English path, multilingual path)."""
    from withsense.compliance import CHILD_PROTOTYPE_TEXTS, SemanticChildCheck
    from withsense.model.language import ENGLISH, MULTILINGUAL

    texts = list(CHILD_PROTOTYPE_TEXTS)
    joint, check, _ = runtime.embed_texts_checked(texts, ENGLISH)
    mapped = runtime.embed_texts_checked(texts, MULTILINGUAL)[0] if runtime.multilingual else None
    checks: dict[str, dict[str, Any]] = {}
    for design, (english, multilingual) in thresholds.items():
        space = joint if design == "old" else np.stack(check)
        checks[design] = {ENGLISH: SemanticChildCheck(space, english, texts)}
        if mapped is not None and multilingual is not None:
            checks[design][MULTILINGUAL] = SemanticChildCheck(mapped, multilingual, texts)
    return checks


def blocked(item: Judged, design: str, checks: dict[str, dict[str, Any]]) -> bool:
    from withsense.model.language import ENGLISH

    if item.lexicon:
        return True
    check = checks[design].get(item.path)
    if check is None:
        return True  # fail closed, as the gateway does
    vector = item.check if design != "old" and item.path == ENGLISH else item.joint
    return bool(check.is_child(vector))


def tally(items: list[Judged], checks: dict[str, dict[str, Any]]) -> dict[str, dict[str, list[int]]]:
    """design -> group or "all innocent"/"all child" -> [blocked, total] per label."""
    out: dict[str, dict[str, list[int]]] = {}
    for design in checks:
        counts: dict[str, list[int]] = {}
        for item in items:
            label = "child" if item.query.child else "innocent"
            keys = [f"{item.group}|{label}"]
            if item.group == "labelled ru":
                keys.append(f"labelled ru {half_of(item.query.text)}|{label}")
            if not item.group.startswith("paraphrases"):
                keys.append(f"all|{label}")  # the e2e benchmark's queries
            for key in keys:
                cell = counts.setdefault(key, [0, 0])
                cell[0] += blocked(item, design, checks)
                cell[1] += 1
        out[design] = counts
    return out


def measure_artifact(artifact: Path, captions: list[str], queries: list[tuple[Query, str]],
                     cache: Path | None) -> dict[str, Any]:
    """Thresholds and block counts of both designs for one artifact trained on ``captions``
    (the old threshold is chosen here by the old rule; the new one is the artifact's, checked
    against the new rule recomputed here)."""
    from withsense.compliance import tower_threshold
    from withsense.model.runtime import ModelRuntime
    from withsense_train.semantic import choose_semantic_threshold

    runtime = ModelRuntime(artifact, text_backend="onnx")
    config = runtime.artifact.config
    new = tower_threshold(config)
    if new is None:
        raise SystemExit(f"{artifact}: config.json has no text-tower threshold; rerun "
                         "python -m withsense_train.semantic --artifact DIR --captions FILE")
    old = old_threshold(runtime, captions)

    def tower(texts: list[str]) -> np.ndarray:
        return np.stack(runtime.embed_texts_checked(texts, "english")[1])
    recomputed_new = choose_semantic_threshold(tower, captions)["threshold"]
    before = multilingual_threshold(runtime, captions, cache, DEFAULT_MAX_FALSE_BLOCK_RATE)
    in_force = multilingual_threshold(runtime, captions, cache, MULTILINGUAL_MAX_FALSE_BLOCK_RATE)
    thresholds: dict[str, tuple[float, float | None]] = {"old": (old, before), "new": (new, in_force)}
    for rate in MULTILINGUAL_RATES:
        if design_of(rate) not in thresholds:
            thresholds[design_of(rate)] = (new, multilingual_threshold(runtime, captions, cache, rate))
    checks = prototype_checks(runtime, thresholds)
    return {"artifact": str(artifact), "thresholds": thresholds,
            "threshold_new_recomputed": recomputed_new,
            "counts": tally(judge(runtime, queries), checks), "runtime": runtime}


def multilingual_threshold(runtime: Any, captions: list[str], cache: Path | None,
                           rate: float) -> float | None:
    """The multilingual path's threshold by the trainer's rule at ``rate``, in the artifact's
    mapped space (e5 vectors from the trainer's cache)."""
    from withsense_train.features import default_cache_dir
    from withsense_train.multilingual import E5Features
    from withsense_train.semantic import choose_semantic_threshold

    if runtime.text_map is None:
        return None
    e5 = E5Features(cache or default_cache_dir(), progress=False)

    def mapped(texts: list[str]) -> np.ndarray:
        return runtime.text_map(e5(texts))
    return choose_semantic_threshold(mapped, captions, rate)["threshold"]


# --- the same decisions on real servers ---------------------------------------------------------

def server_check(artifact: Path, thresholds: tuple[float, float | None], queries: list[Query],
                 work: Path) -> dict[str, list[int]]:
    """Every query searched in a restricted region (RU) through a real ``withsense serve
    worker`` and ``gateway`` (bench_compliance_e2e's ``stack``) with a copy of ``artifact`` whose
    config holds the new design's thresholds (what the current trainer records); returns
    label -> [blocked, total], to compare with the in-process count."""
    import shutil

    from bench_compliance_e2e import stack
    from withsense.client import SearchClient

    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(artifact, work / "artifact")
    config_file = work / "artifact" / "config.json"
    config = json.loads(config_file.read_text())
    config["semantic_child_threshold"] = config["semantic_child_check"]["threshold"] = thresholds[0]
    if thresholds[1] is not None:
        config["multilingual"]["semantic_child_threshold"] = thresholds[1]
    config_file.write_text(json.dumps(config, indent=2))
    counts = {"child": [0, 0], "innocent": [0, 0]}
    with stack(work / "artifact", work, ["plain"], "RU") as gateways, \
            SearchClient(gateways["plain"], timeout_s=120) as client:
        for query in queries:
            cell = counts["child" if query.child else "innocent"]
            cell[0] += client.search(query.text, top_k=1, region="RU").blocked
            cell[1] += 1
    return counts


# --- cost -----------------------------------------------------------------------------------

def cost(runtime: Any, texts: list[str], repeats: int) -> dict[str, float]:
    """Per query: the ONNX text graph asked for the joint vector only (before) and for both
    outputs (now), and the semantic check itself; wall and CPU ms, interleaved medians."""
    from withsense.compliance import CHILD_PROTOTYPE_TEXTS, SemanticChildCheck

    session = runtime.text_onnx
    check = SemanticChildCheck(np.stack(runtime.embed_texts_checked(list(CHILD_PROTOTYPE_TEXTS),
                                                                    "english")[1]), 0.5)
    vector = session.with_tower([texts[0]])[1][0]
    fns = {"joint only (before)": lambda t: session.run([t], ["vectors"]),
           "joint + tower (now)": lambda t: session.run([t], ["vectors", "tower"]),
           "check: 25 dot products": lambda t: check.nearest(vector)}
    wall: dict[str, list[float]] = {k: [] for k in fns}
    cpu: dict[str, list[float]] = {k: [] for k in fns}
    for fn in fns.values():
        fn(texts[0])
    for _ in range(repeats):
        for text in texts:
            for name, fn in fns.items():
                w, c = time.perf_counter(), time.process_time()
                fn(text)
                cpu[name].append(time.process_time() - c)
                wall[name].append(time.perf_counter() - w)
    return {**{f"{k} wall ms": 1e3 * float(np.median(v)) for k, v in wall.items()},
            **{f"{k} cpu ms": 1e3 * float(np.mean(v)) for k, v in cpu.items()}}


# --- tables ---------------------------------------------------------------------------------

def _share(cell: list[int] | None) -> str:
    if not cell or not cell[1]:
        return "-"
    return f"{cell[0] / cell[1]:.1%} ({cell[0]}/{cell[1]})"


DESIGN_NAMES = {"old": "old (joint space; multilingual at 1%)",
                "new": "new (tower space; multilingual at the trainer's rate)"}


def _thresholds(pair: tuple[float, float | None] | None) -> str:
    if pair is None:
        return "-"
    english, multilingual = pair
    return f"{english:.3f} / {multilingual:.3f}" if multilingual is not None else f"{english:.3f} / -"


def rows_of(name: str, result: dict[str, Any], extra: tuple[str, ...] = ()) -> list[list[str]]:
    rows = []
    for design, label in [*DESIGN_NAMES.items(), *((d, d) for d in extra if d in result["counts"])]:
        counts = result["counts"][design]
        rows.append([f"{name}, {label}", _thresholds(result.get("thresholds", {}).get(design)),
                     _share(counts.get("all|child")),
                     _share(counts.get("held-out captions|innocent")),
                     _share(counts.get("labelled en|innocent")), _share(counts.get("labelled ru|innocent")),
                     _share(counts.get("all|innocent")), _share(counts.get("paraphrases en|child")),
                     _share(counts.get("paraphrases ru|child"))])
    return rows


HEADERS = ["artifact, check", "threshold en / ru", "child queries blocked", "innocent: held-out captions",
           "innocent: labelled en", "innocent: labelled ru", "innocent: all", "paraphrases en",
           "paraphrases ru"]


def choose_multilingual_rate(folds: list[dict[str, Any]]) -> tuple[float, list[list[str]]]:
    """The largest of MULTILINGUAL_RATES whose false-block rate on the selection half of the
    labelled Russian innocent queries (fold artifacts summed) is within TARGET, else the largest
    with the lowest rate there (a stricter rate that blocks no fewer innocent queries only loses
    paraphrases); and a table row per rate with both halves."""
    summed = add_counts(folds)
    rows, shares = [], {}
    for rate in MULTILINGUAL_RATES:
        counts = summed.get(design_of(rate), {})
        picked = counts.get("labelled ru selection|innocent", [0, 0])
        shares[rate] = picked[0] / picked[1] if picked[1] else 1.0
        thresholds = ", ".join(f"{f['thresholds'][design_of(rate)][1]:.3f}" for f in folds)
        rows.append([f"{rate:.2%}", thresholds, _share(picked),
                     _share(counts.get("labelled ru report|innocent")),
                     _share(counts.get("labelled ru report|child")),
                     _share(counts.get("paraphrases ru|child")), _share(counts.get("all|innocent"))])
    within = [rate for rate in MULTILINGUAL_RATES if shares[rate] <= TARGET]
    lowest = min(shares.values())
    chosen = max(within) if within else max(r for r in MULTILINGUAL_RATES if shares[r] == lowest)
    return chosen, rows


def add_counts(parts: list[dict[str, Any]]) -> dict[str, Any]:
    total: dict[str, dict[str, list[int]]] = {}
    for part in parts:
        for design, counts in part["counts"].items():
            for key, (b, n) in counts.items():
                cell = total.setdefault(design, {}).setdefault(key, [0, 0])
                cell[0] += b
                cell[1] += n
    return total


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the customer's data set folder")
    parser.add_argument("--cache", type=Path, help="shared tower-feature cache")
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--fold", default="0,1,2", help="held-out folds, comma-separated")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", type=Path, required=True,
                        help="fold artifacts are trained into (and reused from) WORK/foldN")
    parser.add_argument("--cost-repeats", type=int, default=5)
    parser.add_argument("--servers", type=int, metavar="FOLD",
                        help="also search FOLD's queries through real servers (RU) and compare")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    if args.servers is not None and str(args.servers) not in args.fold.split(","):
        parser.error("--servers FOLD must be one of --fold")
    import torch
    from withsense_train.data import load_dataset

    torch.set_num_threads(1)
    if not (args.data / "train_dataset.csv").is_file():
        print(f"error: no data set at {args.data}", file=sys.stderr)
        return 2
    dataset = load_dataset(args.data)
    paraphrases = paraphrase_queries()
    results: dict[str, dict[str, Any]] = {}
    for fold in (int(f) for f in args.fold.split(",")):
        keep, held = split(dataset, args.folds, fold, args.seed)
        kept = set(keep)
        captions = [c.text for c in dataset.captions.values() if c.query_id.rsplit("#", 1)[0] in kept]
        queries = [(q, group_of(q)) for q in build_queries(photos_of(dataset, held).values())]
        artifact = fold_artifact(dataset, keep, args.work / f"fold{fold}", args.cache)
        results[f"fold {fold}"] = measure_artifact(artifact, captions, queries + paraphrases, args.cache)
        print(f"fold {fold}: thresholds {results[f'fold {fold}']['thresholds']}", file=sys.stderr)
    labelled = [(q, group_of(q)) for q in build_queries([])]
    every_caption = [c.text for c in dataset.captions.values()]
    results["shipped"] = measure_artifact(SHIPPED, every_caption, labelled + paraphrases, args.cache)
    timing = cost(results["shipped"]["runtime"], [q.text for q, _ in labelled[:40]], args.cost_repeats)
    folds = [r for name, r in results.items() if name.startswith("fold")]
    out = {name: {k: v for k, v in r.items() if k != "runtime"} for name, r in results.items()}
    out["folds summed"] = {"counts": add_counts(folds)}
    out["cost"] = timing
    out["load_average"] = round(os.getloadavg()[0], 2)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    if args.servers is not None:
        keep, held = split(dataset, args.folds, args.servers, args.seed)
        fold = results[f"fold {args.servers}"]
        on_servers = server_check(Path(fold["artifact"]), fold["thresholds"]["new"],
                                  build_queries(photos_of(dataset, held).values()),
                                  args.work / "servers")
        in_process = fold["counts"]["new"]
        out["servers"] = {"fold": args.servers, "real servers": on_servers,
                          "in process": {k: in_process[f"all|{k}"] for k in on_servers}}
    chosen, selection_rows = choose_multilingual_rate(folds)
    out["multilingual_rate"] = chosen
    rows = [row for name, r in results.items() for row in rows_of(name, r)]
    if folds:
        rows += rows_of(f"{len(folds)} folds summed", {"counts": add_counts(folds)})
    print(markdown_table(HEADERS, rows))
    print(f"\nThe multilingual path's rate, chosen on the selection half of the labelled Russian "
          f"queries (largest rate within {TARGET:.0%}, else the largest with the fewest blocks; "
          f"fold artifacts summed): {chosen:.2%}; the trainer's: "
          f"{MULTILINGUAL_MAX_FALSE_BLOCK_RATE:.2%}")
    print(markdown_table(["multilingual rate", "thresholds (per fold)", "selection half: innocent ru",
                          "report half: innocent ru", "report half: child ru", "paraphrases ru",
                          "innocent: all"], selection_rows))
    print()
    print("the artifact's tower-space threshold and the same rule recomputed here:")
    for name, r in results.items():
        print(f"  {name}: {r['thresholds']['new'][0]:.4f} / {r['threshold_new_recomputed']:.4f}")
    print()
    print(markdown_table(["per query (shipped artifact, ONNX text path, 1 thread)", "wall ms (median)",
                          "CPU ms (mean)"],
                         [[k, f"{timing[f'{k} wall ms']:.3f}", f"{timing[f'{k} cpu ms']:.3f}"]
                          for k in ("joint only (before)", "joint + tower (now)", "check: 25 dot products")]))
    if "servers" in out:
        check = out["servers"]
        print(f"\nfold {check['fold']}, new design, blocked in RU [blocked, queries]: real servers "
              f"{check['real servers']}, in process {check['in process']}")
    print(f"\nload average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
