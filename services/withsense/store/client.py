"""qdrant-client backend: a Qdrant server or cluster by URL (gRPC preferred), or qdrant-client's
local mode (`location=":memory:"` or `path=`), which the tests use.

Local mode keeps everything in Python (exact search, payload indexes have no effect) and is
not thread-safe, so calls are serialised by a lock there; the remote client is thread-safe
and is called without one.
"""

from __future__ import annotations

import contextlib
import logging
import threading
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import numpy as np
from qdrant_client import QdrantClient, models

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

_BATCH = 256
# How old the collection's size may get before a search counts it again (see _collection_size).
POINTS_MAX_AGE_S = 30.0
log = logging.getLogger(__name__)
_MINOR_IS_TRUE = models.FieldCondition(key="minor", match=models.MatchValue(value=True))
_INDEXES = {field: models.PayloadSchemaType(kind) for field, kind in PAYLOAD_INDEXES.items()}


def _sparse(keywords: Keywords) -> models.SparseVector:
    return models.SparseVector(indices=list(keywords.indices), values=list(keywords.values))


def _filter(exclude_minor: bool, filters: Mapping[str, str] | None) -> models.Filter | None:
    must: list[models.Condition] = [
        models.FieldCondition(key=k, match=models.MatchValue(value=v))
        for k, v in check_filters(filters)
    ]
    must_not: list[models.Condition] = [_MINOR_IS_TRUE] if exclude_minor else []
    if not must and not must_not:
        return None
    return models.Filter(must=must or None, must_not=must_not or None)


