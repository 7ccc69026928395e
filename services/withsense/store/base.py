"""The vector store interface shared by both backends (Qdrant Edge and qdrant-client).

Everything here is synchronous; the gateway calls it from worker threads
(`asyncio.to_thread`), and both backends are safe to call from several threads at once.
Every failure of a backend surfaces as `StoreError` with a message a person understands.
"""

from __future__ import annotations

import hashlib
import itertools
import math
import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import numpy as np

from withsense.keywords import SparseVector

#: Name of the photo's dense vector in both backends.
VECTOR_NAME = "image"
#: Name of the descriptions' dense vectors: a multivector (one row per description, MaxSim),
#: absent from a photo without descriptions.
DESCRIPTIONS_VECTOR = "descriptions"
#: Name of the descriptions' sparse keyword vector (IDF modifier), absent when there are none.
KEYWORDS_VECTOR = "keywords"
#: Name of the descriptions' summary, a dense vector of dim + 1 (Dot): the mean of the unit
#: description rows, then their count. Scored against [query, 0] it gives the mean cosine, and
#: against [0, ..., 0, 1] the count, so a search gets both from the engine as scores instead of
#: taking every row out of it (building those lists cost ~7 ms a search at 5 descriptions a
#: photo). Absent from a photo without descriptions, and from stores made before it existed.
DESCRIPTION_STATS_VECTOR = "description_stats"
#: k of the reciprocal rank fusion that merges the candidate lists of a hybrid search.
RRF_K = 60

#: Payload keys every record must carry (user fields come on top, with str values).
REQUIRED_PAYLOAD_KEYS: tuple[str, ...] = (
    "uri",
    "minor",
    "flag_reasons",
    "descriptions",
    "content_hash",
)

#: Every uri a photo (one content, one point) was indexed under; `uri` is the first of them.
#: Optional, for points written before photos could have several uris.
URIS_KEY = "uris"

#: Payload indexes of every store, by field, as Qdrant schema type names: `minor` serves the
#: compliance filter, `uri` and `uris` find the photos to delete.
PAYLOAD_INDEXES: dict[str, str] = {"minor": "bool", "uri": "keyword", URIS_KEY: "keyword"}

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
    descriptions: np.ndarray | None = None  # float32 [n, dim]: one row per description
    keywords: SparseVector | None = None  # withsense.keywords.document_vector(descriptions)


@dataclass(frozen=True)
class StoreHit:
    """One search result, best first. `score` is the cosine similarity computed by the store."""

    image_id: str
    score: float
    payload: dict[str, Any]
    vector: np.ndarray | None  # float32 [dim] (as stored: unit length) when asked for
    descriptions: np.ndarray | None = None  # float32 [n, dim] when asked for and stored
    keywords: SparseVector | None = None  # when asked for and stored
    # The image vector's cosine to the query, computed by the engine on the original vectors
    # (hybrid_search): what a search scores, without shipping the image vector out.
    cosine: float | None = None
    # (best, mean, count) of the description cosines to the query, computed by the engine
    # (hybrid_search on a store with DESCRIPTION_STATS_VECTOR; (0, 0, 0) without descriptions),
    # in place of the rows in `descriptions`.
    description_summary: tuple[float, float, int] | None = None


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

    def hybrid_search(
        self,
        vector: np.ndarray | Sequence[float],
        keywords: SparseVector | None,
        limit: int,
        *,
        exclude_minor: bool,
        filters: Mapping[str, str] | None = None,
        with_image_vectors: bool = False,
    ) -> list[StoreHit]:
        """Candidates from the image vector, the description vectors and the keywords (when
        given), each list `limit` long, merged by reciprocal rank fusion in one query: the
        union of the lists (so a photo without descriptions keeps its place among the image
        candidates), best fused rank first. `score` is the RRF score (a rank measure, not a
        cosine); `cosine` is the exact cosine of the query and the image vector, scored by the
        engine over the candidates alone. Hits carry their description vectors and keywords,
        and their image vector only `with_image_vectors` (for a scorer that needs the vectors:
        the Triton kernel, the worker's Score call)."""
        ...

    def delete(self, image_ids: Sequence[str]) -> int: ...

    def ids_for_uris(self, uris: Sequence[str]) -> list[str]: ...

    def set_payloads(self, payloads: Mapping[str, Mapping[str, Any]]) -> None: ...

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


def check_descriptions(vectors: Any, dim: int, what: str) -> list[list[float]]:
    """Description vectors [n, dim] as lists of floats; [] when there are none."""
    if vectors is None:
        return []
    arr = np.asarray(vectors, dtype=np.float32)
    if arr.size == 0:
        return []
    if arr.ndim != 2:
        raise StoreError(f"{what}: description vectors must be [n, {dim}], got {tuple(arr.shape)}")
    return [check_vector(row, dim, f"{what}, description {i}") for i, row in enumerate(arr)]


