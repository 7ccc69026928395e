"""Compliance by sight, end to end on real servers (issue 14's Done-when, measured as the
product behaves, not as the detector's cross-validation predicts).

For each chosen fold of a K-fold split by photo (seeded, stratified by child / no child /
ambiguous like the detector's own CV):

1. a data folder of the *other* folds (symlinks to their photos; the csv/tsv/captions rows that
   name a held-out photo, as judged photo or as the caption's own photo, left out) is written
   under a temporary folder, and ``withsense train`` trains a real artifact on it (``nice``,
   the shared feature cache);
2. a real ``withsense serve worker`` with that artifact and two ``withsense serve gateway``
   processes (embedded Qdrant stores in temporary folders, ephemeral 127.0.0.1 ports) start;
3. the held-out photos are indexed through the client's folder indexing (what ``withsense
   index`` does): into one store **without descriptions**, into the other **with their
   captions as descriptions**;
4. every query is searched in a restricted and in an unrestricted region on both stores:
   innocent queries (held-out captions that name no child, the labelled innocent queries of
   ``tests/compliance/data``) and child queries (held-out captions that name one, the labelled
   child queries).

A withheld hit carries no image id (only the disclaimer leaves the service), so it is matched to
its photo through the same query's unrestricted answer: the photos served there but not in the
restricted answer, in rank order, paired with the withheld hits by rank; their scores must agree
(a mismatch is counted as ``unaligned``, expected 0).

Photo labels come from the 5 captions (``withsense_train.minor``): shows a child (>= 3 name
one), no child (0), ambiguous (1-2). A **leak** is a hit served in the restricted region whose
photo shows a child or, with descriptions, is described with one (any caption names a child).

    PYTHONPATH=services:trainer .venv/bin/python benchmarks/bench_compliance_e2e.py \\
        --data ../shared/data/withsense --cache /work/cache [--folds 5] [--fold 0[,1,...]] \\
        [--seed 0] [--max-captions N] [--json]
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

REPO = Path(__file__).resolve().parents[1]
LABELLED_QUERIES = [REPO / "tests" / "compliance" / "data" / f"queries_{lang}.tsv"
                    for lang in ("en", "ru")]
TARGETS = {"child_withheld": 0.95, "no_child_withheld": 0.20, "innocent_blocked": 0.02}
SCORE_TOLERANCE = 1e-3  # a withheld hit and its unrestricted twin: the same probability
START_TIMEOUT_S = 600.0  # loading the towers in a fresh process on a busy 2-core machine
KINDS = ("child", "no_child", "ambiguous")


class DataMissing(SystemExit):
    pass


# --- labels and queries -------------------------------------------------------------------------

@dataclass(frozen=True)
class Photo:
    name: str
    votes: int  # captions that name a child
    captions: tuple[str, ...]

    @property
    def kind(self) -> str:
        from withsense_train.minor import CHILD_VOTES

        return "child" if self.votes >= CHILD_VOTES else "no_child" if self.votes == 0 else "ambiguous"

    def leaks(self, described: bool) -> bool:
        """Served in a restricted region, this photo breaks the law: it shows a child, or (when
        its captions were indexed as descriptions) one of them names a child."""
        return self.kind == "child" or (described and self.votes > 0)


@dataclass(frozen=True)
class Query:
    text: str
    child: bool  # must be blocked in a restricted region
    source: str  # "caption" (a held-out photo's) or "labelled" (tests/compliance/data)


def photos_of(dataset: Any, names: Iterable[str]) -> dict[str, Photo]:
    """name -> Photo with its captions and child votes (the detector's labels)."""
    from withsense_train.minor import photo_votes

    names = sorted(names)
    votes, _ = photo_votes(dataset, names)
    by_image = dataset.captions_by_image
    return {name: Photo(name, int(v), tuple(c.text for c in by_image.get(name, [])))
            for name, v in zip(names, votes, strict=True)}


def build_queries(photos: Iterable[Photo], *, labelled: list[Path] | None = None,
                  max_captions: int = 0, seed: int = 0) -> list[Query]:
    """Captions of the held-out photos (child: the lexicon names a child in it), at most
    ``max_captions`` of them (seeded sample; 0: all), then the labelled query sets."""
    from withsense.compliance import mentions_child
    from withsense.compliance.query_eval import load_labelled

    texts = sorted({text for photo in photos for text in photo.captions})
    if max_captions and len(texts) > max_captions:
        texts = sorted(random.Random(seed).sample(texts, max_captions))
    queries = [Query(text, mentions_child(text) is not None, "caption") for text in texts]
    for path in labelled if labelled is not None else LABELLED_QUERIES:
        queries += [Query(q.query, q.label == "child", "labelled") for q in load_labelled(path)]
    return queries


# --- the held-out split and the training folder -------------------------------------------------

def split(dataset: Any, folds: int, fold: int, seed: int) -> tuple[list[str], list[str]]:
    """(training photos, held-out photos) of one fold, stratified like the detector's own CV."""
    from withsense_train.minor import fold_ids, label_kinds, photo_votes

    names = sorted(dataset.train_images)
    votes, _ = photo_votes(dataset, names)
    ids = fold_ids(label_kinds(votes), folds, seed)
    return ([n for n, i in zip(names, ids, strict=True) if i != fold],
            [n for n, i in zip(names, ids, strict=True) if i == fold])


def _image_of(query_id: str) -> str:
    return query_id.rsplit("#", 1)[0]


def write_training_folder(dataset: Any, keep: set[str], out: Path) -> Path:
    """The data set without the held-out photos, in the customer's format: symlinks to the
    kept photos, and only the rows whose photo and whose caption's photo are kept."""
    from withsense_train.data import CAPTIONS_TXT, CROWD_TSV, EXPERT_TSV, TRAIN_CSV, TRAIN_IMAGES

    root = Path(dataset.root)
    (out / TRAIN_IMAGES).mkdir(parents=True)
    for name in sorted(keep):
        (out / TRAIN_IMAGES / name).symlink_to(dataset.train_images[name].resolve())
    with open(root / TRAIN_CSV, newline="", encoding="utf-8-sig") as src, \
            open(out / TRAIN_CSV, "w", newline="", encoding="utf-8") as dst:
        reader, writer = csv.DictReader(src), None
        writer = csv.DictWriter(dst, fieldnames=reader.fieldnames or [])
        writer.writeheader()
        writer.writerows(row for row in reader
                         if row["image"].strip() in keep and _image_of(row["query_id"].strip()) in keep)
    for name in (EXPERT_TSV, CROWD_TSV):
        lines = (root / name).read_text(encoding="utf-8-sig").splitlines()
        kept = [line for line in lines if line.strip() and line.split("\t")[0].strip() in keep
                and _image_of(line.split("\t")[1].strip()) in keep]
        (out / name).write_text("\n".join(kept) + "\n", encoding="utf-8")
    if (root / CAPTIONS_TXT).is_file():
        (out / CAPTIONS_TXT).parent.mkdir(parents=True, exist_ok=True)
        lines = (root / CAPTIONS_TXT).read_text(encoding="utf-8-sig").splitlines()
        kept = [line for line in lines if line.strip() and _image_of(line.split("\t")[0].strip()) in keep]
        (out / CAPTIONS_TXT).write_text("\n".join(kept) + "\n", encoding="utf-8")
    return out


def train_artifact(data: Path, out: Path, cache: Path | None, log: Path) -> dict[str, Any]:
    """``withsense train`` (niced, no K-fold report: only the artifact is needed); returns the
    artifact's minor_detector section."""
    command = ["nice", "-n", "15", sys.executable, "-m", "withsense.cli.main", "train",
               "--data", str(data), "--out", str(out), "--folds", "0", "--quiet"]
    if cache is not None:
        command += ["--cache", str(cache)]
    with log.open("w") as handle:
        done = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, env=_child_env())
    if done.returncode != 0:
        raise RuntimeError(f"withsense train failed ({done.returncode}):\n{_tail(log)}")
    config = json.loads((out / "config.json").read_text())
    return config.get("minor_detector", {})


