"""The indexing pipeline's shape, without a model: chunking by count and bytes, commits in
order, a bounded number of chunks prepared at once, failures raised and the rest cancelled."""

from __future__ import annotations

import asyncio

import pytest
from withsense.gateway.index_pipeline import OrderedPipeline, chunks
from withsense.gateway.protocol import IndexItem


def _item(uri: str, size: int) -> IndexItem:
    return IndexItem(image=b"x" * size, uri=uri, descriptions=(), payload={})


async def _stream(items):
    for item in items:
        yield item


def _chunk_uris(items, **limits) -> tuple[list[list[str]], list[tuple[str, str]]]:
    failures: list[tuple[str, str]] = []

    async def collect():
        return [[i.uri for i in chunk] async for chunk in chunks(_stream(items), failures, **limits)]

    return asyncio.run(collect()), failures


def test_chunks_by_count_and_bytes_and_failures_pass_through():
    items = [_item("a", 10), ("item 1", "bad uri"), _item("b", 10), _item("c", 10), _item("d", 30),
             _item("e", 50), _item("f", 1)]
    got, failures = _chunk_uris(items, max_items=3, max_bytes=40)
    # a+b+c fill the count; d alone (d+e over 40 bytes); e alone is over the bytes: still sent
    assert got == [["a", "b", "c"], ["d"], ["e"], ["f"]]
    assert failures == [("item 1", "bad uri")]


def test_commits_in_order_with_at_most_depth_prepared_at_once():
    prepared_now, most, committed = 0, 0, []

    async def prepare(n: int) -> int:
        nonlocal prepared_now, most
        prepared_now += 1
        most = max(most, prepared_now)
        await asyncio.sleep(0.01 * (5 - n % 5))  # later chunks finish first
        prepared_now -= 1
        return n

    async def commit(n: int) -> None:
        committed.append(n)

    async def run() -> None:
        pipeline = OrderedPipeline(prepare, commit, depth=3)
        for n in range(10):
            await pipeline.submit(n)
        await pipeline.drain()

    asyncio.run(run())
    assert committed == list(range(10))
    assert most == 3


def test_depth_one_commits_each_chunk_before_the_next_is_prepared():
    events = []

    async def prepare(n: int) -> int:
        events.append(f"prepare {n}")
        return n

    async def commit(n: int) -> None:
        events.append(f"commit {n}")

    async def run() -> None:
        pipeline = OrderedPipeline(prepare, commit, depth=1)
        for n in range(3):
            await pipeline.submit(n)
        await pipeline.drain()

    asyncio.run(run())
    assert events == ["prepare 0", "commit 0", "prepare 1", "commit 1", "prepare 2", "commit 2"]


def test_a_failed_prepare_is_raised_and_the_others_are_cancelled():
    cancelled = []

    async def prepare(n: int) -> int:
        if n == 1:
            raise RuntimeError("worker gone")
        try:
            await asyncio.sleep(10 if n > 1 else 0)
        except asyncio.CancelledError:
            cancelled.append(n)
            raise
        return n

    async def commit(n: int) -> None:
        pass

    async def run() -> None:
        pipeline = OrderedPipeline(prepare, commit, depth=3)
        try:
            for n in range(5):
                await pipeline.submit(n)
            await pipeline.drain()
        finally:
            await pipeline.close()

    with pytest.raises(RuntimeError, match="worker gone"):
        asyncio.run(run())
    assert cancelled == [2]  # 3 and 4 were never started: the failure came first


def test_depth_below_one_is_refused():
    async def noop(_):
        return None

    with pytest.raises(ValueError, match="at least 1"):
        OrderedPipeline(noop, noop, depth=0)
