"""Indexing throughput through the real stack, two code paths interleaved, and where the time goes.

Each code path (a source tree: this checkout, and a baseline such as /work/main) runs as its
own `withsense serve all` process (worker + gateway, embedded store in a temporary folder,
ephemeral ports, HTTP off). A driver process on the same code path indexes N photos with the
client `withsense index` uses (`withsense.cli.client.index`: read the files, stream
IndexImages, descriptions from the captions file) and times that call; then it deletes the
photos again (DeleteImages by uri), so every repeat indexes into a store without them. The
paths take turns (A B B A ...), so background load hits both alike; photos/s is the median.

The breakdown runs each stage alone in this process, on the same photos, with this checkout's
code: CPU cost per photo of every part of the indexing path. The tower's forward at batch B is
the floor: no pipeline can index faster than the network runs.

    nice -n 15 .venv/bin/python benchmarks/bench_index.py --baseline /work/main --photos 200

Photos: the customer's (/work/shared/data/withsense, with extra/captions.txt); when absent,
synthetic photos in the customer's format (trainer/withsense_train/synthetic.py).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench_utils import load_note, markdown_table, parse_variant

ROOT = Path(__file__).resolve().parents[1]
CUSTOMER = Path("/work/shared/data/withsense")

# Runs in a subprocess on one code path: times the CLI's index call, then deletes the photos.
DRIVER = r"""
import argparse, asyncio, json, sys, time
from pathlib import Path
from withsense.cli.client import connect, index
from withsense.client import find_photos

folder, descriptions, target = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
args = argparse.Namespace(folder=folder, descriptions=Path(descriptions) if descriptions else None,
                          target=target, json=True, api_key=None, api_key_file=None, tls_ca=None)

async def main():
    started = time.perf_counter()
    report = await index(args)
    seconds = time.perf_counter() - started
    uris = [p.relative_to(folder).as_posix() for p in find_photos(folder)]
    async with connect(args) as client:
        await client.delete(uris=uris, timeout_s=600)
    report.pop("failures")
    print(json.dumps({"seconds": seconds, **report}))

asyncio.run(main())
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def code_env(root: Path, overrides: dict[str, str] | None = None) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": f"{root}/services:{root}/trainer", "HF_HUB_OFFLINE": "1",
            "TRANSFORMERS_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false",
            "WITHSENSE_METRICS_PORT": "0",
            # a shared, busy machine: the default 10 s deadline of worker calls can pass at start
            "WITHSENSE_WORKER_TIMEOUT_S": "120", **(overrides or {})}


