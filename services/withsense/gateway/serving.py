"""The gateway's serving logic: search with compliance, thumbnails, stats (indexing and
deletion: ``indexing``).

Search flow: validate -> region rules -> query policy (lexicon) -> embed the query in the
worker -> semantic policy -> oversampled candidates from the store (flagged photos filtered in
the engine when they are to be dropped, each with its exact image cosine from the engine) ->
calibrated rescoring (in the gateway, or the worker's kernel) and fusion -> withhold
flagged photos in restricted regions -> top k. Every decision is audit-logged with its reason.
"""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from dataclasses import dataclass
from typing import Any

import numpy as np

from withsense.compliance import audit_log
from withsense.compliance.photo_flags import withheld_reason
from withsense.config import GatewaySettings
from withsense.gateway.admission import Admission
from withsense.gateway.compliance_gate import ComplianceGate, RegionDecision
from withsense.gateway.errors import GatewayError, NotFound, PermissionDenied
from withsense.gateway.evidence import fuse
from withsense.gateway.indexing import Indexer
from withsense.gateway.metrics import METRICS
from withsense.gateway.protocol import SearchParams
from withsense.gateway.query_cache import QueryCache
from withsense.gateway.scoring import LocalScorer, local_scorer
from withsense.gateway.store_access import StoreAccess
from withsense.gateway.worker_client import EmbeddedTexts, WorkerClient
from withsense.keywords import query_words, words_vector
from withsense.model.fusion import FusionError, FusionModel
from withsense.model.language import ENGLISH, MULTILINGUAL
from withsense.store import StoreHit, VectorStore
from withsense.thumbnails import ThumbnailStore

log = logging.getLogger(__name__)
_UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
LEXICON_WARM_UP = "dogs running on beaches, собаки бегают"  # loads the English and Russian lemmatisers


@dataclass(frozen=True)
class Hit:
    image_id: str
    uri: str
    score: float
    withheld: bool = False
    reason: str = ""
    evidence: tuple[str, ...] = ()  # "pixels", "descriptions", "keywords": what the score rests on


@dataclass(frozen=True)
class SearchResult:
    hits: list[Hit]
    blocked: bool
    reason: str
    model_version: str
    restricted: bool
    disclaimer: str = ""


