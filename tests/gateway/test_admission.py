"""Admission control sheds searches beyond capacity at once; the query cache skips the worker."""

from __future__ import annotations

import asyncio

import grpc
import httpx
import numpy as np
import pytest
from withsense.gateway.admission import Admission
from withsense.gateway.errors import ResourceExhausted
from withsense.gateway.query_cache import QueryCache
from withsense.v1 import search_pb2 as pb

from tests.helpers import search_stub


async def test_a_search_beyond_slots_and_queue_is_shed_at_once() -> None:
    admission = Admission(max_in_flight=1, max_queued=0, queue_timeout_s=5.0)
    async with admission:
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(ResourceExhausted, match="at capacity"):
            async with admission:
                pass
        assert loop.time() - started < 1.0  # shed at once, not after the queue timeout
    async with admission:  # the slot is free again
        assert admission.in_flight == 1
    assert admission.in_flight == 0 and admission.queued == 0


async def test_a_queued_search_is_shed_after_the_queue_timeout() -> None:
    admission = Admission(max_in_flight=1, max_queued=1, queue_timeout_s=0.05)
    async with admission:
        with pytest.raises(ResourceExhausted, match="no search slot within 50 ms"):
            async with admission:
                pass
    assert admission.in_flight == 0 and admission.queued == 0


async def test_a_queued_search_gets_the_slot_when_it_frees() -> None:
    admission = Admission(max_in_flight=1, max_queued=1, queue_timeout_s=5.0)
    order: list[str] = []

    async def search(name: str, hold_s: float) -> None:
        async with admission:
            order.append(name)
            await asyncio.sleep(hold_s)

    await asyncio.gather(search("first", 0.05), search("second", 0.0))
    assert order == ["first", "second"] and admission.in_flight == 0


def test_query_cache_is_an_lru_keyed_by_model_version() -> None:
    cache: QueryCache[int] = QueryCache(size=2)
    cache.put(("a cat",), "v1", 1)
    cache.put(("a dog",), "v1", 2)
    assert cache.get(("a cat",), "v1") == 1  # now the most recent
    cache.put(("a bird",), "v1", 3)  # evicts "a dog"
    assert cache.get(("a dog",), "v1") is None and cache.get(("a cat",), "v1") == 1
    assert cache.get(("a cat",), "v2") is None  # another model never reuses a vector
    off: QueryCache[int] = QueryCache(size=0)
    off.put(("a cat",), "v1", 1)
    assert off.get(("a cat",), "v1") is None and len(off) == 0


@pytest.mark.slow
def test_a_full_gateway_sheds_with_resource_exhausted_and_http_429(start_gateway, background_loop):
    gateway = start_gateway(max_in_flight=1, max_queued=0)
    stub = search_stub(gateway.address)
    request = pb.SearchRequest(query="a rocket before launch", top_k=1, region="US")
    assert stub.Search(request, timeout=30).model_version  # served while there is room
    background_loop.run(gateway.engine.admission.__aenter__())  # every slot taken
    try:
        with pytest.raises(grpc.RpcError) as error:
            stub.Search(request, timeout=30)
        assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
        assert "at capacity" in error.value.details()
        reply = httpx.post(f"{gateway.http_url}/v1/search", timeout=30,
                           json={"query": "a rocket before launch", "topK": 1, "region": "US"})
        assert reply.status_code == 429 and reply.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    finally:
        background_loop.run(gateway.engine.admission.__aexit__(None, None, None))
    assert stub.Search(request, timeout=30).model_version  # and serves again


@pytest.mark.slow
def test_a_repeated_query_is_embedded_once(start_gateway):
    gateway = start_gateway()
    stub = search_stub(gateway.address)
    cache = gateway.engine.query_cache
    request = pb.SearchRequest(query="a cup of coffee", top_k=3, region="US")
    first = stub.Search(request, timeout=30)
    assert len(cache) == 1
    second = stub.Search(request, timeout=30)
    assert len(cache) == 1
    assert [h.score for h in first.hits] == [h.score for h in second.hits]
    embedded, = [cache.get(("a cup of coffee",), gateway.engine.model_version)]
    vectors = embedded.vectors
    assert isinstance(vectors, np.ndarray) and not vectors.flags.writeable
    assert embedded.check_vectors is not None and len(embedded.check_vectors) == 1
