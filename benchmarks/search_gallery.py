"""A search benchmark's gallery: N photos written straight into an embedded store's data folder.

Vectors that look like ours rather than random ones (random high-dimensional vectors are the
worst case of HNSW and give every prefetch the same cost): the customer's captions are embedded
by the real text path into the joint space; each photo takes one caption as its "scene", its
image vector is that caption's vector plus Gaussian noise (renormalised), its one or two
description vectors are captions of the same scene (plus less noise), and its keywords are those
captions' sparse vector. So the image, description and keyword prefetches of the hybrid query all
do real work. Without the customer's data the scenes are random unit vectors and no keywords.
Every tenth photo is flagged minor. The folder is made once and reused (``ensure_gallery``).

    .venv/bin/python benchmarks/search_gallery.py --photos 100000 --out /tmp/gallery-100k
"""

from __future__ import annotations

import argparse
import os
import shutil
import time
from pathlib import Path

import numpy as np
from tqdm import tqdm
from withsense.keywords import document_vector
from withsense.store import EdgeStore, ImageRecord, point_id_for

CAPTIONS = Path(os.environ.get("WITHSENSE_BENCH_CAPTIONS",
                               "/work/shared/data/withsense/extra/captions.txt"))
IMAGE_NOISE, DESCRIPTION_NOISE = 0.9, 0.4  # noise norm relative to the unit scene vector
BATCH = 1000


def scene_captions(path: Path = CAPTIONS) -> list[list[str]]:
    """The customer's captions grouped by photo (five each), or [] without the data."""
    if not path.is_file():
        return []
    by_photo: dict[str, list[str]] = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        name, _, text = line.partition("\t")
        if text.strip():
            by_photo.setdefault(name.split("#")[0], []).append(text.strip())
    return list(by_photo.values())


def _unit(rows: np.ndarray) -> np.ndarray:
    return (rows / np.linalg.norm(rows, axis=-1, keepdims=True)).astype(np.float32)


def noisy(rng: np.random.Generator, base: np.ndarray, scale: float) -> np.ndarray:
    """Each row of `base` plus Gaussian noise of norm `scale`, made unit length again."""
    noise = rng.standard_normal(base.shape).astype(np.float32)
    return _unit(base + scale * _unit(noise))


def fill(data_dir: Path, photos: int, embed, dim: int, seed: int = 0) -> None:
    """Writes `photos` photos into the store of `data_dir`; `embed(texts)` -> unit vectors.

    No catalogue: the gateway's start-up check fingerprints every point in pure Python (about
    14 ms a photo, 25 minutes at 100k), so the benchmark's servers are given the store itself
    (``search_servers``); the catalogue plays no part in a search."""
    rng = np.random.default_rng(seed)
    scenes = scene_captions()
    if scenes:
        flat = [text for captions in scenes for text in captions]
        vectors = embed(flat)
        caption_vectors, start = [], 0
        for captions in scenes:
            caption_vectors.append(vectors[start:start + len(captions)])
            start += len(captions)
    store = EdgeStore(data_dir / "store", dim)
    try:
        for begin in tqdm(range(0, photos, BATCH), desc=f"filling {data_dir.name}", unit="k photos"):
            records = []
            for i in range(begin, min(photos, begin + BATCH)):
                image_id = point_id_for(f"bench-photo-{i}".encode())
                payload = {"uri": f"bench/{i}.jpg", "minor": i % 10 == 0,
                           "flag_reasons": ["bench"] if i % 10 == 0 else [],
                           "content_hash": image_id}
                if scenes:
                    s = int(rng.integers(len(scenes)))
                    picked = rng.choice(len(scenes[s]), size=int(rng.integers(1, 3)), replace=False)
                    texts = [scenes[s][j] for j in picked]
                    descriptions = noisy(rng, caption_vectors[s][picked], DESCRIPTION_NOISE)
                    vector = noisy(rng, caption_vectors[s].mean(0, keepdims=True), IMAGE_NOISE)[0]
                    records.append(ImageRecord(image_id, vector, {**payload, "descriptions": texts},
                                               descriptions=descriptions,
                                               keywords=document_vector(texts)))
                else:
                    vector = _unit(rng.standard_normal((1, dim)))[0]
                    records.append(ImageRecord(image_id, vector, {**payload, "descriptions": []}))
            store.upsert(records)
        store.optimize()
    finally:
        store.close()


def ensure_gallery(cache: Path, photos: int, embed, dim: int) -> Path:
    """The data folder of an `photos`-photo gallery under `cache`, made on first use."""
    folder = cache / f"gallery-{photos}"
    if (folder / ".complete").exists():
        return folder
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    started = time.perf_counter()
    fill(folder, photos, embed, dim)
    (folder / ".complete").write_text(f"{time.perf_counter() - started:.0f} s\n")
    return folder


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--photos", type=int, default=100_000)
    parser.add_argument("--cache", type=Path, default=Path("/tmp/withsense-search-galleries"))
    args = parser.parse_args()
    from withsense.model.runtime import ModelRuntime

    runtime = ModelRuntime()
    print(ensure_gallery(args.cache, args.photos, runtime.embed_texts, runtime.dim))


if __name__ == "__main__":
    main()