def offline_flags(artifact: Path, cache: Path | None, dataset: Any, names: list[str]) -> dict[str, float]:
    """photo -> p(child) of the artifact's detector computed here, from the trainer's feature
    cache (the detector's CV view of these photos), to compare with what the stack withheld."""
    from withsense.model.catalog import model_config
    from withsense.model.minor import load_minor_detector
    from withsense_train.features import FeatureCache

    config = json.loads((artifact / "config.json").read_text())
    card = json.loads((artifact / "model_card.json").read_text())
    detector = load_minor_detector(artifact, config)
    if detector is None:
        raise RuntimeError(f"{artifact} has no minor detector")
    features = FeatureCache(model_config(card["training"]["config"]["model"]), cache, progress=False)
    pooled, logits = features.image([dataset.train_images[n] for n in names], detector.tta)
    return dict(zip(names, (float(p) for p in detector.probability(pooled, logits)), strict=True))


def disagreements(tally: RegionTally, photos: dict[str, Photo], p_child: dict[str, float],
                  threshold: float) -> list[str]:
    """Surfaced photos whose fate in a restricted region is not what their flags predict
    (p(child) >= threshold, or a description naming a child when described)."""
    expected = {n: p_child[n] >= threshold or (tally.described and photos[n].votes > 0) for n in photos}
    return sorted(n for n in photos if (n in tally.served or n in tally.withheld)
                  and (n in tally.withheld and n not in tally.served) != expected[n])


