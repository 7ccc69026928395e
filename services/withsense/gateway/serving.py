"""The gateway's serving logic: search with compliance, indexing, deletion, stats.

Search flow: validate -> region rules -> query policy (lexicon) -> embed the query in the
worker -> semantic policy -> oversampled candidates from the store (flagged photos filtered in
the engine when they are to be dropped) -> exact calibrated rescoring in the worker -> withhold
flagged photos in restricted regions -> top k. Every decision is audit-logged with its reason.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import numpy as np

from withsense.compliance import audit_log
from withsense.compliance.photo_flags import (
    FLAG_FIELDS,
    VisualCheck,
    operating_threshold,
    photo_flags,
    withheld_reason,
)
from withsense.config import GatewaySettings
from withsense.gateway.compliance_gate import ComplianceGate, RegionDecision
from withsense.gateway.errors import DeadlineExceeded, GatewayError, InvalidArgument, Unavailable
from withsense.gateway.metrics import METRICS
from withsense.gateway.protocol import IndexItem, SearchParams
from withsense.gateway.worker_client import EmbeddedImages, WorkerClient
from withsense.store import ImageRecord, StoreError, StoreHit, VectorStore, point_id_for

log = logging.getLogger(__name__)
T = TypeVar("T")
INDEX_CHUNK = 16


@dataclass(frozen=True)
class Hit:
    image_id: str
    uri: str
    score: float
    withheld: bool = False
    reason: str = ""


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    blocked: bool
    reason: str
    model_version: str
    restricted: bool
    disclaimer: str = ""


@dataclass
class IndexSummary:
    indexed: int = 0
    unchanged: int = 0
    flagged: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    image_ids: list[str] = field(default_factory=list)
    flags_changed: int = 0
    flagged_by_description: int = 0
    flagged_by_sight: int = 0


class SearchEngine:
    def __init__(self, settings: GatewaySettings, store: VectorStore, worker: WorkerClient,
                 gate: ComplianceGate) -> None:
        self.settings = settings
        self.store = store
        self.worker = worker
        self.gate = gate
        self.model_version = ""
        self.visual = VisualCheck(version="", threshold=None)  # none until start(): withhold

    async def start(self) -> None:
        """Asks the worker for the model and embeds the child-concept prototypes once."""
        info = await self.worker.model_info()
        if info.dim != self.store.dim:
            raise GatewayError(
                f"the worker's model gives {info.dim}-d vectors but the store holds {self.store.dim}-d"
            )
        self.model_version = info.model_version
        vectors, _ = await self.worker.embed_texts(self.gate.prototype_texts())
        model_threshold = (info.semantic_child_threshold
                           if info.HasField("semantic_child_threshold") else None)
        threshold = self.gate.set_prototypes(vectors, model_threshold)
        log.info("semantic child-query threshold %.3f", threshold)
        self.visual = self._visual_check(info)

    def _visual_check(self, info: Any) -> VisualCheck:
        """The visual minor detector in force: the worker's, at the configured operating point
        (WITHSENSE_MINOR_THRESHOLD, else WITHSENSE_MINOR_RECALL_TARGET on the artifact's curve,
        else the artifact's threshold). A model without one: every indexed photo is withheld."""
        if not info.minor_detector_version:
            log.warning("the worker's model has no visual minor detector: every photo indexed "
                        "now is flagged minor (withheld in restricted regions)")
            return VisualCheck(version="", threshold=None)
        curve = json.loads(info.minor_curve_json or "[]")
        default = info.minor_threshold if info.HasField("minor_threshold") else None
        try:
            threshold = operating_threshold(default, curve,
                                            recall_target=self.settings.minor_recall_target,
                                            threshold=self.settings.minor_threshold)
        except ValueError as exc:
            raise GatewayError(str(exc)) from None
        log.info("visual minor detector %s, threshold %s", info.minor_detector_version, threshold)
        return VisualCheck(version=info.minor_detector_version, threshold=threshold)

    async def _store_call(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        try:
            return await asyncio.wait_for(
                asyncio.to_thread(fn, *args, **kwargs), self.settings.store_timeout_s
            )
        except TimeoutError:
            raise DeadlineExceeded(
                f"vector store ({self.store.backend}) did not answer within "
                f"{self.settings.store_timeout_s} s"
            ) from None
        except StoreError as exc:
            raise Unavailable(f"vector store ({self.store.backend}): {exc}") from None

    # --- search -----------------------------------------------------------------------------

    async def search(self, params: SearchParams) -> SearchResult:
        region = self.gate.region(params.region)
        if region.restricted:
            decision = self.gate.policy.check(params.query)
            if decision.blocked:
                return self._blocked(params, region, decision.rule)
        query_vectors, version = await self.worker.embed_texts([params.query])
        self.model_version = version or self.model_version
        query = query_vectors[0]
        if region.restricted:
            decision = self.gate.policy.check(params.query, embedding=query)
            if decision.blocked:
                return self._blocked(params, region, decision.rule)
        drop_flagged = region.restricted and self.settings.withheld_mode == "drop"
        candidates: list[StoreHit] = await self._store_call(
            self.store.search, query, params.top_k * self.settings.oversample,
            exclude_minor=drop_flagged, filters=params.filters or None, with_vectors=True,
        )
        hits = await self._rescore(query, candidates, params, region)
        withheld = sum(hit.withheld for hit in hits)
        reason = f"query allowed; {region.describe()}; {withheld} of {len(hits)} hits withheld"
        if drop_flagged:
            reason += "; flagged photos dropped"
        audit_log("search", decision="allowed", rule="allowed", region=region.region,
                  query=params.query, hits=len(hits), withheld=withheld,
                  withheld_by_description=sum("description" in h.reason for h in hits),
                  withheld_by_pixels=sum("pixels" in h.reason for h in hits))
        METRICS.searches.labels(outcome="allowed").inc()
        return SearchResult(hits=hits, blocked=False, reason=reason, model_version=self.model_version,
                            restricted=region.restricted,
                            disclaimer=self.gate.disclaimer if withheld else "")

    def _blocked(self, params: SearchParams, region: RegionDecision, rule: str) -> SearchResult:
        audit_log("search", decision="blocked", rule=rule, region=region.region, query=params.query)
        METRICS.searches.labels(outcome="blocked").inc()
        return SearchResult(
            hits=[], blocked=True, reason=f"query blocked by {rule}; {region.describe()}",
            model_version=self.model_version, restricted=True, disclaimer=self.gate.disclaimer,
        )

    async def _rescore(self, query: np.ndarray, candidates: list[StoreHit], params: SearchParams,
                       region: RegionDecision) -> list[Hit]:
        if not candidates:
            return []
        vectors = np.stack([c.vector for c in candidates if c.vector is not None])
        probabilities = await self.worker.score(query, vectors)
        order = np.argsort(-probabilities, kind="stable")
        hits: list[Hit] = []
        for index in order:
            candidate, probability = candidates[index], float(probabilities[index])
            if probability < params.min_score or len(hits) == params.top_k:
                break
            hits.append(self._hit(candidate, probability, region))
        return hits

    def _hit(self, candidate: StoreHit, probability: float, region: RegionDecision) -> Hit:
        if region.restricted and candidate.payload.get("minor", True):
            # Only the disclaimer leaves the service: no id, no uri.
            return Hit(image_id="", uri="", score=probability, withheld=True,
                       reason=f"photo {withheld_reason(candidate.payload)}; {region.describe()}")
        return Hit(image_id=candidate.image_id, uri=str(candidate.payload.get("uri", "")),
                   score=probability)

    # --- indexing ---------------------------------------------------------------------------

    async def index(self, items: AsyncIterator[IndexItem | tuple[str, str]]) -> IndexSummary:
        """Indexes a stream; an item that fails validation arrives as (name, reason)."""
        summary = IndexSummary()
        # The worker may have been restarted with another artifact: flags follow its detector.
        self.visual = self._visual_check(await self.worker.model_info())
        chunk: list[IndexItem] = []
        async for item in items:
            if isinstance(item, tuple):
                summary.failures.append(item)
                continue
            chunk.append(item)
            if len(chunk) == INDEX_CHUNK:
                await self._index_chunk(chunk, summary)
                chunk = []
        if chunk:
            await self._index_chunk(chunk, summary)
        if summary.indexed:
            await self._store_call(self.store.optimize)
        METRICS.indexed.inc(summary.indexed)
        return summary

    async def _index_chunk(self, chunk: list[IndexItem], summary: IndexSummary) -> None:
        ids = [point_id_for(item.image) for item in chunk]
        existing = await self._store_call(self.store.get, ids)
        todo: list[tuple[str, IndexItem, dict[str, Any]]] = []
        for image_id, item in zip(ids, chunk, strict=True):
            payload = _payload(item)
            summary.image_ids.append(image_id)
            if self._up_to_date(existing.get(image_id), payload):
                summary.unchanged += 1
            else:
                todo.append((image_id, item, payload))
        if not todo:
            return
        embedded = await self._embed_each([item for _, item, _ in todo], summary)
        previous = await self._previous_at_uris([payload["uri"] for _, _, payload in todo])
        records = []
        for (image_id, _, payload), result in zip(todo, embedded, strict=True):
            if result is None:
                continue
            vector, p = result
            stored = existing.get(image_id)
            payload.update(photo_flags(
                payload["descriptions"], p, self.visual, content_hash=payload["content_hash"],
                stored=[stored, *previous.get(payload["uri"], [])]))
            records.append(ImageRecord(image_id, vector, payload))
            self._count_flags(payload, stored, summary)
        await self._replace_moved_uris(records)
        await self._store_call(self.store.upsert, records)
        summary.indexed += len(records)
        for record in records:
            flags = record.payload
            audit_log("index", decision="flagged" if flags["minor"] else "clear",
                      rule="; ".join(flags["flag_reasons"]) or "no child terms; pixels below threshold",
                      image_id=record.image_id, minor_text=flags["minor_text"],
                      minor_visual=flags["minor_visual"], minor_p=flags["minor_p"],
                      minor_model=flags["minor_model"])

    def _up_to_date(self, stored: dict[str, Any] | None, payload: dict[str, Any]) -> bool:
        """Same photo, descriptions and fields, flagged by the detector and threshold in force."""
        if stored is None or not self.visual.current(stored):
            return False
        own = {k: v for k, v in stored.items() if k not in FLAG_FIELDS}
        return own == payload

    @staticmethod
    def _count_flags(payload: dict[str, Any], stored: dict[str, Any] | None,
                     summary: IndexSummary) -> None:
        summary.flagged += bool(payload["minor"])
        summary.flagged_by_description += bool(payload["minor_text"])
        summary.flagged_by_sight += bool(payload["minor_visual"])
        if stored is not None and bool(stored.get("minor", True)) != bool(payload["minor"]):
            summary.flags_changed += 1

    async def _previous_at_uris(self, uris: list[str]) -> dict[str, list[dict[str, Any]]]:
        """uri -> payloads of the photos indexed under it before (their description flags
        carry over to new content at the same uri)."""
        ids = await self._store_call(self.store.ids_for_uris, uris)
        if not ids:
            return {}
        by_uri: dict[str, list[dict[str, Any]]] = {}
        for payload in (await self._store_call(self.store.get, ids)).values():
            by_uri.setdefault(str(payload.get("uri", "")), []).append(payload)
        return by_uri

    async def _embed_each(self, items: list[IndexItem], summary: IndexSummary,
                          ) -> list[tuple[np.ndarray, float | None] | None]:
        """(vector, p(child) or None) per photo, None for a bad photo: one worker call for the
        chunk; if a photo is bad, one call each to find which."""
        try:
            return _per_photo(await self.worker.embed_images([item.image for item in items]))
        except InvalidArgument:
            pass
        results: list[tuple[np.ndarray, float | None] | None] = []
        for item in items:
            try:
                results.append(_per_photo(await self.worker.embed_images([item.image]))[0])
            except InvalidArgument as exc:
                summary.failures.append((item.uri, _strip_item_prefix(str(exc))))
                results.append(None)
        return results

    async def _replace_moved_uris(self, records: list[ImageRecord]) -> None:
        """A file whose content changed keeps its uri: drop the old content's point."""
        uris = [r.payload["uri"] for r in records]
        old = await self._store_call(self.store.ids_for_uris, uris)
        new_ids = {r.image_id for r in records}
        stale = [image_id for image_id in old if image_id not in new_ids]
        if stale:
            await self._store_call(self.store.delete, stale)

    # --- deletion and stats -----------------------------------------------------------------

    async def delete(self, image_ids: list[str], uris: list[str]) -> int:
        ids = list(image_ids)
        if uris:
            ids += await self._store_call(self.store.ids_for_uris, uris)
        if not ids:
            return 0
        try:
            deleted = await self._store_call(self.store.delete, list(dict.fromkeys(ids)))
        except Unavailable as exc:
            raise InvalidArgument(f"image_ids: {exc}") from None
        audit_log("delete", decision="deleted", rule="client request", count=deleted)
        return deleted

    async def stats(self) -> dict[str, Any]:
        images = await self._store_call(self.store.count)
        flagged = await self._store_call(self.store.count, minor=True)
        return {"images": images, "flagged": flagged, "store_backend": self.store.backend,
                "model_version": self.model_version,
                "restricted_regions": list(self.settings.restricted_regions)}


def _payload(item: IndexItem) -> dict[str, Any]:
    """The photo's own fields; its flags (``photo_flags``) are added once it is embedded."""
    return {
        **item.payload,
        "uri": item.uri,
        "descriptions": list(item.descriptions),
        "content_hash": hashlib.sha256(item.image).hexdigest(),
    }


def _per_photo(embedded: EmbeddedImages) -> list[tuple[np.ndarray, float | None]]:
    """(vector, p) per photo; p None for every photo when the worker gave no probabilities."""
    minor = embedded.minor
    return [(vector, None if minor is None else float(minor[i]))
            for i, vector in enumerate(embedded.vectors)]


def _strip_item_prefix(message: str) -> str:
    # The worker names the item by its position in the call ("images[0] ..."); the indexer
    # names it by uri, so keep only the reason.
    return message.split(": ", 1)[1] if message.startswith("images[") and ": " in message else message


