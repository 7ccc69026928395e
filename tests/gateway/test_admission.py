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


async def test_a_search_whose_deadline_is_nearer_than_a_search_takes_is_shed_at_once() -> None:
    admission = Admission(max_in_flight=4, max_queued=4, queue_timeout_s=5.0)
    async with admission.slot(10.0):
        await asyncio.sleep(0.05)  # the first search served: the average is ~50 ms
    assert 0.04 <= admission.service_s < 1.0
    with pytest.raises(ResourceExhausted, match="ms left before the request's deadline"):
        async with admission.slot(0.01):
            pytest.fail("admitted a search that cannot answer before its deadline")
    async with admission.slot(10.0):  # time enough, free slots: admitted
        assert admission.in_flight == 1
    async with admission.slot(None):  # no deadline (HTTP): admitted
        assert admission.in_flight == 1
    assert admission.in_flight == 0 and admission.queued == 0


async def test_a_queued_search_waits_no_longer_than_its_deadline_allows() -> None:
    admission = Admission(max_in_flight=1, max_queued=4, queue_timeout_s=5.0)
    admission.service_s = 0.02
    loop = asyncio.get_running_loop()
    async with admission.slot(None):  # the only slot taken
        started = loop.time()
        with pytest.raises(ResourceExhausted, match="no search slot within 80 ms"):
            async with admission.slot(0.1):  # 100 ms left, a search takes 20: waits 80 at most
                pass
        assert loop.time() - started < 1.0  # not the 5 s queue timeout
    assert admission.in_flight == 0 and admission.queued == 0


