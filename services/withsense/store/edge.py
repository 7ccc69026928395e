"""Qdrant Edge backend: the real Qdrant engine in process, persisted under a folder.

Quirks of `qdrant-edge-py` 0.9 this module works around (see also tests/store):

* `MatchValue(value=True)` stores the *integer* 1 (the binding tries int before bool and a
  Python bool is an int), so a bool condition never matches: a `must_not minor == True` filter
  would silently let every minor image through. `MatchValue(value=numpy.True_)` keeps a real
  bool; `_BOOL_TRUE` is built that way and checked at import time.
* `EdgeShard.retrieve(ids, with_payload, with_vector)` needs `with_vector` although the stub
  marks it optional.
* Point ids come back as `uuid.UUID`, vectors as `{"image": [floats]}`.
* A shard folder can be open in one `EdgeShard` only (the WAL is locked); a second open fails
  with "Can't init WAL: Kind(WouldBlock)".
* `EdgeShard.load(path, config)` checks the config against the stored segments (a different
  vector size fails) and writes it back; `create` fails when the folder holds segments.
* Any use after `close()` raises "Shard is not initialized"; `close()` twice is fine.
* `optimize()` only builds HNSW once a segment passes the indexing threshold (about 10 MB of
  vectors: roughly 6.5k x 384-d float32); smaller shards stay on exact (plain) search.
* HNSW with the default `ef` (100) is a poor candidate generator for a top-100 on
  high-dimensional data: recall@100 against exact search was 0.35 on 20k random 384-d vectors
  (0.61 with ef=256, 0.82 with ef=512), while exact search over the same 20k took 2-5 ms.
  So `EdgeStore` searches exactly while the store holds at most `exact_up_to` points and
  uses HNSW with `ef = max(search_ef(hnsw_ef, points), limit)` above that (see
  benchmarks/bench_edge_store.py; `hnsw_ef` 0 lets ef grow with the store).
  Random vectors are HNSW's worst case, though: on realistic photo vectors (real embeddings
  with fitted noise, benchmarks/bench_store_tuning.py) recall@10 is far higher at a smaller ef.
* With scalar quantization, `SearchParams(exact=True)` alone would scan the int8 copies; exact
  mode passes `QuantizationSearchParams(ignore=True)` so that it scores the original vectors.
* A point without descriptions still takes a dense slot in the `descriptions` storage and in
  its quantized copy: 1.5 KB and 384 B per photo. Both stay on disk (memory-mapped), see
  `edge_config`; so does the descriptions' summary (`description_stats`, ~1.9 KB a photo).
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from qdrant_edge import (
    CountRequest,
    Distance,
    EdgeConfig,
    EdgeShard,
    EdgeSparseVectorParams,
    EdgeVectorParams,
    FieldCondition,
    Filter,
    Fusion,
    HasIdCondition,
    HnswIndexConfig,
    MatchAny,
    MatchValue,
    Modifier,
    MultiVectorComparator,
    MultiVectorConfig,
    PayloadSchemaType,
    Point,
    Prefetch,
    QuantizationSearchParams,
    Query,
    QueryBatchRequest,
    QueryRequest,
    ScalarQuantizationConfig,
    ScalarType,
    ScrollRequest,
    SearchParams,
    SparseVector,
    UpdateOperation,
)

from withsense.config.store import StoreSettings, search_ef
from withsense.keywords import SparseVector as Keywords

from .base import (
    DESCRIPTION_STATS_VECTOR,
    DESCRIPTIONS_VECTOR,
    KEYWORDS_VECTOR,
    PAYLOAD_INDEXES,
    RRF_K,
    URIS_KEY,
    VECTOR_NAME,
    ImageRecord,
    StoreError,
    StoreHit,
    candidate_score_queries,
    canonical_id,
    canonical_ids,
    check_filters,
    check_keywords,
    check_limit,
    check_payload,
    check_uris,
    check_vector,
    hits_from_points,
    hybrid_hits,
    hybrid_vectors,
    named_vectors,
    old_schema_message,
    order_ids_by_uri,
    summaries_of,
)

_CONFIG_FILE = "edge_config.json"
_BATCH = 1024
#: Qdrant's default: below this many KB of vectors a filtered search scans instead of the graph.
_FULL_SCAN_THRESHOLD_KB = 10_000


def _bool_match(value: bool) -> MatchValue:
    """A MatchValue that really holds a bool (see the module docstring)."""
    match = MatchValue(value=np.bool_(value))  # type: ignore[arg-type]
    if not (isinstance(match.value, bool) and match.value is value):
        raise StoreError(
            "qdrant-edge-py cannot express a boolean match on this version "
            f"(MatchValue({value}) holds {match.value!r}); the minor filter would not work"
        )
    return match


_BOOL_TRUE = _bool_match(True)
_MINOR_IS_TRUE = FieldCondition(key="minor", match=_BOOL_TRUE)
_INDEXES = {field: getattr(PayloadSchemaType, kind.capitalize()) for field, kind in PAYLOAD_INDEXES.items()}


def _filter(exclude_minor: bool, filters: Mapping[str, str] | None) -> Filter | None:
    must: list[Any] = [
        FieldCondition(key=k, match=MatchValue(value=v)) for k, v in check_filters(filters)
    ]
    must_not: list[Any] = [_MINOR_IS_TRUE] if exclude_minor else []
    return Filter(must=must or None, must_not=must_not or None) if must or must_not else None


def _stored_config(path: Path) -> dict[str, Any]:
    """The config recorded in an existing shard's folder ({} if unreadable)."""
    try:
        cfg = json.loads((path / _CONFIG_FILE).read_text())
    except (OSError, ValueError):
        return {}
    return cfg if isinstance(cfg, dict) else {}


