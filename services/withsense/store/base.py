"""The vector store interface shared by both backends (Qdrant Edge and qdrant-client).

Everything here is synchronous; the gateway calls it from worker threads
(`asyncio.to_thread`), and both backends are safe to call from several threads at once.
Every failure of a backend surfaces as `StoreError` with a message a person understands.
"""

from __future__ import annotations

import hashlib
import math
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

#: Name of the dense vector in both backends.
VECTOR_NAME = "image"

#: Payload keys every record must carry (user fields come on top, with str values).
REQUIRED_PAYLOAD_KEYS: tuple[str, ...] = (
    "uri",
    "minor",
    "flag_reasons",
    "descriptions",
    "content_hash",
)

#: Payload indexes of every store, by field, as Qdrant schema type names: `minor` serves the
#: compliance filter, `uri` finds the photos to delete.
PAYLOAD_INDEXES: dict[str, str] = {"minor": "bool", "uri": "keyword"}

#: Namespace of the uuid5 point ids. Fixed forever: changing it re-keys every stored image.
POINT_ID_NAMESPACE = uuid.uuid5(uuid.NAMESPACE_URL, "https://withsense.example/image-content")


class StoreError(Exception):
    """A vector store failure: unusable folder, dim mismatch, backend unreachable, bad input."""


@dataclass(frozen=True)
class ImageRecord:
    """One image to store. `image_id` comes from `point_id_for(photo bytes)`."""

    image_id: str
    vector: np.ndarray  # float32 [dim], unit length
    payload: dict[str, Any]


@dataclass(frozen=True)
class StoreHit:
    """One search result, best first. `score` is the cosine similarity computed by the store."""

    image_id: str
    score: float
    payload: dict[str, Any]
    vector: np.ndarray | None  # float32 [dim] (as stored: unit length) when asked for


@runtime_checkable
class VectorStore(Protocol):
    """The one small interface the gateway and the indexer use."""

    backend: str  # "qdrant-edge" or "qdrant-client"
    dim: int

    def upsert(self, records: Sequence[ImageRecord]) -> None: ...

    def get(self, image_ids: Sequence[str]) -> dict[str, dict[str, Any]]: ...

    def search(
        self,
        vector: np.ndarray | Sequence[float],
        limit: int,
        *,
        exclude_minor: bool,
        filters: Mapping[str, str] | None = None,
        with_vectors: bool = True,
    ) -> list[StoreHit]: ...

    def delete(self, image_ids: Sequence[str]) -> int: ...

    def ids_for_uris(self, uris: Sequence[str]) -> list[str]: ...

    def count(self, *, minor: bool | None = None) -> int: ...

    def optimize(self) -> None: ...

    def close(self) -> None: ...


def point_id_for(content: bytes) -> str:
    """The point id of a photo: uuid5(POINT_ID_NAMESPACE, sha256(content).hexdigest()).

    Deterministic across runs and machines, so re-indexing the same bytes is idempotent.
    """
    digest = hashlib.sha256(content).hexdigest()
    return str(uuid.uuid5(POINT_ID_NAMESPACE, digest))


# --------------------------------------------------------------------------- validation helpers
# Shared by both backends so that they accept and reject exactly the same input.


def canonical_id(image_id: str) -> str:
    """The canonical (lower-case, hyphenated) form of a UUID string; StoreError if it is not one."""
    if isinstance(image_id, uuid.UUID):
        return str(image_id)
    try:
        return str(uuid.UUID(str(image_id)))
    except (ValueError, TypeError, AttributeError) as e:
        raise StoreError(
            f"image id {image_id!r} is not a UUID string (use point_id_for(photo bytes))"
        ) from e


def canonical_ids(image_ids: Sequence[str]) -> list[str]:
    """Canonical ids, duplicates removed, order kept."""
    if isinstance(image_ids, str):
        raise StoreError("expected a sequence of image ids, got a single string")
    return list(dict.fromkeys(canonical_id(i) for i in image_ids))


