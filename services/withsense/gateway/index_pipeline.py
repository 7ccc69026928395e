"""The indexing pipeline's shape: a stream cut into chunks, chunks prepared ahead, committed in order.

Preparing a chunk (embedding its photos and descriptions in the worker, making thumbnails)
needs no store write, so the next chunks are prepared while the oldest one is written: the
worker's model, the gateway's thumbnail thread and the store work at the same time instead of
taking turns. Commits run one at a time in arrival order, so the store sees the same writes in
the same order as without a pipeline (what a commit finds in the store may have changed since
its chunk was prepared: `Indexer._commit_chunk` re-reads and re-plans).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Generic, TypeVar

from withsense.gateway.protocol import IndexItem

C = TypeVar("C")  # a chunk
P = TypeVar("P")  # a prepared chunk


async def chunks(items: AsyncIterator[IndexItem | tuple[str, str]], failures: list[tuple[str, str]],
                 *, max_items: int, max_bytes: int) -> AsyncIterator[list[IndexItem]]:
    """The stream's photos in chunks of at most `max_items` photos and `max_bytes` bytes (a
    photo larger than `max_bytes` alone); items that failed validation, (name, reason), go to
    `failures` as they arrive."""
    chunk: list[IndexItem] = []
    size = 0
    async for item in items:
        if isinstance(item, tuple):
            failures.append(item)
            continue
        if chunk and size + len(item.image) > max_bytes:
            yield chunk
            chunk, size = [], 0
        chunk.append(item)
        size += len(item.image)
        if len(chunk) == max_items:
            yield chunk
            chunk, size = [], 0
    if chunk:
        yield chunk


class OrderedPipeline(Generic[C, P]):
    """Prepares up to `depth` chunks at once, each in its own task; commits them one at a time
    in the order they were submitted. `depth` 1 is the plain loop: prepare, commit, next.

    A failed prepare or commit is raised by the `submit` or `drain` that reaches it; `close`
    cancels what is still being prepared (call it in a `finally`).
    """

    def __init__(self, prepare: Callable[[C], Awaitable[P]], commit: Callable[[P], Awaitable[None]],
                 depth: int) -> None:
        if depth < 1:
            raise ValueError(f"pipeline depth must be at least 1, not {depth}")
        self._prepare = prepare
        self._commit = commit
        self._depth = depth
        self._preparing: deque[asyncio.Task[P]] = deque()

    async def submit(self, chunk: C) -> None:
        while len(self._preparing) >= self._depth:
            await self._commit_oldest()
        self._preparing.append(asyncio.ensure_future(self._prepare(chunk)))
        if self._depth == 1:
            await self._commit_oldest()

    async def drain(self) -> None:
        while self._preparing:
            await self._commit_oldest()

    async def close(self) -> None:
        tasks = list(self._preparing)
        self._preparing.clear()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def _commit_oldest(self) -> None:
        prepared = await self._preparing.popleft()
        await self._commit(prepared)
