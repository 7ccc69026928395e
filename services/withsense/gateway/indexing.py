"""Writing photos to the store: indexing (chunks prepared ahead, committed in order) and deletion.

A photo (one content) is one point with every uri it was sent under. Indexing embeds new
photos and their descriptions in the worker, makes their thumbnails, flags photos that show or
describe a child (``photo_flags``) and writes them; a photo already stored only has its payload
updated. Deletion takes photos, or uris off photos, and their thumbnails away.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
from collections.abc import AsyncIterator, Iterable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from withsense.compliance import audit_log
from withsense.compliance.photo_flags import FLAG_FIELDS, VisualCheck, operating_threshold, photo_flags
from withsense.config import GatewaySettings
from withsense.config.defaults import MAX_MESSAGE_BYTES
from withsense.gateway.errors import GatewayError, InvalidArgument, Unavailable
from withsense.gateway.index_pipeline import OrderedPipeline, chunks
from withsense.gateway.metrics import METRICS
from withsense.gateway.protocol import IndexItem
from withsense.gateway.store_access import StoreAccess
from withsense.gateway.worker_client import EmbeddedImages, WorkerClient
from withsense.keywords import document_vector
from withsense.store import ImageRecord, StoreError, point_id_for
from withsense.store.base import URIS_KEY, canonical_ids, uris_of
from withsense.thumbnails import ThumbnailStore, make_thumbnail

log = logging.getLogger(__name__)
INDEX_CHUNK = 16
# Photos of one worker call, in bytes: half the message limit leaves room for the framing, so
# four valid 18 MB photos go in two calls instead of failing as one 72 MB message.
INDEX_CHUNK_BYTES = MAX_MESSAGE_BYTES // 2
DESCRIPTION_BATCH = 64  # texts per EmbedText call when indexing descriptions


@dataclass
class IndexSummary:
    indexed: int = 0
    unchanged: int = 0
    flagged: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)
    image_ids: list[str] = field(default_factory=list)
    written: set[str] = field(default_factory=set)  # photos written by this call
    flags_changed: int = 0
    flagged_by_description: int = 0
    flagged_by_sight: int = 0


@dataclass
class ChunkPlan:
    """What a chunk does to the store, decided from what the store held (`existing`)."""

    ids: list[str]  # each item's image id, in the stream's order
    existing: dict[str, dict[str, Any]]  # stored payloads of those ids
    todo: dict[str, tuple[list[IndexItem], dict[str, Any]]] = field(default_factory=dict)
    unchanged: list[IndexItem] = field(default_factory=list)
    new: list[str] = field(default_factory=list)  # ids to embed and write whole


@dataclass
class PreparedChunk:
    """A chunk with its plan and what was made for it (by image id); nothing written yet."""

    chunk: list[IndexItem]
    plan: ChunkPlan
    vectors: dict[str, tuple[np.ndarray, float | None]] = field(default_factory=dict)
    described: dict[str, np.ndarray | None] = field(default_factory=dict)
    failed: set[str] = field(default_factory=set)
    failures: list[tuple[str, str]] = field(default_factory=list)


class Indexer:
    """The gateway's writes: IndexImages and DeleteImages, through the search engine's store
    access (a failed write stops search too) and worker."""

    def __init__(self, settings: GatewaySettings, access: StoreAccess, worker: WorkerClient,
                 thumbnails: ThumbnailStore) -> None:
        self.settings = settings
        self.access = access
        self.store = access.store
        self.worker = worker
        self.thumbnails = thumbnails
        self.visual = VisualCheck(version="", threshold=None)  # none until the model is known: withhold

    def follow_model(self, info: Any) -> None:
        """Flags photos from now on with the visual minor detector of the worker's model (`info`,
        its ModelInfo) at the configured operating point (WITHSENSE_MINOR_THRESHOLD, else
        WITHSENSE_MINOR_RECALL_TARGET on the artifact's curve, else the artifact's threshold).
        A model without one: every indexed photo is withheld."""
        if not info.minor_detector_version:
            log.warning("the worker's model has no visual minor detector: every photo indexed "
                        "now is flagged minor (withheld in restricted regions)")
            self.visual = VisualCheck(version="", threshold=None)
            return
        curve = json.loads(info.minor_curve_json or "[]")
        default = info.minor_threshold if info.HasField("minor_threshold") else None
        try:
            threshold = operating_threshold(default, curve,
                                            recall_target=self.settings.minor_recall_target,
                                            threshold=self.settings.minor_threshold)
        except ValueError as exc:
            raise GatewayError(str(exc)) from None
        log.info("visual minor detector %s, threshold %s", info.minor_detector_version, threshold)
        self.visual = VisualCheck(version=info.minor_detector_version, threshold=threshold)

    async def index(self, items: AsyncIterator[IndexItem | tuple[str, str]]) -> IndexSummary:
        """Indexes a stream; an item that fails validation arrives as (name, reason). Chunks
        are prepared ahead (``index_pipeline``) and committed in order."""
        summary = IndexSummary()
        # The worker may have been restarted with another artifact: flags follow its detector.
        self.follow_model(await self.worker.model_info())
        pipeline: OrderedPipeline[list[IndexItem], PreparedChunk] = OrderedPipeline(
            self._prepare_chunk, lambda prepared: self._commit_chunk(prepared, summary),
            self.settings.index_pipeline_depth)
        try:
            async for chunk in chunks(items, summary.failures, max_items=INDEX_CHUNK,
                                      max_bytes=INDEX_CHUNK_BYTES):
                await pipeline.submit(chunk)
            await pipeline.drain()
        finally:
            await pipeline.close()
        if summary.indexed:
            await self.access.call(self.store.optimize)
        METRICS.indexed.inc(summary.indexed)
        return summary

    def _plan(self, chunk: list[IndexItem], existing: dict[str, dict[str, Any]]) -> ChunkPlan:
        """One photo (one content) is one point with every uri it was sent under: the same
        bytes again add a uri, never a second photo. New photos are embedded; a photo already
        stored only has its payload updated (same content, same vector), unless its
        descriptions changed: then its description vectors and keywords are written anew."""
        plan = ChunkPlan(ids=[point_id_for(item.image) for item in chunk], existing=existing)
        for image_id, item in zip(plan.ids, chunk, strict=True):
            if image_id in plan.todo:  # the same photo again in this chunk
                items, payload = plan.todo[image_id]
                plan.todo[image_id] = ([*items, item], _with_uris(payload, [*uris_of(payload), item.uri]))
                continue
            stored = existing.get(image_id)
            payload = _with_uris(_payload(item), [*(uris_of(stored) if stored else []), item.uri])
            if self._up_to_date(stored, payload):
                plan.unchanged.append(item)
            else:
                plan.todo[image_id] = ([item], payload)
        # New photos, stored ones whose descriptions changed (their description vectors change
        # with them) and stored ones judged by another detector or threshold (p(child) comes
        # with the embedding) are embedded and written whole; the rest get a payload update.
        plan.new = [i for i, (_, payload) in plan.todo.items()
                    if i not in existing or not self.visual.current(existing[i])
                    or existing[i].get("descriptions") != payload.get("descriptions")]
        return plan

    async def _prepare_chunk(self, chunk: list[IndexItem]) -> PreparedChunk:
        """Everything of a chunk that writes nothing to the store: its plan against the store
        as it is now, and the vectors, descriptions and thumbnails of the photos to write."""
        existing = await self.access.call(self.store.get, [point_id_for(item.image) for item in chunk])
        prepared = PreparedChunk(chunk, self._plan(chunk, existing))
        await self._make_missing(prepared)
        return prepared

    async def _make_missing(self, prepared: PreparedChunk) -> None:
        """Embeds, describes and thumbnails the plan's photos not made yet, all at once (the
        worker's model and the gateway's thumbnail thread work side by side). A photo the
        worker refuses is reported with the worker's reason only."""
        plan = prepared.plan
        # A photo indexed before thumbnails existed gets one on the next run.
        old = plan.unchanged + [plan.todo[i][0][0] for i in plan.todo if i in plan.existing]
        todo = [i for i in plan.new if i not in prepared.vectors and i not in prepared.failed]
        items = [plan.todo[i][0][0] for i in todo]
        failures: list[tuple[str, str]] = []
        vectors, thumbnails, described, old_failed = await asyncio.gather(
            self._embed_each(items, failures), self._store_thumbnails(items),
            self._embed_descriptions(items), self._store_thumbnails(old, only_missing=True))
        prepared.failures += [*old_failed.items(), *failures]
        for image_id, item, vector, description in zip(todo, items, vectors, described, strict=True):
            if vector is None:
                prepared.failed.add(image_id)
            elif item.uri in thumbnails:  # the thumbnail is written before the point, or neither
                prepared.failed.add(image_id)
                prepared.failures.append((item.uri, thumbnails[item.uri]))
            else:
                prepared.vectors[image_id] = vector
                prepared.described[image_id] = description

    async def _commit_chunk(self, prepared: PreparedChunk, summary: IndexSummary) -> None:
        """Writes a prepared chunk. Chunks ahead of it may have written its photos or uris since
        it was prepared: then it is planned again against the store as it is now (what was
        already embedded is kept, what is missing is made now)."""
        plan = prepared.plan
        existing = await self.access.call(self.store.get, plan.ids)
        if existing != plan.existing:
            prepared.plan = plan = self._plan(prepared.chunk, existing)
            await self._make_missing(prepared)
            prepared.failures = list(dict.fromkeys(prepared.failures))  # each reported once
        summary.image_ids += plan.ids
        summary.unchanged += len(plan.unchanged)
        summary.failures += prepared.failures
        todo = plan.todo
        for image_id in plan.new:
            if image_id in prepared.failed:
                # reported for its first uri; the others share its fate
                summary.failures += [(item.uri, "same photo as " + todo[image_id][0][0].uri)
                                     for item in todo.pop(image_id)[0][1:]]
        embedded = {i: prepared.vectors[i] for i in plan.new if i in todo}
        await self._flag(todo, existing, {i: p for i, (_, p) in embedded.items()})
        records = [ImageRecord(i, vector, todo[i][1], descriptions=prepared.described[i],
                               keywords=document_vector(todo[i][0][0].descriptions))
                   for i, (vector, _) in embedded.items()]
        updates = {i: payload for i, (_, payload) in todo.items() if i in existing and i not in embedded}
        await self._detach_uris([u for _, p in todo.values() for u in uris_of(p)], keep=set(todo))
        await self.access.write(self.store.upsert, records)
        if updates:
            await self.access.write(self.store.set_payloads, updates)
        self._count_written(todo, existing, summary)

    async def _flag(self, todo: dict[str, tuple[list[IndexItem], dict[str, Any]]],
                    existing: dict[str, dict[str, Any]], fresh: dict[str, float | None]) -> None:
        """Adds the flag fields to each payload of `todo`: p(child) from this embedding, else
        the stored one (same bytes, same detector and threshold). Flags of the photo's earlier
        uploads and of earlier photos at its uris carry over (``photo_flags``)."""
        previous = await self._previous_at_uris([u for _, p in todo.values() for u in uris_of(p)])
        for image_id, (_, payload) in todo.items():
            stored = existing.get(image_id)
            p = fresh[image_id] if image_id in fresh else (stored or {}).get("minor_p")
            before = [stored, *(old for uri in uris_of(payload) for old in previous.get(uri, []))]
            payload.update(photo_flags(payload["descriptions"], p, self.visual,
                                       content_hash=payload["content_hash"], stored=before))

    def _count_written(self, todo: dict[str, tuple[list[IndexItem], dict[str, Any]]],
                       existing: dict[str, dict[str, Any]], summary: IndexSummary) -> None:
        """`indexed` counts photos written by this call, each once; every other item of the
        stream that succeeded is `unchanged`."""
        for image_id, (items, payload) in todo.items():
            first_time = image_id not in summary.written
            summary.written.add(image_id)
            summary.indexed += first_time
            summary.unchanged += len(items) - first_time
            if first_time:
                self._count_flags(payload, existing.get(image_id), summary)
            audit_log("index", decision="flagged" if payload["minor"] else "clear",
                      rule="; ".join(payload["flag_reasons"]) or "no child terms; pixels below threshold",
                      image_id=image_id, minor_text=payload["minor_text"],
                      minor_visual=payload["minor_visual"], minor_p=payload["minor_p"],
                      minor_model=payload["minor_model"])

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
        ids = await self.access.call(self.store.ids_for_uris, uris)
        if not ids:
            return {}
        by_uri: dict[str, list[dict[str, Any]]] = {}
        for payload in (await self.access.call(self.store.get, ids)).values():
            for uri in uris_of(payload):
                by_uri.setdefault(uri, []).append(payload)
        return by_uri

    async def _embed_each(self, items: list[IndexItem], failures: list[tuple[str, str]],
                          ) -> list[tuple[np.ndarray, float | None] | None]:
        """(vector, p(child) or None) per photo, None for a bad photo (its uri and the worker's
        reason go to `failures`): one worker call for the chunk; if a photo is bad, one call
        each to find which."""
        if not items:
            return []
        try:
            return _per_photo(await self.worker.embed_images([item.image for item in items]))
        except InvalidArgument:
            pass
        results: list[tuple[np.ndarray, float | None] | None] = []
        for item in items:
            try:
                results.append(_per_photo(await self.worker.embed_images([item.image]))[0])
            except InvalidArgument as exc:
                failures.append((item.uri, _strip_item_prefix(str(exc))))
                results.append(None)
        return results

    async def _store_thumbnails(self, items: list[IndexItem], *,
                                only_missing: bool = False) -> dict[str, str]:
        """Makes and stores each photo's thumbnail; returns uri -> reason for those that could
        not be made."""
        failed: dict[str, str] = {}

        def store_all() -> None:
            for item in items:
                key = hashlib.sha256(item.image).hexdigest()
                if only_missing and self.thumbnails.has(key):
                    continue
                try:
                    self.thumbnails.put(key, make_thumbnail(item.image))
                except ValueError as exc:
                    failed[item.uri] = str(exc)

        if items:
            try:
                await asyncio.to_thread(store_all)
            except OSError as exc:
                raise Unavailable(f"thumbnail store: {exc}") from None
        return failed

    async def _detach_uris(self, uris: list[str], keep: set[str]) -> int:
        """Takes `uris` off every other photo that has them (a file whose content changed keeps
        its uri); a photo left with no uri is deleted. Returns how many uris were taken off."""
        others = [i for i in await self.access.call(self.store.ids_for_uris, uris) if i not in keep]
        if not others:
            return 0
        gone, detached, updates = set(uris), 0, {}
        payloads = await self.access.call(self.store.get, others)
        for image_id, payload in payloads.items():
            remaining = [u for u in uris_of(payload) if u not in gone]
            detached += len(uris_of(payload)) - len(remaining)
            if remaining:
                updates[image_id] = _with_uris(payload, remaining)
        if updates:
            await self.access.write(self.store.set_payloads, updates)
        emptied = [i for i in others if i not in updates]
        if emptied:
            await self.access.write(self.store.delete, emptied)
            await asyncio.to_thread(self._delete_thumbnails, [payloads[i] for i in emptied])
        return detached

    async def _embed_descriptions(self, items: list[IndexItem]) -> list[np.ndarray | None]:
        """Each photo's descriptions embedded like queries ([n, dim]); None without any. The
        batches go to the worker together (its batcher runs them back to back)."""
        texts = [text for item in items for text in item.descriptions]
        calls = [self.worker.embed_texts(texts[start:start + DESCRIPTION_BATCH], bulk=True)
                 for start in range(0, len(texts), DESCRIPTION_BATCH)]
        rows: list[np.ndarray] = [row for vectors, _ in await asyncio.gather(*calls) for row in vectors]
        out: list[np.ndarray | None] = []
        for item in items:
            n = len(item.descriptions)
            out.append(np.stack(rows[:n]) if n else None)
            rows = rows[n:]
        return out

    async def delete(self, image_ids: list[str], uris: list[str]) -> int:
        try:
            ids = canonical_ids(image_ids)
        except StoreError as exc:
            raise InvalidArgument(f"image_ids: {exc}") from None
        payloads = await self.access.call(self.store.get, ids) if ids else {}
        deleted = await self.access.write(self.store.delete, ids) if ids else 0
        await asyncio.to_thread(self._delete_thumbnails, payloads.values())
        if uris:
            deleted += await self._detach_uris(list(uris), keep=set())
        audit_log("delete", decision="deleted", rule="client request", count=deleted)
        return deleted

    def _delete_thumbnails(self, payloads: Iterable[dict[str, Any]]) -> None:
        # The photos are gone already; a thumbnail left behind is never served (every thumbnail
        # request looks the photo up first), so a failure here is logged, not returned.
        for payload in payloads:
            key = payload.get("content_hash")
            try:
                if key:
                    self.thumbnails.delete(key)
            except (OSError, ValueError):
                log.exception("could not delete the thumbnail %s", key)


def _payload(item: IndexItem) -> dict[str, Any]:
    """The photo's own fields; its flags (``photo_flags``) are added once it is embedded."""
    return {
        **item.payload,
        "uri": item.uri,
        "descriptions": list(item.descriptions),
        "content_hash": hashlib.sha256(item.image).hexdigest(),
    }


def _with_uris(payload: dict[str, Any], uris: list[str]) -> dict[str, Any]:
    """The payload listing `uris` (duplicates dropped, order kept); `uri` is the first."""
    uris = list(dict.fromkeys(uris))
    return {**payload, "uri": uris[0], URIS_KEY: uris}


def _per_photo(embedded: EmbeddedImages) -> list[tuple[np.ndarray, float | None]]:
    """(vector, p) per photo; p None for every photo when the worker gave no probabilities."""
    minor = embedded.minor
    return [(vector, None if minor is None else float(minor[i]))
            for i, vector in enumerate(embedded.vectors)]


def _strip_item_prefix(message: str) -> str:
    # The worker names the item by its position in the call ("images[0] ..."); the indexer
    # names it by uri, so keep only the reason.
    return message.split(": ", 1)[1] if message.startswith("images[") and ": " in message else message