# --- real servers -------------------------------------------------------------------------------

def _child_env(**extra: str) -> dict[str, str]:
    paths = [str(REPO / "services"), str(REPO / "trainer"), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), **extra}


def _tail(path: Path, chars: int = 3000) -> str:
    return path.read_text(errors="replace")[-chars:] if path.exists() else ""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _serving(port: int) -> bool:
    import grpc
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    try:
        with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
            reply = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=2)
        return reply.status == health_pb2.HealthCheckResponse.SERVING
    except grpc.RpcError:
        return False


@contextmanager
def service(role: str, args: list[str], log: Path, env: dict[str, str]) -> Iterator[str]:
    """A ``withsense serve ROLE`` process (niced) on an ephemeral port until SERVING; yields its
    address and stops it (SIGTERM to its own process group, then SIGKILL) afterwards."""
    port = free_port()
    command = ["nice", "-n", "15", sys.executable, "-m", "withsense.cli.main", "serve", role,
               "--host", "127.0.0.1", "--port", str(port), *args]
    with log.open("a") as handle:
        process = subprocess.Popen(command, stdout=handle, stderr=subprocess.STDOUT,
                                   env=_child_env(**env), start_new_session=True)
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _serving(port):
            if process.poll() is not None:
                raise RuntimeError(f"withsense serve {role} exited with {process.returncode}:\n{_tail(log)}")
            if time.monotonic() > deadline:
                raise RuntimeError(f"withsense serve {role} not SERVING in "
                                   f"{START_TIMEOUT_S:.0f} s:\n{_tail(log)}")
            time.sleep(0.5)
        yield f"127.0.0.1:{port}"
    finally:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait(10)


@contextmanager
def stack(artifact: Path, work: Path, stores: list[str], restricted: str) -> Iterator[dict[str, str]]:
    """One worker with ``artifact`` and one gateway per store name (its own embedded store);
    yields store name -> gateway address."""
    env = {"WITHSENSE_RESTRICTED_REGIONS": restricted, "WITHSENSE_DATA_DIR": str(work / "worker-data"),
           "WITHSENSE_MODEL_DIR": str(artifact)}
    with ExitStack() as started:
        worker = started.enter_context(service("worker", ["--model-dir", str(artifact)],
                                               work / "worker.log", env))
        gateways = {}
        for name in stores:
            gateways[name] = started.enter_context(service(
                "gateway", ["--http-port", "-1", "--data-dir", str(work / f"store-{name}"),
                            "--worker-address", worker], work / f"gateway-{name}.log", env))
        yield gateways


# --- indexing and measuring ---------------------------------------------------------------------

def index_photos(client: Any, folder: Path, photos: dict[str, Photo], *, described: bool,
                 progress: Callable[[int], None] | None = None) -> tuple[dict[str, str], dict[str, Any]]:
    """Indexes ``folder`` (its photos named as in ``photos``) through the client's folder
    indexing, with each photo's captions as descriptions or none; returns (image id -> photo
    name, the index report)."""
    from withsense.client.folder import find_photos

    paths = find_photos(folder)
    descriptions = {name: list(p.captions) for name, p in photos.items()} if described else {}
    report = client.index_folder(folder, descriptions, photos=paths, progress=progress)
    if report.failures:
        raise RuntimeError(f"indexing {folder} failed for {report.failures[:5]}")
    names = [path.relative_to(folder).as_posix() for path in paths]
    ids = dict(zip(report.image_ids, names, strict=True))
    return ids, report.to_dict()