def check_vector(vector: Any, dim: int, what: str) -> list[float]:
    """A finite, non-zero vector of length `dim` as a list of Python floats."""
    try:
        arr = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as e:
        raise StoreError(f"{what}: not a numeric vector") from e
    if arr.ndim != 1 or arr.shape[0] != dim:
        raise StoreError(f"{what}: expected a vector of shape ({dim},), got {tuple(arr.shape)}")
    if not np.all(np.isfinite(arr)):
        raise StoreError(f"{what}: vector has NaN or infinite values")
    if not float(np.abs(arr).max(initial=0.0)) > 0.0:
        raise StoreError(f"{what}: vector is all zeros (cosine is undefined)")
    out: list[float] = arr.tolist()
    return out


def check_payload(image_id: str, payload: Mapping[str, Any]) -> dict[str, Any]:
    """A copy of the payload with the required keys checked; `minor` made a plain bool.

    `minor` must be present and boolean: a missing flag would let the image through the
    compliance filter (`exclude_minor`), so the store refuses it rather than failing open.
    """
    if not isinstance(payload, Mapping):
        raise StoreError(f"image {image_id}: payload must be a dict")
    missing = [k for k in REQUIRED_PAYLOAD_KEYS if k not in payload]
    if missing:
        raise StoreError(f"image {image_id}: payload lacks required keys {missing}")
    out = dict(payload)
    minor = out["minor"]
    if not isinstance(minor, bool | np.bool_):
        raise StoreError(f"image {image_id}: payload 'minor' must be a bool, got {minor!r}")
    out["minor"] = bool(minor)
    if not isinstance(out["uri"], str):
        raise StoreError(f"image {image_id}: payload 'uri' must be a str")
    for key in ("flag_reasons", "descriptions"):
        value = out[key]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise StoreError(f"image {image_id}: payload {key!r} must be a list of str")
        out[key] = list(value)
    if not isinstance(out["content_hash"], str):
        raise StoreError(f"image {image_id}: payload 'content_hash' must be a str")
    return out


def check_filters(filters: Mapping[str, str] | None) -> list[tuple[str, str]]:
    """Exact-match keyword filters as (key, value) pairs."""
    if not filters:
        return []
    out = []
    for key, value in filters.items():
        if not isinstance(key, str) or not key:
            raise StoreError(f"filter key {key!r} must be a non-empty str")
        if not isinstance(value, str):
            raise StoreError(f"filter {key!r}: value must be a str, got {value!r}")
        out.append((key, value))
    return out


def check_limit(limit: int) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int | np.integer) or limit < 0:
        raise StoreError(f"limit must be a non-negative int, got {limit!r}")
    return int(limit)


def check_uris(uris: Sequence[str]) -> list[str]:
    if isinstance(uris, str):
        raise StoreError("expected a sequence of uris, got a single string")
    out = list(dict.fromkeys(uris))
    for u in out:
        if not isinstance(u, str):
            raise StoreError(f"uri {u!r} must be a str")
    return out


def order_ids_by_uri(pairs: Sequence[tuple[str, str]], uris: Sequence[str]) -> list[str]:
    """Ids of (id, uri) pairs ordered by the position of their uri in `uris`, then by id."""
    rank = {u: i for i, u in enumerate(uris)}
    return [i for i, _ in sorted(pairs, key=lambda p: (rank.get(p[1], math.inf), p[0]))]


def hits_from_points(points: Sequence[Any], *, with_vectors: bool, dim: int) -> list[StoreHit]:
    """StoreHits from scored points of either backend (`.id`, `.score`, `.payload`, `.vector`).

    Vectors are converted in one numpy call (one [n, dim] array, one row per hit), which is
    several times faster than one array per hit for a top-100.
    """
    vectors: np.ndarray | None = None
    if with_vectors and points:
        raws = [p.vector[VECTOR_NAME] if isinstance(p.vector, dict) else p.vector for p in points]
        vectors = np.asarray(raws, dtype=np.float32).reshape(len(points), dim)
    return [
        StoreHit(
            image_id=str(p.id),
            score=float(p.score),
            payload=dict(p.payload or {}),
            vector=None if vectors is None else vectors[i],
        )
        for i, p in enumerate(points)
    ]
