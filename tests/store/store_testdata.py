"""Shared helpers of the vector store tests: one synthetic data set, both real backends.

Backends: "edge" (Qdrant Edge in a temporary folder) and "client-local" (qdrant-client's local
mode persisted in a temporary folder). No mocks: every test talks to a real engine.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from withsense.store import EdgeStore, ImageRecord, VectorStore, open_store, point_id_for
from withsense.store.client import QdrantClientStore

DIM = 32
N = 500
SEED = 20240611
BACKENDS = ["edge", "edge-catalogued", "client-local"]
COLLECTION = "test_images"


@dataclass(frozen=True)
class Dataset:
    records: list[ImageRecord]
    vectors: np.ndarray  # float64 [N, DIM], unit rows
    ids: list[str]
    payloads: list[dict[str, Any]]

    def mask(
        self, *, exclude_minor: bool = False, filters: Mapping[str, str] | None = None
    ) -> np.ndarray:
        """Which points pass the minor exclusion and the exact-match payload filters."""
        keep = np.ones(len(self.ids), dtype=bool)
        for i, p in enumerate(self.payloads):
            if exclude_minor and p["minor"]:
                keep[i] = False
            if any(p.get(k) != v for k, v in (filters or {}).items()):
                keep[i] = False
        return keep

    def brute_force(self, query: np.ndarray, k: int, keep: np.ndarray | None = None) -> list[str]:
        """Top-k ids by exact float64 cosine similarity among the kept points."""
        q = np.asarray(query, dtype=np.float64)
        scores = self.vectors @ (q / np.linalg.norm(q))
        if keep is not None:
            scores = np.where(keep, scores, -np.inf)
        order = np.argsort(-scores, kind="stable")[:k]
        return [self.ids[i] for i in order if np.isfinite(scores[i])]

    def cosine(self, image_id: str, query: np.ndarray) -> float:
        q = np.asarray(query, dtype=np.float64)
        return float(self.vectors[self.ids.index(image_id)] @ (q / np.linalg.norm(q)))


def make_payload(i: int, *, minor: bool) -> dict[str, Any]:
    return {
        "uri": f"photos/{i:04d}.jpg",
        "minor": minor,
        "flag_reasons": ["caption:child"] if minor else [],
        "descriptions": [f"photo number {i}"],
        "content_hash": hashlib.sha256(f"img-{i}".encode()).hexdigest(),
        "photographer": f"p{i % 3}",
        "license": "cc-by" if i % 2 else "all-rights-reserved",
    }


def make_dataset(n: int = N, dim: int = DIM, seed: int = SEED) -> Dataset:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((n, dim))
    x /= np.linalg.norm(x, axis=1, keepdims=True)
    ids = [point_id_for(f"img-{i}".encode()) for i in range(n)]
    payloads = [make_payload(i, minor=(i % 5 == 0)) for i in range(n)]
    records = [
        ImageRecord(image_id=ids[i], vector=x[i].astype(np.float32), payload=payloads[i])
        for i in range(n)
    ]
    return Dataset(records=records, vectors=x, ids=ids, payloads=payloads)


def open_backend(kind: str, folder: Path, dim: int = DIM) -> VectorStore:
    if kind == "edge":
        return EdgeStore(folder / "edge", dim)
    if kind == "edge-catalogued":  # what the gateway opens by default
        return open_store(qdrant_url="", data_dir=folder / "catalogued", dim=dim)
    if kind == "client-local":
        return QdrantClientStore(path=str(folder / "local"), collection=COLLECTION, dim=dim)
    raise ValueError(kind)