@dataclass
class RegionTally:
    """What one region saw of one store."""

    restricted: bool
    described: bool
    queries: dict[str, list[int]] = field(default_factory=lambda: {"child": [0, 0], "innocent": [0, 0]})
    served: dict[str, int] = field(default_factory=dict)  # photo -> times served
    withheld: dict[str, int] = field(default_factory=dict)  # photo -> times shown withheld
    hits_served: int = 0
    hits_withheld: int = 0
    child_hits: int = 0  # served hits whose photo shows a child
    page_served: int = 0
    page_child_hits: int = 0
    leak_hits: int = 0
    unaligned: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)  # queries decided wrongly

    def add_query(self, query: Query, answer: Any) -> None:
        counts = self.queries["child" if query.child else "innocent"]
        counts[0] += 1
        counts[1] += answer.blocked
        if self.restricted and answer.blocked != query.child:
            self.errors.append({"query": query.text, "source": query.source,
                                "label": "child" if query.child else "innocent",
                                "reason": answer.reason})


def _aligned_withheld(restricted_hits: list[Any], open_hits: list[Any], ids: dict[str, str],
                      ) -> tuple[list[str], int]:
    """The photos behind the withheld hits of a restricted answer: the unrestricted answer's
    photos not served in the restricted one, in rank order, paired by rank; returns (photo
    names, hits whose score disagrees or that have no twin)."""
    served = {h.image_id for h in restricted_hits if not h.withheld}
    twins = [h for h in open_hits if h.image_id not in served]
    withheld = [h for h in restricted_hits if h.withheld]
    names, unaligned = [], 0
    for i, hit in enumerate(withheld):
        if i >= len(twins) or abs(twins[i].score - hit.score) > SCORE_TOLERANCE:
            unaligned += 1
            continue
        names.append(ids.get(twins[i].image_id, "?"))
    return names, unaligned


def measure(client: Any, ids: dict[str, str], photos: dict[str, Photo], queries: list[Query], *,
            described: bool, restricted: str, unrestricted: str, top_k: int = 100, page: int = 10,
            progress: Callable[[int], None] | None = None) -> dict[str, RegionTally]:
    """Searches every query in both regions of one store and tallies what each region served,
    withheld and blocked (the core measurement; ``ids``: image id -> photo name)."""
    tallies = {"restricted": RegionTally(True, described), "unrestricted": RegionTally(False, described)}
    for query in queries:
        answers = {"unrestricted": client.search(query.text, top_k=top_k, region=unrestricted),
                   "restricted": client.search(query.text, top_k=top_k, region=restricted)}
        for region, answer in answers.items():
            tally = tallies[region]
            tally.add_query(query, answer)
            if answer.blocked:
                continue
            for rank, hit in enumerate(answer.hits):
                if hit.withheld:
                    continue
                photo = photos[ids[hit.image_id]]
                tally.served[photo.name] = tally.served.get(photo.name, 0) + 1
                tally.hits_served += 1
                tally.child_hits += photo.kind == "child"
                tally.page_served += rank < page
                tally.page_child_hits += rank < page and photo.kind == "child"
                tally.leak_hits += tally.restricted and photo.leaks(described)
            names, unaligned = _aligned_withheld(answer.hits, answers["unrestricted"].hits, ids)
            tally.unaligned += unaligned
            tally.hits_withheld += len(names) + unaligned
            for name in names:
                tally.withheld[name] = tally.withheld.get(name, 0) + 1
        if progress:
            progress(1)
    return tallies


