"""Dynamic batching: concurrent requests merged into model batches that run in one thread."""

from __future__ import annotations

import asyncio
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Generic, TypeVar

from withsense.worker.metrics import Metrics

log = logging.getLogger(__name__)

P = TypeVar("P")  # a request's payload
R = TypeVar("R")  # its result


class WorkerUnavailable(RuntimeError):
    """The worker cannot take the request now (model loading, shutting down): UNAVAILABLE."""


@dataclass(frozen=True)
class BatchResult(Generic[R]):
    """One request's share of a batch and how big that batch was."""

    value: R
    batch_size: int  # items of the whole batch (this request's included)
    batch_requests: int


@dataclass
class _Pending(Generic[P, R]):
    payload: P
    size: int
    cost: int
    future: asyncio.Future[BatchResult[R]]
    enqueued: float


class DynamicBatcher(Generic[P, R]):
    """Merges concurrent requests into model batches.

    A batch starts when it holds `max_batch_size` items, or `max_wait_s` after its oldest request
    arrived, whichever is first (requests that queued while the model was busy go at once). A
    request is never split: one larger than `max_batch_size` runs alone (the run function chunks
    it). `max_cost` bounds a second measure (Score candidates). `run` gets the payloads of a batch
    and returns one result per payload; it runs in `executor` (the single model thread).
    Cancelled requests (client gone, deadline passed) are dropped before they reach the model.
    """

    def __init__(
        self,
        kind: str,
        run: Callable[[list[P]], list[R]],
        *,
        executor: ThreadPoolExecutor,
        max_batch_size: int,
        max_wait_s: float,
        max_cost: int | None = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.kind = kind
        self._run_fn = run
        self._executor = executor
        self.max_batch_size = max_batch_size
        self.max_wait_s = max_wait_s
        self.max_cost = max_cost
        self._metrics = metrics
        self._pending: deque[_Pending[P, R]] = deque()
        self._queued_size = 0
        self._queued_cost = 0
        self._wakeup: asyncio.Event | None = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False

    async def submit(self, payload: P, size: int, cost: int = 0) -> BatchResult[R]:
        if self._closed:
            raise WorkerUnavailable("the worker is shutting down; retry on another worker")
        loop = asyncio.get_running_loop()
        if self._task is None:
            self._wakeup = asyncio.Event()
            self._task = loop.create_task(self._loop(), name=f"withsense-batcher-{self.kind}")
        assert self._wakeup is not None
        future: asyncio.Future[BatchResult[R]] = loop.create_future()
        self._pending.append(_Pending(payload, size, cost, future, loop.time()))
        self._queued_size += size
        self._queued_cost += cost
        self._wakeup.set()
        return await future

    async def close(self) -> None:
        """Stops taking requests; those already queued still run."""
        self._closed = True
        if self._task is not None:
            assert self._wakeup is not None
            self._wakeup.set()
            await self._task

    def _full(self) -> bool:
        return self._queued_size >= self.max_batch_size or (
            self.max_cost is not None and self._queued_cost >= self.max_cost
        )

    async def _loop(self) -> None:
        assert self._wakeup is not None
        loop = asyncio.get_running_loop()
        while True:
            while not self._pending:
                if self._closed:
                    return
                self._wakeup.clear()
                await self._wakeup.wait()
            deadline = self._pending[0].enqueued + self.max_wait_s
            while not self._full() and not self._closed:
                remaining = deadline - loop.time()
                if remaining <= 0:
                    break
                self._wakeup.clear()
                try:
                    await asyncio.wait_for(self._wakeup.wait(), remaining)
                except TimeoutError:
                    break
            batch = self._take()
            if batch:
                try:
                    await self._run(batch)
                except Exception as exc:  # noqa: BLE001 - the loop must survive any batch
                    log.exception("%s batch failed outside the model", self.kind)
                    for item in batch:
                        if not item.future.done():
                            item.future.set_exception(exc)

    def _take(self) -> list[_Pending[P, R]]:
        batch: list[_Pending[P, R]] = []
        size = cost = 0
        while self._pending:
            head = self._pending[0]
            if batch and (
                size + head.size > self.max_batch_size
                or (self.max_cost is not None and cost + head.cost > self.max_cost)
            ):
                break
            self._pending.popleft()
            self._queued_size -= head.size
            self._queued_cost -= head.cost
            if head.future.done():  # cancelled while queued
                continue
            batch.append(head)
            size += head.size
            cost += head.cost
        return batch

    async def _run(self, batch: list[_Pending[P, R]]) -> None:
        loop = asyncio.get_running_loop()
        size = sum(item.size for item in batch)
        started = loop.time()
        if self._metrics is not None:
            for item in batch:
                self._metrics.queue_seconds.labels(self.kind).observe(started - item.enqueued)
        try:
            results = await loop.run_in_executor(
                self._executor, self._run_fn, [item.payload for item in batch]
            )
            if len(results) != len(batch):
                raise RuntimeError(
                    f"{self.kind} batch of {len(batch)} requests gave {len(results)} results"
                )
        except Exception as exc:  # noqa: BLE001 - handed to every request of the batch
            for item in batch:
                if not item.future.done():
                    item.future.set_exception(exc)
            return
        if self._metrics is not None:
            self._metrics.batch_seconds.labels(self.kind).observe(loop.time() - started)
            self._metrics.batch_size.labels(self.kind).observe(size)
            self._metrics.batch_requests.labels(self.kind).observe(len(batch))
            self._metrics.items.labels(self.kind).inc(sum(item.cost or item.size for item in batch))
        for item, result in zip(batch, results, strict=True):
            if not item.future.done():
                item.future.set_result(BatchResult(result, size, len(batch)))
