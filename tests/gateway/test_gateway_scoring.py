"""Candidates scored in the gateway give the very hits and probabilities of the worker's Score."""

from __future__ import annotations

import numpy as np
import pytest
from withsense.gateway.scoring import LocalScorer, local_scorer
from withsense.v1 import search_pb2 as pb

from tests.helpers import index_requests, search_stub

pytestmark = pytest.mark.slow

# Non-ASCII, and one past MiniLM's 256 tokens (within the gateway's 1,000 characters).
QUERIES = ["a cup of coffee", "an astronaut in a white suit", "a cat", "Ünïcödé café — 東京",
           "a cat " * 160]


def _worker_scores(worker_server) -> float:
    return worker_server.serving.metrics.requests.labels("Score", "OK")._value.get()


def _search_all(stub, region: str) -> list[list[tuple[str, str, float, bool]]]:
    out = []
    for query in QUERIES:
        reply = stub.Search(pb.SearchRequest(query=query, top_k=100, region=region), timeout=60)
        out.append([(h.image_id, h.uri, h.score, h.withheld) for h in reply.hits])
    return out


def test_scoring_in_the_gateway_equals_the_workers_score(start_gateway, gallery_photos, worker_server):
    gateway = start_gateway(score_in="gateway", query_cache_size=0, restricted_regions=["DE"])
    engine = gateway.engine
    assert engine.scorer is not None and engine.scorer.backend == "numpy"
    stub = search_stub(gateway.address)
    stub.IndexImages(index_requests(gallery_photos), timeout=300)
    for region in ("US", "DE"):
        before = _worker_scores(worker_server)
        here = _search_all(stub, region)
        assert _worker_scores(worker_server) == before  # no Score call: one worker hop a search
        local, engine.scorer = engine.scorer, None  # the worker's Score, as WITHSENSE_SCORE_IN=worker
        there = _search_all(stub, region)
        assert _worker_scores(worker_server) > before
        engine.scorer = local
        assert any(here) and len(here) == len(there)
        for mine, theirs in zip(here, there, strict=True):
            assert [h[:2] for h in mine] == [h[:2] for h in theirs]  # same hits, same order
            assert [h[3] for h in mine] == [h[3] for h in theirs]
            assert np.abs(np.array([h[2] for h in mine]) - np.array([h[2] for h in theirs])).max(
                initial=0.0) < 1e-6


def test_a_scorer_for_another_model_version_leaves_scoring_to_the_worker(start_gateway, gallery_photos,
                                                                         worker_server):
    gateway = start_gateway(score_in="gateway", query_cache_size=0)
    stub = search_stub(gateway.address)
    stub.IndexImages(index_requests(gallery_photos), timeout=300)
    scorer = gateway.engine.scorer
    gateway.engine.scorer = LocalScorer(scale=scorer.scale, bias=scorer.bias, model_version="older",
                                        backend="numpy")
    before = _worker_scores(worker_server)
    stub.Search(pb.SearchRequest(query="a cup of coffee", top_k=3, region="US"), timeout=60)
    assert _worker_scores(worker_server) == before + 1


def test_score_in_worker_keeps_the_score_call(start_gateway):
    assert start_gateway(score_in="worker").engine.scorer is None


def test_auto_leaves_a_gpu_workers_scoring_to_its_triton_kernel():
    assert local_scorer("auto", scale=10.0, bias=-10.0, model_version="v", worker_backend="triton") is None
    scorer = local_scorer("auto", scale=10.0, bias=-10.0, model_version="v", worker_backend="torch")
    assert scorer is not None and scorer.backend == "numpy"
    with pytest.raises(ValueError, match="score place"):
        local_scorer("elsewhere", scale=1.0, bias=0.0, model_version="v", worker_backend="torch")