def summarise(tally: RegionTally, photos: dict[str, Photo]) -> dict[str, Any]:
    """Counts and shares of one region of one store (counts add up over folds)."""
    out: dict[str, Any] = {"restricted": tally.restricted, "described": tally.described}
    for kind in KINDS:
        names = [n for n, p in photos.items() if p.kind == kind]
        surfaced = [n for n in names if n in tally.served or n in tally.withheld]
        out[kind] = {"photos": len(names), "surfaced": len(surfaced),
                     "withheld": sum(n in tally.withheld and n not in tally.served for n in surfaced),
                     "both": sum(n in tally.withheld and n in tally.served for n in surfaced)}
    for label, (n, blocked) in tally.queries.items():
        out[f"{label}_queries"] = {"queries": n, "blocked": blocked}
    leak_photos = sorted(n for n in tally.served if tally.restricted and photos[n].leaks(tally.described))
    out.update(hits_served=tally.hits_served, hits_withheld=tally.hits_withheld,
               child_hits=tally.child_hits, page_served=tally.page_served,
               page_child_hits=tally.page_child_hits, leak_hits=tally.leak_hits,
               leak_photos=leak_photos, unaligned=tally.unaligned, query_errors=tally.errors)
    return out


def add_up(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """Sums the counts of several folds' summaries of the same column."""
    total: dict[str, Any] = {}
    for part in parts:
        for key, value in part.items():
            if isinstance(value, bool):
                total[key] = value
            elif isinstance(value, dict):
                inner = total.setdefault(key, {})
                for k, v in value.items():
                    inner[k] = inner.get(k, 0) + v
            elif isinstance(value, list):
                total[key] = total.get(key, []) + value
            else:
                total[key] = total.get(key, 0) + value
    return total


# --- the table ----------------------------------------------------------------------------------

def _share(num: int, den: int) -> str:
    return f"{num / den:.1%} ({num}/{den})" if den else "-"


def table_rows(columns: dict[str, dict[str, Any]]) -> list[list[str]]:
    def row(name: str, target: str, cell: Callable[[dict[str, Any]], str]) -> list[str]:
        return [name, target, *(cell(c) for c in columns.values())]

    withheld = lambda kind: lambda c: _share(c[kind]["withheld"] + c[kind]["both"], c[kind]["surfaced"])  # noqa: E731
    return [
        row("clear child photos withheld (>= 3 captions)", ">= 95%", withheld("child")),
        row("no-child photos withheld (0 captions)", "<= 20%", withheld("no_child")),
        row("ambiguous photos withheld (1-2 captions)", "", withheld("ambiguous")),
        row("photos surfaced by an allowed query", "", lambda c: str(sum(c[k]["surfaced"] for k in KINDS))
            + f"/{sum(c[k]['photos'] for k in KINDS)}"),
        row("served hits that show a child", "", lambda c: _share(c["child_hits"], c["hits_served"])),
        row("... among the first 10 hits", "", lambda c: _share(c["page_child_hits"], c["page_served"])),
        row("child queries blocked", "100%", lambda c: _share(c["child_queries"]["blocked"],
                                                               c["child_queries"]["queries"])),
        row("innocent queries blocked", "<= 2%", lambda c: _share(c["innocent_queries"]["blocked"],
                                                                  c["innocent_queries"]["queries"])),
        row("leaks: served hits (photos)", "0", lambda c: f"{c['leak_hits']} ({len(set(c['leak_photos']))})"
            if c["restricted"] else "(allowed)"),
        row("photos both served and withheld", "0", lambda c: str(sum(c[k]["both"] for k in KINDS))),
        row("withheld hits not matched to a photo", "0", lambda c: str(c["unaligned"])),
    ]


def format_table(columns: dict[str, dict[str, Any]]) -> str:
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench_utils import markdown_table

    return markdown_table(["", "target", *columns], table_rows(columns))


# --- one fold -----------------------------------------------------------------------------------

COLUMNS = (("no descriptions", False), ("with descriptions", True))
STORES = {"no descriptions": "plain", "with descriptions": "described"}  # folder names


def _bar(total: int, desc: str, enabled: bool):
    from tqdm.auto import tqdm

    return tqdm(total=total, desc=desc, unit="item", disable=not enabled, dynamic_ncols=True,
                leave=False, file=sys.stderr)


def trainer_code() -> str:
    """sha256 over the trainer's and the model's source: a kept artifact is reused only when
    neither changed (e.g. a new detector lands: retrain)."""
    import hashlib

    digest = hashlib.sha256()
    model = REPO / "services" / "withsense" / "model"
    for path in sorted([*(REPO / "trainer").rglob("*.py"), *model.rglob("*.py"),
                        *model.glob("configs/*.json")]):
        if path.is_file():
            digest.update(path.relative_to(REPO).as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def trained_artifact(dataset: Any, keep: list[str], work: Path, cache: Path | None) -> dict[str, Any]:
    """Trains the fold's artifact, or reuses one that ``--work`` kept from an earlier run on
    exactly these training photos with the same trainer code; returns its minor_detector
    section."""
    marker, artifact = work / "trained-on.json", work / "artifact"
    spec = {"photos": sorted(keep), "code": trainer_code()}
    if marker.is_file() and json.loads(marker.read_text()) == spec and \
            (artifact / "config.json").is_file():
        return json.loads((artifact / "config.json").read_text()).get("minor_detector", {})
    for old in (work / "train-data", artifact):
        shutil.rmtree(old, ignore_errors=True)
    section = train_artifact(write_training_folder(dataset, set(keep), work / "train-data"),
                             artifact, cache, work / "train.log")
    marker.write_text(json.dumps(spec))
    return section


def run_fold(dataset: Any, fold: int, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    from withsense.client import SearchClient

    keep, held = split(dataset, args.folds, fold, args.seed)
    photos = photos_of(dataset, held)
    queries = build_queries(photos.values(), max_captions=args.max_captions, seed=args.seed)
    folder = work / "held-out"
    for old in [folder, *work.glob("store-*"), *work.glob("gateway-*.log"), work / "worker.log"]:
        shutil.rmtree(old) if old.is_dir() else old.unlink(missing_ok=True)
    folder.mkdir(parents=True)
    for name in held:
        (folder / name).symlink_to(dataset.train_images[name].resolve())
    started = time.perf_counter()
    detector = trained_artifact(dataset, keep, work, args.cache)
    seconds = {"train": time.perf_counter() - started}
    p_child = offline_flags(work / "artifact", args.cache, dataset, held)
    threshold = float(detector["threshold"])
    offline = {kind: {"photos": sum(p.kind == kind for p in photos.values()),
                      "flagged": sum(p.kind == kind and p_child[n] >= threshold
                                     for n, p in photos.items())} for kind in KINDS}
    columns: dict[str, dict[str, Any]] = {}
    mismatch: dict[str, list[str]] = {}
    index_reports = {}
    with stack(work / "artifact", work, list(STORES.values()), args.restricted) as gateways:
        seconds["start"] = time.perf_counter() - started - seconds["train"]
        for name, described in COLUMNS:
            with SearchClient(gateways[STORES[name]], timeout_s=120) as client:
                with _bar(len(held), f"fold {fold}: index, {name}", not args.json) as bar:
                    ids, index_reports[name] = index_photos(client, folder, photos,
                                                            described=described, progress=bar.update)
                with _bar(len(queries), f"fold {fold}: search, {name}", not args.json) as bar:
                    tallies = measure(client, ids, photos, queries, described=described,
                                      restricted=args.restricted, unrestricted=args.unrestricted,
                                      top_k=args.top_k, page=args.page, progress=bar.update)
            for region, tally in tallies.items():
                columns[f"{region}, {name}"] = summarise(tally, photos)
            mismatch[name] = disagreements(tallies["restricted"], photos, p_child, threshold)
    seconds["total"] = time.perf_counter() - started
    return {"fold": fold, "train_photos": len(keep), "held_out_photos": len(held),
            "queries": {"caption": sum(q.source == "caption" for q in queries),
                        "labelled": sum(q.source == "labelled" for q in queries),
                        "child": sum(q.child for q in queries)},
            "detector": {"version": detector.get("version"), "threshold": threshold,
                         "cv": _cv_of(detector), "held_out_offline": offline},
            "stack_vs_detector_mismatch": mismatch,
            "index": index_reports, "columns": columns,
            "seconds": {k: round(v, 1) for k, v in seconds.items()}}


def _cv_of(detector: dict[str, Any]) -> dict[str, float]:
    """The detector's own cross-validation on the training folds, as its artifact records it."""
    cv = detector.get("training", {}).get("cross_validation", {})
    return {k: round(float(cv[k]), 4) for k in ("auc", "heldout_recall", "heldout_adults_withheld")
            if k in cv}


def fold_line(result: dict[str, Any], folds: int, seed: int) -> str:
    detector, offline = result["detector"], result["detector"]["held_out_offline"]
    share = lambda kind: _share(offline[kind]["flagged"], offline[kind]["photos"])  # noqa: E731
    mismatch = {k: len(v) for k, v in result["stack_vs_detector_mismatch"].items()}
    return (f"fold {result['fold']} of {folds} (seed {seed}): trained on {result['train_photos']} "
            f"photos, {result['held_out_photos']} held out; detector threshold "
            f"{detector['threshold']:.4f}, its CV on the training photos {detector['cv']}; on the "
            f"held-out photos offline (p >= threshold): child {share('child')}, no child "
            f"{share('no_child')}, ambiguous {share('ambiguous')}; stack vs offline flags, "
            f"photos that disagree: {mismatch}; queries {result['queries']}; seconds {result['seconds']}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True, help="the customer's data set folder")
    parser.add_argument("--cache", type=Path, help="shared tower-feature cache (--cache of withsense train)")
    parser.add_argument("--folds", type=int, default=5, help="K of the split by photo (default 5)")
    parser.add_argument("--fold", default="0", help="held-out fold(s), comma-separated (default 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the split and of the caption sample")
    parser.add_argument("--max-captions", type=int, default=0,
                        help="at most this many held-out captions as queries (seeded; 0: all)")
    parser.add_argument("--top-k", type=int, default=100, help="hits per search (default 100)")
    parser.add_argument("--page", type=int, default=10, help="the first page's hits (default 10)")
    parser.add_argument("--restricted", default="RU", help="restricted region (default RU)")
    parser.add_argument("--unrestricted", default="US", help="unrestricted region (default US)")
    parser.add_argument("--work", type=Path, help="keep the training data, artifact, stores and "
                        "server logs here (default: a temporary folder, removed); a fold's "
                        "artifact kept here is reused when its training photos and the trainer's "
                        "code are the same")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--save", type=Path, help="also write the JSON result to this file")
    args = parser.parse_args(argv)
    if args.restricted.upper() == args.unrestricted.upper():
        parser.error("--restricted and --unrestricted must differ")
    from withsense_train.data import DatasetError, load_dataset

    if not (args.data / "train_dataset.csv").is_file():
        print(f"error: the customer's data set is not at {args.data} (no train_dataset.csv); "
              "pass --data DIR", file=sys.stderr)
        return 2
    try:
        dataset = load_dataset(args.data)
    except DatasetError as exc:
        print(f"error: invalid data set: {exc}", file=sys.stderr)
        return 2
    folds = [int(f) for f in args.fold.split(",")]
    if any(not 0 <= f < args.folds for f in folds):
        parser.error(f"--fold must be in 0..{args.folds - 1}")
    root = args.work or Path(tempfile.mkdtemp(prefix="withsense-e2e-"))
    results = []
    try:
        for fold in folds:
            work = root / f"fold{fold}"
            work.mkdir(parents=True, exist_ok=True)
            results.append(run_fold(dataset, fold, args, work))
            (work / "result.json").write_text(json.dumps(results[-1], indent=2, default=_jsonable))
    finally:
        if args.work is None:
            shutil.rmtree(root, ignore_errors=True)
    total = {name: add_up([r["columns"][name] for r in results]) for name in results[0]["columns"]}
    out = {"command": " ".join(sys.argv), "folds": args.folds, "held_out": folds, "seed": args.seed,
           "restricted": args.restricted, "unrestricted": args.unrestricted,
           "top_k": args.top_k, "load_average": round(os.getloadavg()[0], 2),
           "per_fold": results, "total": total}
    text = json.dumps(out, indent=2, default=_jsonable)
    if args.save:
        args.save.write_text(text + "\n")
    if args.json:
        print(text)
        return 0
    for result in results:
        print(fold_line(result, args.folds, args.seed))
    print()
    print(format_table(total))
    errors = [e for c in total.values() for e in c["query_errors"]]
    for error in sorted({tuple(e.values()) for e in errors}):
        print("query decided wrongly in the restricted region: " + " | ".join(error))
    print(f"\nrestricted region {args.restricted}, unrestricted {args.unrestricted}; top {args.top_k} "
          f"hits per search; {os.getloadavg()[0]:.1f} load average")
    return 0


def _jsonable(value: Any) -> Any:
    if isinstance(value, np.generic):
        return value.item()
    return str(value)


if __name__ == "__main__":
    raise SystemExit(main())