def stored_dim(path: Path) -> int | None:
    """The size of the 'image' vector recorded in an existing shard's config, if readable."""
    return _stored_dim(_stored_config(path))


def _stored_dim(cfg: dict[str, Any]) -> int | None:
    """The size of the 'image' vector in a stored config, if recorded."""
    try:
        return int(cfg["vectors"][VECTOR_NAME]["size"])
    except (KeyError, TypeError, ValueError):
        return None


def ensure_writable_folder(path: Path) -> None:
    """Creates the store's folder; a StoreError naming it when it cannot be made or written."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise StoreError(f"cannot create the vector store folder {path}: {e.strerror or e}") from e
    if not path.is_dir():
        raise StoreError(f"the vector store folder {path} is not a directory")
    try:
        fd, probe = tempfile.mkstemp(prefix=".write-probe-", dir=path)
        os.close(fd)
        os.unlink(probe)
    except OSError as e:
        raise StoreError(f"the vector store folder {path} is not writable: {e.strerror or e}") from e


def edge_config(dim: int, settings: StoreSettings, *, stats: bool = True) -> EdgeConfig:
    """Image vector, description multivector (MaxSim), the descriptions' summary (`stats`:
    DESCRIPTION_STATS_VECTOR, Dot; False for a store made before it) and keyword sparse vector
    (IDF), with the HNSW graph, quantization and vector placement of `settings`.

    The descriptions' quantized copy stays on disk (memory-mapped) even when the image's is
    kept in RAM: most photos have no descriptions, yet each takes a slot (384 B of int8 per
    photo, 38 MB per 100k photos measured), and only hybrid searches read it. The summary is
    only ever scored exactly, for a search's candidates (~100 reads a search): it gets no graph
    (m = 0) and stays on disk, quantized copy included (a quantized collection gives every
    vector one), whatever the settings say; each photo takes its slot, ~1.9 KB of disk."""
    on_disk = settings.store_vectors_on_disk
    quantization = descriptions_quantization = None
    if settings.quantized:
        quantization = ScalarQuantizationConfig(
            ScalarType.Int8, quantile=settings.store_quantization_quantile,
            always_ram=settings.store_quantization_always_ram,
        )
        descriptions_quantization = ScalarQuantizationConfig(
            ScalarType.Int8, quantile=settings.store_quantization_quantile, always_ram=False,
        )
    vectors = {
        VECTOR_NAME: EdgeVectorParams(size=dim, distance=Distance.Cosine, on_disk=on_disk),
        DESCRIPTIONS_VECTOR: EdgeVectorParams(
            size=dim,
            distance=Distance.Cosine,
            on_disk=on_disk,
            multivector_config=MultiVectorConfig(MultiVectorComparator.MaxSim),
            quantization_config=descriptions_quantization,
        ),
    }
    if stats:
        vectors[DESCRIPTION_STATS_VECTOR] = EdgeVectorParams(
            size=dim + 1,
            distance=Distance.Dot,
            on_disk=True,
            quantization_config=descriptions_quantization,
            hnsw_config=HnswIndexConfig(m=0, ef_construct=settings.store_hnsw_ef_construct,
                                        full_scan_threshold=_FULL_SCAN_THRESHOLD_KB),
        )
    return EdgeConfig(
        vectors=vectors,
        sparse_vectors={KEYWORDS_VECTOR: EdgeSparseVectorParams(modifier=Modifier.Idf)},
        hnsw_config=HnswIndexConfig(
            m=settings.store_hnsw_m, ef_construct=settings.store_hnsw_ef_construct,
            full_scan_threshold=_FULL_SCAN_THRESHOLD_KB,
        ),
        quantization_config=quantization,
    )


def _edge_sparse(keywords: Keywords) -> SparseVector:
    return SparseVector(list(keywords.indices), list(keywords.values))


class EdgeStore:
    """`VectorStore` over `qdrant_edge.EdgeShard` in the folder `path`.

    Creates the shard when the folder holds none, loads it otherwise. Cosine distance on the
    named vector "image"; payload indexes on `minor` (bool) and `uri` (keyword). Writes are
    flushed before `upsert`/`delete` return. One lock serialises every call into the shard,
    which also makes `close()` safe against calls in flight on other threads.

    The index (HNSW m and ef_construct, int8 quantization, vectors on disk) comes from
    `settings` (`StoreSettings`, read from the environment when not given). Search is exact
    (full recall, original vectors) while the store holds at most `exact_up_to` points, and
    HNSW with `ef = max(search_ef(hnsw_ef, points), limit)` above (0: ef grows with the
    store), int8 candidates rescored with the original vectors when quantized; `exact_up_to`,
    `hnsw_ef`, `rescore` and `oversampling` are plain attributes and may be changed.
    """

    backend = "qdrant-edge"

    def __init__(
        self, path: Path | str, dim: int, *, settings: StoreSettings | None = None,
        exact_up_to: int | None = None, hnsw_ef: int | None = None,
    ) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise StoreError(f"dim must be a positive int, got {dim!r}")
        settings = settings or StoreSettings()
        self.path = Path(path)
        self.dim = dim
        self.exact_up_to = settings.store_exact_up_to if exact_up_to is None else exact_up_to
        self.hnsw_ef = settings.store_hnsw_ef if hnsw_ef is None else hnsw_ef
        self.quantized = settings.quantized
        self.rescore = settings.store_quantization_rescore
        self.oversampling = settings.store_quantization_oversampling
        self._points = 0  # points in the shard, refreshed after every write
        self._lock = threading.RLock()
        self._shard: EdgeShard | None = None
        ensure_writable_folder(self.path)
        exists = (self.path / _CONFIG_FILE).exists()
        #: Whether the store keeps DESCRIPTION_STATS_VECTOR (every store made since it exists);
        #: a store without it is searched as before, with the description rows taken out.
        self.summarises = True
        if exists:
            stored_config = _stored_config(self.path)
            self.summarises = DESCRIPTION_STATS_VECTOR in (stored_config.get("vectors") or {})
            stored = _stored_dim(stored_config)
            if stored is not None and stored != dim:
                raise StoreError(
                    f"the vector store at {self.path} holds {stored}-d vectors but dim={dim} "
                    "was asked for (another model?): use another data folder or re-index"
                )
            if stored is not None and DESCRIPTIONS_VECTOR not in stored_config["vectors"]:
                raise StoreError(old_schema_message(str(self.path)))
        config = edge_config(dim, settings, stats=self.summarises)
        try:
            if exists:
                self._shard = EdgeShard.load(str(self.path), config)
            else:
                self._shard = EdgeShard.create(str(self.path), config)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # a damaged file can make the engine panic (PanicException)
            msg = str(e)
            if "WouldBlock" in msg:
                raise StoreError(
                    f"the vector store at {self.path} is already open in another process "
                    "(or another store object of this one): close that first"
                ) from e
            if "ncompatible" in msg:
                raise StoreError(
                    f"the vector store at {self.path} does not match dim={dim} (a different "
                    f"vector size or distance): {msg}"
                ) from e
            raise StoreError(f"cannot open the vector store at {self.path}: {msg}") from e
        try:
            self._ensure_indexes()
            self._refresh_points()
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:
            self.close()
            if isinstance(e, StoreError):
                raise
            raise StoreError(f"cannot open the vector store at {self.path}: {e}") from e

    # ------------------------------------------------------------------ set-up

    def _ensure_indexes(self) -> None:
        shard = self._open_shard()
        try:
            have = set(shard.info().payload_schema)
            created = False
            for field, schema in _INDEXES.items():
                if field not in have:
                    shard.update(UpdateOperation.create_field_index(field, schema))
                    created = True
            if created:
                shard.flush()
        except Exception as e:
            raise StoreError(f"cannot create payload indexes in {self.path}: {e}") from e

    def _refresh_points(self) -> None:
        self._points = int(self._open_shard().info().points_count)

    def _exact_params(self) -> SearchParams:
        # Exact means the original vectors: without `ignore` a quantized store scans int8.
        ignore = QuantizationSearchParams(ignore=True) if self.quantized else None
        return SearchParams(exact=True, quantization=ignore)

    def _search_params(self, limit: int) -> SearchParams:
        if self._points <= self.exact_up_to:
            return self._exact_params()
        quantization = None
        if self.quantized:
            quantization = QuantizationSearchParams(rescore=self.rescore, oversampling=self.oversampling)
        ef = search_ef(self.hnsw_ef, self._points)
        return SearchParams(hnsw_ef=max(ef, limit), quantization=quantization)

    def _open_shard(self) -> EdgeShard:
        if self._shard is None:
            raise StoreError(f"the vector store at {self.path} is closed")
        return self._shard

    # ------------------------------------------------------------------ VectorStore

    def upsert(self, records: Sequence[ImageRecord]) -> None:
        points = []
        for r in records:
            image_id = canonical_id(r.image_id)
            vectors = named_vectors(image_id, r, self.dim, _edge_sparse, stats=self.summarises)
            payload = check_payload(image_id, r.payload)
            points.append(Point(id=image_id, vector=vectors, payload=payload))
        if not points:
            return
        with self._lock:
            shard = self._open_shard()
            try:
                for start in range(0, len(points), _BATCH):
                    shard.update(UpdateOperation.upsert_points(points[start : start + _BATCH]))
                shard.flush()
                self._refresh_points()
            except Exception as e:
                raise StoreError(f"upsert into {self.path} failed: {e}") from e

    def get(self, image_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        ids = canonical_ids(image_ids)
        if not ids:
            return {}
        with self._lock:
            shard = self._open_shard()
            try:
                records = shard.retrieve(ids, True, False)  # type: ignore[arg-type]
            except Exception as e:
                raise StoreError(f"retrieve from {self.path} failed: {e}") from e
        return {str(r.id): dict(r.payload or {}) for r in records}

    def search(
        self,
        vector: np.ndarray | Sequence[float],
        limit: int,
        *,
        exclude_minor: bool,
        filters: Mapping[str, str] | None = None,
        with_vectors: bool = True,
    ) -> list[StoreHit]:
        query = check_vector(vector, self.dim, "query")
        limit = check_limit(limit)
        if limit == 0:
            return []
        flt = _filter(exclude_minor, filters)
        with self._lock:
            shard = self._open_shard()
            request = QueryRequest(
                limit=limit,
                query=Query.Nearest(query, using=VECTOR_NAME),
                filter=flt,
                with_payload=True,
                with_vector=[VECTOR_NAME] if with_vectors else False,
                params=self._search_params(limit),
            )
            try:
                points = shard.query(request)
            except Exception as e:
                raise StoreError(f"search in {self.path} failed: {e}") from e
        return hits_from_points(points, with_vectors=with_vectors, dim=self.dim)

    def hybrid_search(
        self,
        vector: np.ndarray | Sequence[float],
        keywords: Keywords | None,
        limit: int,
        *,
        exclude_minor: bool,
        filters: Mapping[str, str] | None = None,
        with_image_vectors: bool = False,
    ) -> list[StoreHit]:
        query = check_vector(vector, self.dim, "query")
        sparse = check_keywords(keywords, "query")
        limit = check_limit(limit)
        if limit == 0:
            return []
        flt = _filter(exclude_minor, filters)
        with self._lock:
            shard = self._open_shard()
            params = self._search_params(limit)
            sources = [
                Query.Nearest(query, using=VECTOR_NAME),
                Query.Nearest([query], using=DESCRIPTIONS_VECTOR),
            ]
            if sparse is not None:
                sources.append(Query.Nearest(_edge_sparse(sparse), using=KEYWORDS_VECTOR))
            request = QueryRequest(
                limit=limit * len(sources),  # the union: no candidate list is cut
                prefetches=[
                    Prefetch(limit=limit, query=source, filter=flt, params=params)
                    for source in sources
                ],
                query=Fusion.Rrf(k=RRF_K),
                filter=flt,
                with_payload=True,
                with_vector=hybrid_vectors(with_image_vectors, summarised=self.summarises),
            )
            try:
                points = shard.query(request)
                # Under the same lock: the engine's scores of the same points.
                scores = self._scores(shard, candidate_score_queries(query, summarised=self.summarises),
                                      [p.id for p in points])
            except Exception as e:
                raise StoreError(f"hybrid search in {self.path} failed: {e}") from e
        summaries = summaries_of(*scores[1:]) if self.summarises else None
        return hybrid_hits(points, scores[0], with_image_vectors=with_image_vectors, dim=self.dim,
                           summaries=summaries)

    def _scores(self, shard: EdgeShard, queries: list[tuple[Any, str]], ids: list[Any],
                ) -> list[dict[str, float]]:
        """For each (query, vector name): id -> its exact score against that vector of each of
        `ids` that has one, on the original vectors. The searches, restricted to `ids`, go to
        the engine as one batch: planned together, four of them (image cosines and the
        descriptions' best, mean and count) for 80 candidates took 1.7 ms against 3.9 one by one
        (docs/benchmarks.md, seventh pass)."""
        if not ids:
            return [{} for _ in queries]
        restricted = Filter(must=[HasIdCondition(set(ids))])
        responses = shard.query_batch(QueryBatchRequest([
            QueryRequest(limit=len(ids), query=Query.Nearest(query, using=using), filter=restricted,
                         with_payload=False, with_vector=False, params=self._exact_params())
            for query, using in queries
        ]))
        return [{str(p.id): float(p.score) for p in points} for points in responses]

    def delete(self, image_ids: Sequence[str]) -> int:
        ids = canonical_ids(image_ids)
        if not ids:
            return 0
        with self._lock:
            shard = self._open_shard()
            try:
                existing = [str(r.id) for r in shard.retrieve(ids, False, False)]  # type: ignore[arg-type]
                if existing:
                    shard.update(UpdateOperation.delete_points(existing))  # type: ignore[arg-type]
                    shard.flush()
                    self._refresh_points()
            except Exception as e:
                raise StoreError(f"delete from {self.path} failed: {e}") from e
        return len(existing)

    def ids_for_uris(self, uris: Sequence[str]) -> list[str]:
        wanted = check_uris(uris)
        if not wanted:
            return []
        pairs: list[tuple[str, dict[str, Any]]] = []
        flt = Filter(should=[FieldCondition(key=key, match=MatchAny(any=wanted))
                             for key in ("uri", URIS_KEY)])
        with self._lock:
            shard = self._open_shard()
            offset: Any = None
            try:
                while True:
                    records, offset = shard.scroll(
                        ScrollRequest(
                            offset=offset, limit=_BATCH, filter=flt,
                            with_payload=["uri", URIS_KEY], with_vector=False,
                        )
                    )
                    pairs += [(str(r.id), dict(r.payload or {})) for r in records]
                    if offset is None:
                        break
            except Exception as e:
                raise StoreError(f"scroll in {self.path} failed: {e}") from e
        return order_ids_by_uri(pairs, wanted)

    def set_payloads(self, payloads: Mapping[str, Mapping[str, Any]]) -> None:
        """Replaces the payloads of existing points (their vectors stay)."""
        checked = {canonical_id(i): check_payload(i, p) for i, p in payloads.items()}
        if not checked:
            return
        with self._lock:
            shard = self._open_shard()
            try:
                for image_id, payload in checked.items():
                    shard.update(UpdateOperation.overwrite_payload([image_id], payload))  # type: ignore[list-item]
                shard.flush()
            except Exception as e:
                raise StoreError(f"payload update in {self.path} failed: {e}") from e

    def count(self, *, minor: bool | None = None) -> int:
        with self._lock:
            shard = self._open_shard()
            try:
                total = shard.count(CountRequest(exact=True))
                if minor is None:
                    return int(total)
                minors = shard.count(CountRequest(exact=True, filter=Filter(must=[_MINOR_IS_TRUE])))
            except Exception as e:
                raise StoreError(f"count in {self.path} failed: {e}") from e
        # "not minor" is everything the exclude_minor filter lets through.
        return int(minors) if minor else int(total - minors)

    def optimize(self) -> None:
        """Run Qdrant's optimizers now (merges segments, builds HNSW); blocks until done."""
        with self._lock:
            shard = self._open_shard()
            try:
                shard.optimize()
                shard.flush()
            except Exception as e:
                raise StoreError(f"optimize of {self.path} failed: {e}") from e

    def close(self) -> None:
        """Flush and release the folder. Idempotent; any later call raises StoreError."""
        with self._lock:
            shard, self._shard = self._shard, None
            if shard is None:
                return
            try:
                shard.flush()
            finally:
                shard.close()

    # ------------------------------------------------------------------ extras

    def points(
        self, image_ids: Sequence[str] | None = None, *, minor: bool | None = None
    ) -> dict[str, tuple[dict[str, Any], Any]]:
        """id -> (payload, vectors) exactly as the engine returns them: the given ids, or every
        point (with `minor`: only those the payload index says have that flag)."""
        with self._lock:
            shard = self._open_shard()
            try:
                if image_ids is not None:
                    ids = canonical_ids(image_ids)
                    records = shard.retrieve(ids, True, True) if ids else []  # type: ignore[arg-type]
                else:
                    records = self._scroll_all(shard, minor)
            except Exception as e:
                raise StoreError(f"reading points of {self.path} failed: {e}") from e
        return {str(r.id): (dict(r.payload or {}), r.vector) for r in records}

    def scan(self, batch: int = _BATCH) -> Iterator[list[tuple[str, dict[str, Any], Any]]]:
        """Every point as pages of (id, payload, vectors), each page read under the lock, so
        that a million points never sit in memory at once (verification at start-up)."""
        offset: Any = None
        while True:
            with self._lock:
                shard = self._open_shard()
                try:
                    records, offset = shard.scroll(ScrollRequest(
                        offset=offset, limit=batch, with_payload=True, with_vector=True))
                except Exception as e:
                    raise StoreError(f"reading points of {self.path} failed: {e}") from e
            yield [(str(r.id), dict(r.payload or {}), r.vector) for r in records]
            if offset is None:
                return

    def ids(self, *, minor: bool | None = None) -> set[str]:
        """The ids of every point (with `minor`: those the payload index says have that flag)."""
        with self._lock:
            shard = self._open_shard()
            try:
                return {str(r.id) for r in self._scroll_all(shard, minor, payload=False)}
            except Exception as e:
                raise StoreError(f"reading ids of {self.path} failed: {e}") from e

    @staticmethod
    def _scroll_all(shard: EdgeShard, minor: bool | None, *, payload: bool | None = None) -> list[Any]:
        flt = None
        if minor is not None:
            flt = Filter(must=[_MINOR_IS_TRUE]) if minor else Filter(must_not=[_MINOR_IS_TRUE])
        records: list[Any] = []
        offset: Any = None
        while True:
            full = minor is None if payload is None else payload
            batch, offset = shard.scroll(ScrollRequest(
                offset=offset, limit=_BATCH, filter=flt, with_payload=full, with_vector=full,
            ))
            records += batch
            if offset is None:
                return records

    @property
    def searches_exactly(self) -> bool:
        """Whether a search now is exact (few points) rather than HNSW."""
        return self._points <= self.exact_up_to

    def indexed_vectors_count(self) -> int:
        """How many vectors are in HNSW-indexed segments (0 before `optimize` or when small)."""
        with self._lock:
            return int(self._open_shard().info().indexed_vectors_count)

    def __enter__(self) -> EdgeStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._shard is None else "open"
        return f"EdgeStore(path={str(self.path)!r}, dim={self.dim}, {state})"


__all__ = ["EdgeStore"]