class QdrantClientStore:
    """`VectorStore` over `qdrant_client.QdrantClient` and one collection.

    Give exactly one of `url` (server/cluster), `location` (":memory:") or `path` (local mode,
    persisted in that folder). The collection is created when absent (cosine, named vector
    "image", payload indexes on `minor` and `uri`); an existing one must have the same dim.
    A new collection gets the HNSW graph, int8 quantization and vector placement of
    `settings` (`StoreSettings`, from the environment when not given); an existing one keeps
    its own. On a server, searches use HNSW with `ef = max(search_ef(hnsw_ef, size), limit)`
    (0: ef grows with the collection's size, counted again every POINTS_MAX_AGE_S; the
    server's own default gave recall@100 of only 0.35 on random 384-d data in Qdrant Edge),
    int8 candidates rescored as `settings` say; the server scans small collections itself
    (its full_scan_threshold). Local mode always searches exactly.
    """

    backend = "qdrant-client"

    def __init__(
        self,
        url: str | None = None,
        *,
        location: str | None = None,
        path: str | None = None,
        collection: str,
        dim: int,
        api_key: str | None = None,
        prefer_grpc: bool = True,
        timeout: int = 10,
        settings: StoreSettings | None = None,
        hnsw_ef: int | None = None,
    ) -> None:
        if isinstance(dim, bool) or not isinstance(dim, int) or dim <= 0:
            raise StoreError(f"dim must be a positive int, got {dim!r}")
        if not collection:
            raise StoreError("collection name must not be empty")
        given = [name for name, v in (("url", url), ("location", location), ("path", path)) if v]
        if len(given) != 1:
            raise StoreError(f"give exactly one of url, location or path (got {given or 'none'})")
        self.settings = settings or StoreSettings()
        self.dim = dim
        self.hnsw_ef = self.settings.store_hnsw_ef if hnsw_ef is None else hnsw_ef
        self.collection = collection
        self.local = bool(path) or location == ":memory:"
        self._points, self._points_at = 0, 0.0  # the collection's size and when it was counted
        self.where = url or location or str(path)
        self._lock: threading.RLock | None = threading.RLock() if self.local else None
        try:
            if url:
                self._client: QdrantClient | None = QdrantClient(
                    url=url, api_key=api_key or None, prefer_grpc=prefer_grpc, timeout=timeout
                )
            elif path:
                self._client = QdrantClient(path=str(path))
            else:
                self._client = QdrantClient(location=location)
        except Exception as e:
            raise StoreError(f"cannot open Qdrant at {self.where}: {e}") from e
        try:
            self._ensure_collection()
        except Exception:
            self.close()
            raise

    # ------------------------------------------------------------------ set-up

    @contextlib.contextmanager
    def _call(self, what: str) -> Iterator[QdrantClient]:
        """The client, under the lock in local mode; backend errors become StoreError."""
        with self._lock if self._lock is not None else contextlib.nullcontext():
            if self._client is None:
                raise StoreError(f"the store {self.collection!r} at {self.where} is closed")
            try:
                yield self._client
            except StoreError:
                raise
            except Exception as e:
                raise StoreError(
                    f"{what} on collection {self.collection!r} at {self.where} failed: {e}"
                ) from e

    def _ensure_collection(self) -> None:
        with self._call("opening the collection") as client:
            if not client.collection_exists(self.collection):
                self._create_collection(client)
            info = client.get_collection(self.collection)
            self._points, self._points_at = int(info.points_count or 0), time.monotonic()
            vectors = info.config.params.vectors
            params = vectors.get(VECTOR_NAME) if isinstance(vectors, dict) else None
            if params is None:
                raise StoreError(
                    f"collection {self.collection!r} at {self.where} has no vector named "
                    f"{VECTOR_NAME!r}: it was not made by With Sense; use another collection"
                )
            if params.size != self.dim:
                raise StoreError(
                    f"collection {self.collection!r} at {self.where} holds {params.size}-d "
                    f"vectors but dim={self.dim} was asked for (another model?): use another "
                    "collection or re-index"
                )
            if params.distance != models.Distance.COSINE:
                raise StoreError(
                    f"collection {self.collection!r} at {self.where} uses {params.distance} "
                    "distance, not Cosine"
                )
            sparse = info.config.params.sparse_vectors or {}
            if DESCRIPTIONS_VECTOR not in vectors or KEYWORDS_VECTOR not in sparse:
                raise StoreError(old_schema_message(f"{self.where}, collection {self.collection!r}"))
            # A collection made before the descriptions' summary existed is searched as
            # before, with the description rows taken out (a vector cannot be added to it).
            self.summarises = DESCRIPTION_STATS_VECTOR in vectors
            if self.local:
                return  # payload indexes have no effect in local mode (it warns if asked)
            have = set(info.payload_schema or {})
            for field, schema in _INDEXES.items():
                if field not in have:
                    with warnings.catch_warnings():
                        warnings.simplefilter("ignore")
                        client.create_payload_index(
                            self.collection, field, field_schema=schema, wait=True
                        )

    def _create_collection(self, client: QdrantClient) -> None:
        """Image vector, description multivector (MaxSim), the descriptions' summary
        (DESCRIPTION_STATS_VECTOR: Dot, no graph, only ever scored exactly), keyword sparse
        vector (IDF), with the index of `self.settings` (local mode ignores the index and warns
        about it)."""
        settings, on_disk = self.settings, self.settings.store_vectors_on_disk
        quantization = None
        if settings.quantized:
            quantization = models.ScalarQuantization(scalar=models.ScalarQuantizationConfig(
                type=models.ScalarType.INT8, quantile=settings.store_quantization_quantile,
                always_ram=settings.store_quantization_always_ram,
            ))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            client.create_collection(
                self.collection,
                vectors_config={
                    VECTOR_NAME: models.VectorParams(
                        size=self.dim, distance=models.Distance.COSINE, on_disk=on_disk
                    ),
                    DESCRIPTIONS_VECTOR: models.VectorParams(
                        size=self.dim,
                        distance=models.Distance.COSINE,
                        on_disk=on_disk,
                        multivector_config=models.MultiVectorConfig(
                            comparator=models.MultiVectorComparator.MAX_SIM
                        ),
                    ),
                    DESCRIPTION_STATS_VECTOR: models.VectorParams(  # scored exactly, ~100 a search
                        size=self.dim + 1,
                        distance=models.Distance.DOT,
                        on_disk=True,
                        hnsw_config=models.HnswConfigDiff(m=0),
                    ),
                },
                sparse_vectors_config={
                    KEYWORDS_VECTOR: models.SparseVectorParams(modifier=models.Modifier.IDF)
                },
                hnsw_config=models.HnswConfigDiff(
                    m=settings.store_hnsw_m, ef_construct=settings.store_hnsw_ef_construct
                ),
                quantization_config=quantization,
            )

    # ------------------------------------------------------------------ VectorStore

    def upsert(self, records: Sequence[ImageRecord]) -> None:
        points = []
        for r in records:
            image_id = canonical_id(r.image_id)
            vectors = named_vectors(image_id, r, self.dim, _sparse, stats=self.summarises)
            payload = check_payload(image_id, r.payload)
            points.append(models.PointStruct(id=image_id, vector=vectors, payload=payload))
        if not points:
            return
        with self._call("upsert") as client:
            for start in range(0, len(points), _BATCH):
                client.upsert(self.collection, points[start : start + _BATCH], wait=True)

    def get(self, image_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        ids = canonical_ids(image_ids)
        if not ids:
            return {}
        with self._call("retrieve") as client:
            records = client.retrieve(self.collection, ids, with_payload=True, with_vectors=False)
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
        with self._call("search") as client:
            response = client.query_points(
                self.collection,
                query=query,
                using=VECTOR_NAME,
                query_filter=flt,
                limit=limit,
                with_payload=True,
                with_vectors=[VECTOR_NAME] if with_vectors else False,
                search_params=self._search_params(client, limit),
            )
        return hits_from_points(response.points, with_vectors=with_vectors, dim=self.dim)

    def _search_params(self, client: QdrantClient, limit: int) -> models.SearchParams | None:
        if self.local:
            return None
        quantization = None
        if self.settings.quantized:
            quantization = models.QuantizationSearchParams(
                rescore=self.settings.store_quantization_rescore,
                oversampling=self.settings.store_quantization_oversampling,
            )
        ef = search_ef(self.hnsw_ef, self._collection_size(client))
        return models.SearchParams(hnsw_ef=max(ef, limit), quantization=quantization)

    def _collection_size(self, client: QdrantClient) -> int:
        """The collection's size as estimated at most POINTS_MAX_AGE_S ago: it sizes the
        search's ef (config.store.search_ef), where the order of magnitude is what counts.
        Other gateways write to a shared server collection, so the estimate is renewed by age,
        not by this gateway's writes; a failed count keeps the last estimate (the search's own
        call reports a failing server)."""
        now = time.monotonic()
        if now - self._points_at > POINTS_MAX_AGE_S:
            self._points_at = now
            try:
                self._points = int(client.count(self.collection, exact=False).count)
            except Exception as e:  # noqa: BLE001 - an estimate: the last one serves
                log.warning("counting collection %r at %s failed (%s): ef from the last count, "
                            "%d points", self.collection, self.where, e, self._points)
        return self._points

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
        sources: list[tuple[Any, str]] = [(query, VECTOR_NAME), ([query], DESCRIPTIONS_VECTOR)]
        if sparse is not None:
            sources.append((_sparse(sparse), KEYWORDS_VECTOR))
        with self._call("hybrid search") as client:
            params = self._search_params(client, limit)
            response = client.query_points(
                self.collection,
                prefetch=[
                    models.Prefetch(query=q, using=using, filter=flt, limit=limit, params=params)
                    for q, using in sources
                ],
                query=models.RrfQuery(rrf=models.Rrf(k=RRF_K)),
                query_filter=flt,
                limit=limit * len(sources),  # the union: no candidate list is cut
                with_payload=True,
                with_vectors=hybrid_vectors(with_image_vectors, summarised=self.summarises),
            )
            scores = self._scores(client, candidate_score_queries(query, summarised=self.summarises),
                                  [p.id for p in response.points])
        summaries = summaries_of(*scores[1:]) if self.summarises else None
        return hybrid_hits(response.points, scores[0], with_image_vectors=with_image_vectors,
                           dim=self.dim, summaries=summaries)

    def _scores(self, client: QdrantClient, queries: list[tuple[Any, str]], ids: list[Any],
                ) -> list[dict[str, float]]:
        """For each (query, vector name): id -> its exact score against that vector of each of
        `ids` that has one (searches restricted to them, on the original vectors, in one
        request): the image cosines, and the descriptions' best, mean and count. A point
        deleted in between is missing: the gateway then leaves that candidate out."""
        if not ids:
            return [{} for _ in queries]
        exact = None  # local mode always searches exactly and warns about search_params
        if not self.local:
            ignore = models.QuantizationSearchParams(ignore=True) if self.settings.quantized else None
            exact = models.SearchParams(exact=True, quantization=ignore)
        restricted = models.Filter(must=[models.HasIdCondition(has_id=ids)])
        responses = client.query_batch_points(self.collection, [
            models.QueryRequest(query=query, using=using, filter=restricted, limit=len(ids),
                                with_payload=False, with_vector=False, params=exact)
            for query, using in queries
        ])
        return [{str(p.id): float(p.score) for p in response.points} for response in responses]

    def delete(self, image_ids: Sequence[str]) -> int:
        ids = canonical_ids(image_ids)
        if not ids:
            return 0
        with self._call("delete") as client:
            existing = [
                str(r.id)
                for r in client.retrieve(
                    self.collection, ids, with_payload=False, with_vectors=False
                )
            ]
            if existing:
                client.delete(
                    self.collection,
                    points_selector=models.PointIdsList(points=list(existing)),
                    wait=True,
                )
        return len(existing)

    def ids_for_uris(self, uris: Sequence[str]) -> list[str]:
        wanted = check_uris(uris)
        if not wanted:
            return []
        flt = models.Filter(should=[
            models.FieldCondition(key=key, match=models.MatchAny(any=wanted))
            for key in ("uri", URIS_KEY)
        ])
        pairs: list[tuple[str, dict[str, Any]]] = []
        with self._call("scroll") as client:
            offset: Any = None
            while True:
                records, offset = client.scroll(
                    self.collection,
                    scroll_filter=flt,
                    limit=_BATCH,
                    offset=offset,
                    with_payload=["uri", URIS_KEY],
                    with_vectors=False,
                )
                pairs += [(str(r.id), dict(r.payload or {})) for r in records]
                if offset is None:
                    break
        return order_ids_by_uri(pairs, wanted)

    def set_payloads(self, payloads: Mapping[str, Mapping[str, Any]]) -> None:
        """Replaces the payloads of existing points (their vectors stay)."""
        checked = {canonical_id(i): check_payload(i, p) for i, p in payloads.items()}
        with self._call("set payload") as client:
            for image_id, payload in checked.items():
                client.overwrite_payload(self.collection, payload, points=[image_id], wait=True)

    def count(self, *, minor: bool | None = None) -> int:
        with self._call("count") as client:
            total = client.count(self.collection, exact=True).count
            if minor is None:
                return int(total)
            minors = client.count(
                self.collection, count_filter=models.Filter(must=[_MINOR_IS_TRUE]), exact=True
            ).count
        # "not minor" is everything the exclude_minor filter lets through.
        return int(minors) if minor else int(total - minors)

    def optimize(self) -> None:
        """No-op: the server builds its HNSW index itself; local mode searches exactly."""
        with self._call("optimize"):
            return

    def close(self) -> None:
        """Release the client (and, in local mode, the folder lock). Idempotent."""
        with self._lock if self._lock is not None else contextlib.nullcontext():
            client, self._client = self._client, None
            if client is not None:
                with contextlib.suppress(Exception):
                    client.close()

    # ------------------------------------------------------------------ extras

    def __enter__(self) -> QdrantClientStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        state = "closed" if self._client is None else "open"
        return (
            f"QdrantClientStore(where={self.where!r}, collection={self.collection!r}, "
            f"dim={self.dim}, {state})"
        )


__all__ = ["QdrantClientStore"]