class SearchEngine:
    def __init__(self, settings: GatewaySettings, store: VectorStore, worker: WorkerClient,
                 gate: ComplianceGate, thumbnails: ThumbnailStore) -> None:
        self.settings = settings
        self.store = store
        self.worker = worker
        self.gate = gate
        self.thumbnails = thumbnails
        self.model_version = ""
        self.query_cache: QueryCache[EmbeddedTexts] = QueryCache(
            settings.query_cache_size)
        self.admission = Admission(settings.max_in_flight, settings.max_queued,
                                   settings.queue_timeout_ms / 1000,
                                   settings.queue_standing_timeout_ms / 1000)
        self.access = StoreAccess(store, settings.store_timeout_s)
        self.indexer = Indexer(settings, self.access, worker, thumbnails)
        self.fusion: FusionModel | None = None
        self.scorer: LocalScorer | None = None  # None: the worker's Score call scores

    async def start(self) -> None:
        """Asks the worker for the model and embeds the child-concept prototypes once."""
        info = await self.worker.model_info()
        if info.dim != self.store.dim:
            raise GatewayError(
                f"the worker's model gives {info.dim}-d vectors but the store holds {self.store.dim}-d"
            )
        self.model_version = info.model_version
        try:
            self.fusion = (FusionModel.from_json(json.loads(info.fusion_json), "the worker's fusion model")
                           if info.fusion_json else None)
        except (ValueError, FusionError) as exc:
            raise GatewayError(f"the worker's model {info.model_version}: {exc}") from None
        log.info("scores rest on %s", "pixels, descriptions and keywords" if self.fusion
                 else "pixels alone (the model has no fusion.json)")
        self.scorer = local_scorer(self.settings.score_in, scale=info.scale, bias=info.bias,
                                   model_version=info.model_version,
                                   worker_backend=info.score_backend)
        # Prototypes are embedded as queries are: their check vectors (the text tower's own on
        # the English path). A worker that sends none arms nothing: restricted queries are then
        # blocked (ComplianceGate.semantic_decision), never waved through.
        prototypes = await self.worker.embed_texts_checked(self.gate.prototype_texts(), ENGLISH)
        if prototypes.check_vectors is None:
            log.error("the worker sent no check vectors: the semantic child check cannot run, "
                      "every query in a restricted region is blocked")
        else:
            model_threshold = (info.semantic_child_threshold
                               if info.HasField("semantic_child_threshold") else None)
            threshold = self.gate.set_prototypes(np.stack(prototypes.check_vectors), model_threshold)
            log.info("semantic child-query threshold %.3f (text tower space)", threshold)
        if info.multilingual:
            prototypes = await self.worker.embed_texts_checked(self.gate.prototype_texts(), MULTILINGUAL)
            if prototypes.check_vectors is not None:
                model_threshold = (info.multilingual_semantic_child_threshold
                                   if info.HasField("multilingual_semantic_child_threshold") else None)
                threshold = self.gate.set_multilingual_prototypes(
                    np.stack(prototypes.check_vectors), model_threshold)
                log.info("semantic child-query threshold of the multilingual path %.3f", threshold)
        self.indexer.follow_model(info)
        # The lexicon's lemmatisers load their dictionaries on first use (seconds on 2 busy
        # cores): load them now rather than in the first restricted search.
        await asyncio.to_thread(self.gate.policy.check, LEXICON_WARM_UP)

    async def _embed_query(self, texts: list[str]) -> EmbeddedTexts:
        """The worker's embedding of the query texts (with their check vectors), through the
        query cache."""
        key = tuple(texts)
        cached = self.query_cache.get(key, self.model_version)
        if cached is None:
            cached = await self.worker.embed_texts_checked(texts)
            for array in [cached.vectors, *(cached.check_vectors or [])]:
                array.setflags(write=False)  # shared by every search that hits the cache
            self.query_cache.put(key, self.model_version, cached)
        return cached

    # --- search -----------------------------------------------------------------------------

    async def search(self, params: SearchParams) -> SearchResult:
        region = self.gate.region(params.region)
        stage = _StageClock()
        if region.restricted:
            decision = self.gate.policy.check(params.query)
            if decision.blocked:
                return self._blocked(params, region, decision.rule)
        # The semantic check judges the query without words the lexicon knows are no child
        # ("baby" in "baby blue"); embedded in the same worker call when it differs.
        judged = self.gate.policy.semantic_text(params.query) if region.restricted else params.query
        texts = [params.query] if judged == params.query else [params.query, judged]
        stage.done("policy")
        embedded = await self._embed_query(texts)
        self.model_version = embedded.model_version or self.model_version
        query, paths = embedded.vectors[0], embedded.paths
        stage.done("embed")
        if region.restricted:
            # Each path (English, multilingual) has its own prototypes and threshold.
            check = embedded.check_vectors[-1] if embedded.check_vectors is not None else None
            decision = self.gate.semantic_decision(params.query, paths[-1], check)
            if decision.blocked:
                return self._blocked(params, region, decision.rule)
        drop_flagged = region.restricted and self.settings.withheld_mode == "drop"
        stage.done("semantic")
        words = query_words(params.query)
        candidates: list[StoreHit] = await self.access.call(
            self.store.hybrid_search, query, words_vector(words) or None,
            params.top_k * self.settings.oversample,
            exclude_minor=drop_flagged, filters=params.filters or None,
            with_image_vectors=self._local_scorer() is None,
        )
        stage.done("store")
        # The fusion model learnt from English queries against English descriptions; a query on
        # the multilingual path is scored by its pixels alone rather than out of distribution.
        fusion = self.fusion if paths[0] == ENGLISH else None
        hits = await self._rescore(query, words, candidates, params, region, fusion, stage)
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

    async def _rescore(self, query: np.ndarray, words: list[frozenset[int]],
                       candidates: list[StoreHit], params: SearchParams,
                       region: RegionDecision, fusion: FusionModel | None,
                       stage: _StageClock | None = None) -> list[Hit]:
        stage = stage or _StageClock()
        scorer = self._local_scorer()
        # A candidate without a cosine (or vector) cannot be scored: leave it out here, so that
        # the probabilities are paired with the very candidates that were scored.
        if scorer is not None:
            candidates = [c for c in candidates if c.cosine is not None]
            pixels = scorer.of_cosines(np.asarray([c.cosine for c in candidates], dtype=np.float32))
        else:
            candidates = [c for c in candidates if c.vector is not None]
            pixels = await self._pixel_probabilities(query, candidates)
        if not candidates:
            return []
        stage.done("score")
        fused = fuse(fusion, words, query, candidates, pixels)
        probabilities = fused.probabilities
        order = np.argsort(-probabilities, kind="stable")
        hits: list[Hit] = []
        for index in order:
            candidate, probability = candidates[index], float(probabilities[index])
            # Compared as the float32 the reply carries, so a hit's reported score passed back
            # as min_score keeps that hit (a float64 p can sit just below its float32 rounding).
            if np.float32(probability) < np.float32(params.min_score) or len(hits) == params.top_k:
                break
            hits.append(self._hit(candidate, probability, fused.evidence(int(index)), region))
        stage.done("fuse")
        return hits

    def _local_scorer(self) -> LocalScorer | None:
        """The gateway's scorer of the store's cosines, when it scores this search: it holds t
        and b of the model that embedded the query and needs no vectors (no GPU here)."""
        scorer = self.scorer
        if scorer is None or scorer.needs_vectors or scorer.model_version != self.model_version:
            return None
        return scorer

    async def _pixel_probabilities(self, query: np.ndarray, candidates: list[StoreHit]) -> np.ndarray:
        """p(match) of each candidate from its image vector: by the Triton kernel when the
        gateway has a GPU and the model's t and b, else by the worker's Score call."""
        if not candidates:
            return np.zeros(0, dtype=np.float32)
        vectors = np.stack([c.vector for c in candidates])
        scorer = self.scorer
        if scorer is not None and scorer.model_version == self.model_version:
            return scorer(query, vectors)
        return await self.worker.score(query, vectors)

    def _hit(self, candidate: StoreHit, probability: float, evidence: tuple[str, ...],
             region: RegionDecision) -> Hit:
        if region.restricted and candidate.payload.get("minor", True):
            # Only the disclaimer leaves the service: no id, no uri, no evidence.
            return Hit(image_id="", uri="", score=probability, withheld=True,
                       reason=f"photo {withheld_reason(candidate.payload)}; {region.describe()}")
        return Hit(image_id=candidate.image_id, uri=str(candidate.payload.get("uri", "")),
                   score=probability, evidence=evidence)

    # --- thumbnails and stats ---------------------------------------------------------------

    async def thumbnail(self, image_id: str, region: str) -> bytes:
        """The photo's thumbnail, checked against the region and the photo's flag every time:
        a flagged photo's thumbnail never leaves the service in a restricted region."""
        decision = self.gate.region(region)
        if not _UUID.match(image_id):
            raise NotFound(f"image_id {image_id[:64]!r}: no such photo")
        payload = (await self.access.call(self.store.get, [image_id])).get(image_id)
        if payload is None:
            raise NotFound(f"image_id {image_id}: no such photo")
        if decision.restricted and payload.get("minor", True):
            audit_log("thumbnail", decision="withheld", rule="photo flagged minor",
                      region=decision.region, image_id=image_id)
            raise PermissionDenied(f"{self.gate.disclaimer} (photo flagged minor; {decision.describe()})")
        key = str(payload.get("content_hash", ""))
        data = await asyncio.to_thread(self.thumbnails.get, key) if key else None
        if data is None:
            raise NotFound(f"image_id {image_id}: no thumbnail yet; index the photo again to make one")
        return data

    async def stats(self) -> dict[str, Any]:
        images = await self.access.call(self.store.count)
        flagged = await self.access.call(self.store.count, minor=True)
        return {"images": images, "flagged": flagged, "store_backend": self.store.backend,
                "model_version": self.model_version,
                "restricted_regions": list(self.settings.restricted_regions)}


class _StageClock:
    """Observes the wall time of each stage of a search (``withsense_gateway_search_stage_seconds``)."""

    def __init__(self) -> None:
        self._last = time.perf_counter()

    def done(self, stage: str) -> None:
        now = time.perf_counter()
        METRICS.stage_seconds.labels(stage=stage).observe(now - self._last)
        self._last = now