def check_keywords(keywords: Any, what: str) -> SparseVector | None:
    """A sparse vector with sorted, unique, non-negative int indices and finite values."""
    if keywords is None or not keywords:
        return None
    if not isinstance(keywords, SparseVector):
        raise StoreError(f"{what}: keywords must be a withsense.keywords.SparseVector")
    indices = np.asarray(keywords.indices, dtype=np.int64)
    values = np.asarray(keywords.values, dtype=np.float64)
    if indices.min() < 0 or indices.max() >= 2**32 or np.any(np.diff(indices) <= 0):
        raise StoreError(f"{what}: keyword indices must be sorted, unique and in 0..2^32-1")
    if not np.all(np.isfinite(values)):
        raise StoreError(f"{what}: keyword values have NaN or infinite values")
    return keywords


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
    if URIS_KEY in out:
        uris = out[URIS_KEY]
        if not isinstance(uris, list | tuple) or not uris or not all(isinstance(u, str) for u in uris):
            raise StoreError(f"image {image_id}: payload {URIS_KEY!r} must be a non-empty list of str")
        out[URIS_KEY] = list(uris)
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


def uris_of(payload: Mapping[str, Any]) -> list[str]:
    """Every uri of a stored photo (`uris`, or `uri` alone for points from before `uris`)."""
    uris = payload.get(URIS_KEY)
    if uris:
        return [str(u) for u in uris]
    return [str(payload["uri"])] if "uri" in payload else []


def order_ids_by_uri(records: Sequence[tuple[str, Mapping[str, Any]]], uris: Sequence[str]) -> list[str]:
    """Ids of (id, payload) records ordered by the position of their first wanted uri in
    `uris`, then by id."""
    rank = {u: i for i, u in enumerate(uris)}

    def key(record: tuple[str, Mapping[str, Any]]) -> tuple[float, str]:
        return (min((rank.get(u, math.inf) for u in uris_of(record[1])), default=math.inf), record[0])

    return [i for i, _ in sorted(records, key=key)]


def hits_from_points(points: Sequence[Any], *, with_vectors: bool, dim: int) -> list[StoreHit]:
    """StoreHits from scored points of either backend (`.id`, `.score`, `.payload`, `.vector`).

    Vectors are converted in one numpy call (one [n, dim] array, one row per hit), which is
    several times faster than one array per hit for a top-100.
    """
    # `.vector` of an embedded-store point builds Python lists of every named vector on each
    # access: read it once per point (three reads were ~1/3 of a search's gateway CPU).
    stored = [p.vector for p in points]
    vectors: np.ndarray | None = None
    if with_vectors and points:
        raws = [v[VECTOR_NAME] if isinstance(v, dict) else v for v in stored]
        vectors = np.asarray(raws, dtype=np.float32).reshape(len(points), dim)
    return [
        StoreHit(
            image_id=str(p.id),
            score=float(p.score),
            payload=dict(p.payload or {}),
            vector=None if vectors is None else vectors[i],
            descriptions=_stored_descriptions(vector, dim),
            keywords=_stored_keywords(vector),
        )
        for i, (p, vector) in enumerate(zip(points, stored, strict=True))
    ]


def hybrid_vectors(with_image_vectors: bool, *, summarised: bool = False) -> list[str]:
    """The named vectors a hybrid search fetches: those the fusion reads (the keywords, and the
    description rows unless the engine `summarised` them), and the image vector only when the
    scorer needs it."""
    names = [KEYWORDS_VECTOR] if summarised else [DESCRIPTIONS_VECTOR, KEYWORDS_VECTOR]
    return [VECTOR_NAME, *names] if with_image_vectors else names


def description_stats(rows: Sequence[Sequence[float]]) -> list[float]:
    """The DESCRIPTION_STATS_VECTOR of description rows: the mean of the rows made unit length
    (as the engine stores a Cosine vector), then their count."""
    unit = np.asarray(rows, dtype=np.float64)
    unit /= np.linalg.norm(unit, axis=1, keepdims=True)
    out: list[float] = [*unit.mean(axis=0).astype(np.float32).tolist(), float(len(unit))]
    return out


def stats_queries(query: Sequence[float]) -> tuple[list[float], list[float]]:
    """The two queries of DESCRIPTION_STATS_VECTOR: [query made unit length, 0] scores the mean
    cosine (as MaxSim's best is a cosine), [0, ..., 0, 1] the count."""
    unit = np.asarray(query, dtype=np.float64)
    unit /= np.linalg.norm(unit)
    return [*unit.tolist(), 0.0], [0.0] * len(unit) + [1.0]