class ServedStack:
    """`withsense serve all` of one code path in a subprocess."""

    def __init__(self, name: str, root: Path, data_dir: Path, overrides: dict[str, str],
                 wrap: list[str] | None = None) -> None:
        self.name, self.root, self.overrides = name, root, overrides
        port = free_port()
        self.target = f"127.0.0.1:{port}"
        self.log = open(data_dir.parent / f"{name}-serve.log", "w+")  # noqa: SIM115 - closed in stop
        self.process = subprocess.Popen(
            [*(wrap or []), sys.executable, "-m", "withsense.cli.main", "--log-level", "WARNING",
             "serve", "all",
             "--port", str(port), "--worker-port", str(free_port()), "--http-port", "-1",
             "--data-dir", str(data_dir)],
            env=code_env(root, overrides), stdout=self.log, stderr=subprocess.STDOUT, text=True)

    def wait_serving(self, timeout_s: float = 300) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            self.log.seek(0)
            if "serving:" in self.log.read():
                return
            if self.process.poll() is not None:
                self.log.seek(0)
                raise RuntimeError(f"{self.name}: serve all exited:\n{self.log.read()[-3000:]}")
            time.sleep(0.5)
        raise RuntimeError(f"{self.name}: not serving after {timeout_s:.0f} s")

    def index(self, folder: Path, descriptions: Path | None) -> dict:
        done = subprocess.run(
            [sys.executable, "-c", DRIVER, str(folder), str(descriptions or ""), self.target],
            env=code_env(self.root), capture_output=True, text=True, check=False)
        if done.returncode:
            raise RuntimeError(f"{self.name}: index failed:\n{done.stderr[-3000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])

    def stop(self) -> None:
        # SIGINT: the stack stops gracefully, and py-spy (when it wraps the stack) writes its file
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        for pid in (children.read_text().split() if children.exists() else []):
            os.kill(int(pid), signal.SIGINT)
        self.process.send_signal(signal.SIGINT)
        try:
            self.process.wait(30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def photo_folder(tmp: Path, count: int) -> tuple[Path, Path | None, str]:
    """A folder with `count` photos (links to the customer's, else synthetic ones), the
    descriptions file and where they come from."""
    images = CUSTOMER / "train_images"
    folder = tmp / "photos"
    folder.mkdir()
    if images.is_dir():
        for path in sorted(images.glob("*.jpg"))[:count]:
            (folder / path.name).symlink_to(path)
        captions = CUSTOMER / "extra" / "captions.txt"
        return folder, captions if captions.is_file() else None, "customer photos"
    from withsense_train.synthetic import generate

    data = generate(tmp / "synthetic", images=count)
    for path in sorted((data / "train_images").iterdir()):
        path.rename(folder / path.name)
    return folder, data / "extra" / "captions.txt", "synthetic photos (customer data absent)"


def end_to_end(paths: dict[str, tuple[Path, dict[str, str]]], folder: Path,
               descriptions: Path | None, photos: int, repeats: int, tmp: Path,
               ) -> tuple[list[list[str]], dict[str, float]]:
    stacks = {}
    try:
        for n, (name, (root, overrides)) in enumerate(paths.items()):  # one by one: start-up is heavy
            (tmp / f"stack{n}").mkdir()
            stacks[name] = ServedStack(name, root, tmp / f"stack{n}" / "data", overrides)
            stacks[name].wait_serving()
        for stack in stacks.values():  # warm-up: first calls, thread pools, store files
            stack.index(folder, descriptions)
        samples: dict[str, list[float]] = {name: [] for name in stacks}
        counts: dict[str, dict] = {}
        order = list(stacks)
        for repeat in range(repeats):
            for name in order if repeat % 2 == 0 else order[::-1]:
                result = stacks[name].index(folder, descriptions)
                samples[name].append(photos / result["seconds"])
                counts[name] = result
                print(f"  {name} repeat {repeat + 1}: {samples[name][-1]:.1f} photos/s "
                      f"({load_note()})", flush=True)
    finally:
        for stack in stacks.values():
            stack.stop()
    base = statistics.median(samples[order[0]])
    rows, medians = [], {}
    for name in order:
        median = statistics.median(samples[name])
        medians[name] = median
        c = counts[name]
        root, overrides = paths[name]
        label = f"{name} ({root}{''.join(f', {k}={v}' for k, v in overrides.items())})"
        rows.append([label, f"{median:.1f}",
                     f"{min(samples[name]):.1f}-{max(samples[name]):.1f}", f"{median / base:.2f}x",
                     f"{1000 / median:.1f}", f"{c['indexed']} / {c['unchanged']} / {c['failed']}"])
    return rows, medians


def breakdown(folder: Path, descriptions: Path | None, count: int, batch: int) -> list[list[str]]:
    """ms per photo of each stage alone, on `count` photos, this checkout's code."""
    sys.path[:0] = [str(ROOT / "services"), str(ROOT / "trainer")]
    import numpy as np
    import torch
    from withsense.config import WorkerSettings
    from withsense.descriptions import read_descriptions
    from withsense.keywords import document_vector
    from withsense.store import ImageRecord, open_catalogued, point_id_for
    from withsense.thumbnails import make_thumbnail
    from withsense.v1 import search_pb2 as pb
    from withsense.worker import protocol
    from withsense.worker.serving import image_backend_name, load_runtime

    paths = sorted(folder.iterdir())[:count]
    texts = read_descriptions(descriptions) if descriptions else {}
    runtime = load_runtime(WorkerSettings())  # as the worker builds it (backends, threads)
    tower = runtime.image_tower
    draft = protocol.draft_size_for(tower.image_size, float(tower.data_config.get("crop_pct") or 0.875))
    settings = WorkerSettings()
    rows: list[list[str]] = []

    def timed(name: str, fn, items: int = len(paths), note: str = "") -> object:
        fn()  # warm-up
        started, cpu = time.perf_counter(), time.process_time()
        out = fn()
        rows.append([name, f"{1000 * (time.perf_counter() - started) / items:.2f}",
                     f"{1000 * (time.process_time() - cpu) / items:.2f}", note])
        return out

    timed("client: read file + IndexImagesRequest encode", lambda: [
        pb.IndexImagesRequest(image=p.read_bytes(), uri=p.name,
                              descriptions=texts.get(p.name, [])).SerializeToString() for p in paths])
    data = [p.read_bytes() for p in paths]
    timed("gateway: SHA-256 (point id, content hash)", lambda: [hashlib.sha256(d).digest() for d in data])
    images = timed("worker: decode (draft for large JPEGs)", lambda: [
        protocol.decode_image(d, 0, settings, draft_size=draft) for d in data])
    pixels = timed("worker: resize + crop + normalise", lambda: torch.stack(
        [runtime.preprocess_image(im) for im in images]))
    chunks = [pixels[i:i + batch] for i in range(0, len(paths), batch)]
    passes = 2 if getattr(runtime.model.config, "tta", "none") == "flip" else 1
    timed(f"worker: tower forward, batch {batch}, one pass",
          lambda: [tower.features_from_pixels(c) for c in chunks],
          note=f"{tower.timm_name} at {tower.image_size} px, {image_backend_name(tower)}, "
               f"{torch.get_num_threads()} threads; the model's TTA needs {passes} per photo")
    embedded = timed("worker: tower + heads + minor detector", lambda: [
        runtime.embed_pixels_with_minor(c) for c in chunks])
    vectors = np.concatenate([v for v, _ in embedded])  # type: ignore[union-attr]
    timed("gateway: thumbnail (decode, resize, WebP)", lambda: [make_thumbnail(d) for d in data])
    per_photo = [texts.get(p.name, []) for p in paths]
    flat = [t for ts in per_photo for t in ts]
    described = timed(f"worker: description embedding ({len(flat) / len(paths):.1f} per photo)",
                      lambda: [runtime.embed_texts(flat[i:i + 64]) for i in range(0, len(flat), 64)])
    rows_of = np.concatenate(described) if flat else None  # type: ignore[arg-type]
    session = runtime.text_onnx
    if flat and session is not None:  # the same texts in arrival order, padded per batch (before)
        timed(f"{BEFORE_TEXTS} (before)", lambda: [
            session.session.run(["vectors"], dict(zip(("input_ids", "attention_mask"),
                                                      session.tokenize(flat[i:i + 64]), strict=True)))
            for i in range(0, len(flat), 64)], note="previous text path: batches padded to their longest")
    keywords = timed("gateway: keywords", lambda: [document_vector(ts) for ts in per_photo])

    def records() -> list:
        out, row = [], 0
        for p, d, v, ts, kw in zip(paths, data, vectors, per_photo, keywords, strict=True):  # type: ignore[arg-type]
            desc = rows_of[row:row + len(ts)] if ts else None
            row += len(ts)
            payload = {"uri": p.name, "descriptions": ts, "minor": False, "flag_reasons": [],
                       "content_hash": hashlib.sha256(d).hexdigest()}
            out.append(ImageRecord(point_id_for(d), v, payload, descriptions=desc, keywords=kw))
        return out

    with tempfile.TemporaryDirectory() as store_dir:
        for attempt in range(2):  # the first run is the warm-up; the second writes anew
            store = open_catalogued(Path(store_dir) / str(attempt), runtime.dim)
            batch_records = records()
            started, cpu = time.perf_counter(), time.process_time()
            for i in range(0, len(batch_records), batch):
                store.upsert(batch_records[i:i + batch])
            elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
            store.close()
        rows.append([f"gateway: store upsert + catalogue, batches of {batch}",
                     f"{1000 * elapsed / len(paths):.2f}", f"{1000 * cpu / len(paths):.2f}",
                     "embedded Qdrant Edge"])
    return rows


# Where a py-spy sample of the serving process goes: the first rule with a fragment in one of
# its frames ("function (file:line)"), in this order. Samples of start-up and of lazy one-off
# loads (imports, the lemmatiser's dictionaries, the prototypes on the multilingual path) are
# left out by these names: py-spy could not attach here, so it samples the process from its start.
START_UP = ("start_stack", "load_runtime", "_warm_up", "start_gateway", "start_worker",
            "EdgeStore.__init__", "_find_and_load", "_load_unlocked", "get_dictionary",
            "MultilingualTower", "_TypedDictMeta")
PROFILE_RULES = [
    ("worker: description embedding (text tower)", ("embed_texts_routed (", "_run_texts (")),
    ("worker: tower forward", ("features_from_pixels (",)),
    ("worker: heads + minor detector", ("embed_pixels_with_minor (",)),
    ("worker: resize + crop + normalise", ("preprocess_image (", "transform_image (")),
    ("worker: decode", ("decode_image (",)),
    ("gateway: thumbnails (make + write)", ("make_thumbnail (", "thumbnails/store.py")),
    ("gateway: store + catalogue", ("withsense/store/",)),
    ("gateway: keywords", ("withsense/keywords.py",)),
    ("gateway: audit log", ("audit",)),
    # serving.py: a baseline tree from before indexing had a file of its own
    ("gateway: plan, flags, payloads", ("withsense/gateway/indexing.py", "withsense/gateway/serving.py",
                                        "photo_flags")),
    ("gRPC + protobuf (both ends)", ("grpc", "_pb2", "protobuf", "servicer.py", "worker_client.py")),
]


def categorise(stack: str) -> str | None:
    if any(name in stack for name in START_UP):
        return None
    for category, fragments in PROFILE_RULES:
        if any(fragment in stack for fragment in fragments):
            return category
    return "other (event loop, threads, batching)"


def profile(root: Path, folder: Path, descriptions: Path | None, tmp: Path, rate: int,
            keep: Path | None = None) -> list[list[str]]:
    """One indexing run of this checkout under py-spy (the whole `serve all` process): where
    its Python threads' samples go. ONNX Runtime's and torch's own worker threads are native
    threads py-spy does not see, so the model's share is a lower bound."""
    import collections
    import shutil

    out = keep or tmp / "profile.txt"
    spy = [shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy")), "record",
           "--rate", str(rate), "--format", "raw", "--nonblocking", "-o", str(out), "--"]
    (tmp / "profiled").mkdir()
    stack = ServedStack("profiled", root, tmp / "profiled" / "data", {}, wrap=spy)
    try:
        stack.wait_serving()
        stack.index(folder, descriptions)
    finally:
        stack.stop()
    counts: collections.Counter = collections.Counter()
    for line in out.read_text().splitlines() if out.exists() else []:
        frames, _, n = line.rpartition(" ")
        category = categorise(frames)
        if category is not None and n.isdigit():
            counts[category] += int(n)
    total = sum(counts.values()) or 1
    return [[category, f"{100 * n / total:.1f}%"] for category, n in counts.most_common()]


BEFORE_TEXTS = "worker: descriptions in arrival order"  # a comparison row, not a stage


def floor_note(rows: list[list[str]]) -> str:
    """What 2 idle cores would allow, from the CPU time per photo of the breakdown's rows."""
    cpu = {row[0].split(" (")[0].split(",")[0]: float(row[2]) for row in rows}
    model = cpu["worker: tower + heads + minor detector"]
    texts = cpu["worker: description embedding"]
    stages = sum(v for k, v in cpu.items() if k not in ("worker: tower forward", BEFORE_TEXTS))
    cores = os.cpu_count() or 1
    return (f"CPU per photo on this machine: the photo's model work {model:.0f} ms, its "
            f"descriptions {texts:.0f} ms, every stage {stages:.0f} ms. On {cores} idle cores "
            f"that allows at most {1000 * cores / model:.1f} photos/s from the image model alone, "
            f"{1000 * cores / (model + texts):.1f} with the descriptions, "
            f"{1000 * cores / stages:.1f} with every stage (perfect overlap).")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--baseline", type=Path, help="another source tree, e.g. /work/main")
    parser.add_argument("--variant", action="append", default=[], metavar="NAME=ENV=VALUE,...",
                        help="also this checkout with these environment settings (repeatable)")
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--breakdown-photos", type=int, default=64)
    parser.add_argument("--batch", type=int, default=16, help="tower batch of the breakdown")
    parser.add_argument("--skip-breakdown", action="store_true")
    parser.add_argument("--skip-end-to-end", action="store_true")
    parser.add_argument("--profile", action="store_true",
                        help="also one run of this checkout under py-spy: where the samples go")
    parser.add_argument("--profile-rate", type=int, default=50, help="py-spy samples per second")
    parser.add_argument("--profile-out", type=Path, help="keep py-spy's raw samples in this file")
    args = parser.parse_args()
    paths = {"baseline": (args.baseline.resolve(), {})} if args.baseline else {}
    paths["this checkout"] = (ROOT, {})
    paths.update((name, (ROOT, env)) for name, env in map(parse_variant, args.variant))
    with tempfile.TemporaryDirectory(prefix="bench-index-") as tmp_name:
        tmp = Path(tmp_name)
        folder, descriptions, source = photo_folder(tmp, args.photos)
        photos = len(list(folder.iterdir()))
        print(f"# Indexing benchmark: {photos} {source}, {os.cpu_count()} CPUs, {load_note()}")
        if not args.skip_end_to_end:
            rows, _ = end_to_end(paths, folder, descriptions, photos, args.repeats, tmp)
            print(f"\n**Through `withsense index` (serve all, embedded store), median of "
                  f"{args.repeats}**, {load_note()}\n")
            print(markdown_table(["code path", "photos/s", "range", "vs first", "ms / photo",
                                  "indexed / unchanged / failed"], rows))
        if args.profile:
            rows = profile(ROOT, folder, descriptions, tmp, args.profile_rate, args.profile_out)
            print(f"\n**Samples of the `serve all` process under py-spy, one indexing run of this "
                  f"checkout**, {load_note()}\n")
            print(markdown_table(["where", "share of Python-thread samples"], rows))
        if not args.skip_breakdown:
            rows = breakdown(folder, descriptions, min(args.breakdown_photos, photos), args.batch)
            print(f"\n**Each stage alone, ms per photo ({min(args.breakdown_photos, photos)} photos)**,"
                  f" {load_note()}\n")
            print(markdown_table(["stage", "wall ms / photo", "CPU ms / photo", "note"], rows))
            print(f"\n{floor_note(rows)}")


if __name__ == "__main__":
    main()