class StillClock:
    """A clock that moves only when told: the average's decay would make a busy machine's
    milliseconds between two lines part of the figure."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_service_time_is_a_moving_average() -> None:
    admission = Admission(max_in_flight=1, max_queued=0, queue_timeout_s=1.0, clock=StillClock())
    admission._record(0.1)
    assert admission.service_s == pytest.approx(0.1, rel=1e-3)  # the first search sets it
    admission._record(0.2)
    assert admission.service_s == pytest.approx(0.11, rel=1e-3)  # then each moves it by a tenth


async def test_a_stale_service_time_fades_so_shedding_by_deadline_cannot_lock_in() -> None:
    """An average once far above callers' deadlines would shed all of them, and with nothing
    served it would never be corrected: it halves for each second without a sample."""
    clock = StillClock()
    admission = Admission(max_in_flight=1, max_queued=0, queue_timeout_s=1.0, clock=clock)
    admission.service_s = 10.0
    with pytest.raises(ResourceExhausted, match="before the request's deadline"):
        async with admission.slot(2.0):
            pass
    clock.now += 10.0  # ten seconds later, with nothing served meanwhile
    assert admission.service_s == pytest.approx(10.0 / 1024, rel=1e-2)
    async with admission.slot(2.0):  # admitted again
        assert admission.in_flight == 1


async def test_a_failed_search_does_not_count_as_service_time() -> None:
    admission = Admission(max_in_flight=1, max_queued=0, queue_timeout_s=1.0)
    with pytest.raises(RuntimeError):
        async with admission.slot(5.0):
            await asyncio.sleep(0.05)
            raise RuntimeError("the worker failed")
    assert admission.service_s == 0.0 and admission.in_flight == 0


async def _queue_one(admission: Admission, release: asyncio.Event) -> asyncio.Task[None]:
    """A search waiting for a slot (it holds the slot, once it has one, until `release`)."""
    async def search() -> None:
        async with admission.slot(None):
            await release.wait()

    task = asyncio.create_task(search())
    await asyncio.sleep(0)  # it reaches the queue
    assert admission.queued == 1
    return task


async def test_a_standing_queue_sheds_after_the_short_wait_and_a_burst_waits_longer() -> None:
    """Controlled delay: a queue that has not emptied for 100 ms is overload, not a burst."""
    clock = StillClock()
    admission = Admission(max_in_flight=1, max_queued=4, queue_timeout_s=5.0,
                          standing_timeout_s=0.02, clock=clock)
    loop = asyncio.get_running_loop()
    release = asyncio.Event()
    async with admission.slot(None):  # the only slot taken
        first = await _queue_one(admission, release)  # a queue starts now
        clock.now += 0.06
        burst = asyncio.create_task(admission.__aenter__())
        await asyncio.sleep(0.1)  # the queue is 60 ms old: a burst, still waiting after 5x 20 ms
        assert not burst.done() and admission.queued == 2 and not admission.standing
        clock.now += 0.06  # not emptied for 120 ms (the burst search came only 60 ms ago)
        assert admission.standing
        started = loop.time()
        with pytest.raises(ResourceExhausted, match="within 20 ms, the queue has not emptied"):
            async with admission.slot(None):
                pass
        assert loop.time() - started < 1.0
        # The two given the long wait got the short one as well: both had waited 100 ms.
        for waiter in (first, burst):
            with pytest.raises(ResourceExhausted, match="within 20 ms, the queue has not emptied"):
                await waiter
    assert admission.queued == 0 and admission.in_flight == 0 and not admission.standing
    clock.now += 10.0  # a quiet while later a new queue is a burst again
    async with admission.slot(None):
        second = await _queue_one(admission, release)
        assert not admission.standing
    release.set()
    await second  # it got the slot when it freed
    assert admission.queued == 0 and admission.in_flight == 0


async def test_searches_that_find_a_free_slot_never_queue() -> None:
    """Else arrivals at a gateway with room would count as a queue that never empties."""
    clock = StillClock()
    admission = Admission(max_in_flight=2, max_queued=4, queue_timeout_s=5.0,
                          standing_timeout_s=0.02, clock=clock)
    queued_seen: list[int] = []

    async def search() -> None:
        async with admission.slot(None):
            queued_seen.append(admission.queued)
            clock.now += 0.05
            await asyncio.sleep(0)

    for _ in range(5):
        await asyncio.gather(search(), search())
    assert queued_seen == [0] * 10 and not admission.standing


def test_the_standing_wait_is_never_longer_than_the_queue_timeout() -> None:
    assert Admission(1, 1, queue_timeout_s=0.1, standing_timeout_s=5.0).standing_timeout_s == 0.1
    assert Admission(1, 1, queue_timeout_s=0.1).standing_timeout_s == 0.1


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


ROCKET = pb.SearchRequest(query="a rocket before launch", top_k=1, region="US")


def _shed_over_grpc(stub, because: str) -> None:
    """A search over gRPC is refused at once with RESOURCE_EXHAUSTED, saying `because`."""
    with pytest.raises(grpc.RpcError) as error:
        stub.Search(ROCKET, timeout=30)
    assert error.value.code() == grpc.StatusCode.RESOURCE_EXHAUSTED
    assert because in error.value.details()


def _search_over_http(gateway) -> httpx.Response:
    return httpx.post(f"{gateway.http_url}/v1/search", timeout=30,
                      json={"query": ROCKET.query, "topK": 1, "region": "US"})


@pytest.mark.slow
def test_a_full_gateway_sheds_with_resource_exhausted_and_http_429(start_gateway, background_loop):
    gateway = start_gateway(max_in_flight=1, max_queued=0)
    stub = search_stub(gateway.address)
    assert stub.Search(ROCKET, timeout=30).model_version  # served while there is room
    background_loop.run(gateway.engine.admission.__aenter__())  # every slot taken
    try:
        _shed_over_grpc(stub, "at capacity")
        reply = _search_over_http(gateway)
        assert reply.status_code == 429 and reply.json()["error"]["status"] == "RESOURCE_EXHAUSTED"
    finally:
        background_loop.run(gateway.engine.admission.__aexit__(None, None, None))
    assert stub.Search(ROCKET, timeout=30).model_version  # and serves again


@pytest.mark.slow
def test_a_grpc_deadline_reaches_admission_control(start_gateway):
    """The gRPC call's time left is what admission control weighs: with searches taking (as the
    gateway believes) 100 s, a call with a 30 s deadline is shed at once, and one over HTTP (no
    deadline) is still served."""
    gateway = start_gateway()
    stub = search_stub(gateway.address)
    gateway.engine.admission.service_s = 100.0
    try:
        _shed_over_grpc(stub, "before the request's deadline")
        assert _search_over_http(gateway).status_code == 200
    finally:
        gateway.engine.admission.service_s = 0.0
    assert stub.Search(ROCKET, timeout=30).model_version


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