def candidate_score_queries(query: list[float], *, summarised: bool) -> list[tuple[Any, str]]:
    """The exact scores a hybrid search takes of its candidates, as (query, vector name), for
    one batch of searches restricted to them: the image cosine, then, for a store that
    summarises its descriptions, their best (MaxSim of the rows), mean and count, in the order
    `summaries_of` takes them."""
    queries: list[tuple[Any, str]] = [(query, VECTOR_NAME)]
    if summarised:
        mean_query, count_query = stats_queries(query)
        queries += [([query], DESCRIPTIONS_VECTOR), (mean_query, DESCRIPTION_STATS_VECTOR),
                    (count_query, DESCRIPTION_STATS_VECTOR)]
    return queries


def summaries_of(best: Mapping[str, float], mean: Mapping[str, float], count: Mapping[str, float],
                 ) -> dict[str, tuple[float, float, int]]:
    """id -> (best, mean, count) of each described photo, from the engine's three scores (a
    photo without descriptions has no vector, so no score: `hybrid_hits` gives it (0, 0, 0))."""
    return {i: (best[i], mean[i], round(n)) for i, n in count.items() if i in best and i in mean}


def hybrid_hits(points: Sequence[Any], cosines: Mapping[str, float], *, with_image_vectors: bool,
                dim: int, summaries: Mapping[str, tuple[float, float, int]] | None = None,
                ) -> list[StoreHit]:
    """StoreHits of a hybrid search's points (`.id`, `.score`, `.payload`, `.vector` with the
    descriptions, the keywords and, `with_image_vectors`, the image vector), each with its
    image cosine from `cosines` (id -> cosine; None for an id the engine did not score).

    Each point's vectors are read once (the engine builds Python lists on every access), and
    every description row of every hit becomes one float32 array in one pass: per-hit arrays
    cost ~2 ms a search for ~100 candidates."""
    stored = [p.vector or {} for p in points]
    rows = [v.get(DESCRIPTIONS_VECTOR) or () for v in stored]
    counts = [len(r) for r in rows]
    flat = np.fromiter(itertools.chain.from_iterable(itertools.chain.from_iterable(rows)),
                       dtype=np.float32, count=sum(counts) * dim).reshape(-1, dim)
    starts = itertools.accumulate(counts, initial=0)
    images: np.ndarray | None = None
    if with_image_vectors and points:
        images = np.asarray([v[VECTOR_NAME] for v in stored], dtype=np.float32).reshape(len(points), dim)
    hits = []
    for i, (p, vector, start, n) in enumerate(zip(points, stored, starts, counts, strict=False)):
        image_id = str(p.id)
        hits.append(StoreHit(
            image_id=image_id, score=float(p.score), payload=dict(p.payload or {}),
            vector=None if images is None else images[i],
            descriptions=flat[start:start + n] if n else None,
            keywords=_stored_keywords(vector), cosine=cosines.get(image_id),
            description_summary=None if summaries is None else summaries.get(image_id, (0.0, 0.0, 0)),
        ))
    return hits


def _stored_descriptions(vector: Any, dim: int) -> np.ndarray | None:
    rows = vector.get(DESCRIPTIONS_VECTOR) if isinstance(vector, dict) else None
    return None if not rows else np.asarray(rows, dtype=np.float32).reshape(-1, dim)


def _stored_keywords(vector: Any) -> SparseVector | None:
    sparse = vector.get(KEYWORDS_VECTOR) if isinstance(vector, dict) else None
    if sparse is None:
        return None
    indices = sparse.indices  # a new list on each access of an engine's point: read once
    if not len(indices):
        return None
    # Both engines hand out Python ints and floats already: no per-element conversion.
    return SparseVector(tuple(indices), tuple(sparse.values))


def named_vectors(
    image_id: str, record: ImageRecord, dim: int, sparse: Callable[[SparseVector], Any], *,
    stats: bool = False,
) -> dict[str, Any]:
    """The named vectors of a record as a backend stores them (`sparse` builds its sparse type;
    `stats`: the store has DESCRIPTION_STATS_VECTOR); descriptions, their summary and keywords
    are left out when there are none."""
    out: dict[str, Any] = {VECTOR_NAME: check_vector(record.vector, dim, f"image {image_id}")}
    descriptions = check_descriptions(record.descriptions, dim, f"image {image_id}")
    if descriptions:
        out[DESCRIPTIONS_VECTOR] = descriptions
        if stats:
            out[DESCRIPTION_STATS_VECTOR] = description_stats(descriptions)
    keywords = check_keywords(record.keywords, f"image {image_id}")
    if keywords is not None:
        out[KEYWORDS_VECTOR] = sparse(keywords)
    return out


def old_schema_message(where: str) -> str:
    return (
        f"the vector store at {where} was made by an older With Sense without description "
        f"vectors ({DESCRIPTIONS_VECTOR!r}, {KEYWORDS_VECTOR!r}); it cannot be searched with "
        "descriptions as evidence. Index the photos again into a new store (another "
        "WITHSENSE_DATA_DIR or collection), or delete the old one and re-index"
    )
