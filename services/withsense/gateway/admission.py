"""Admission control: a bound on searches in flight and on how long one may wait for a slot.

Without it an overloaded gateway queues every request until its deadline and then fails almost
all of them. With it, a search beyond `max_in_flight` waits at most `queue_timeout_s` among at
most `max_queued` others, and anything beyond that is shed at once with RESOURCE_EXHAUSTED, so
the searches that are accepted keep a bounded latency. The shed count is a metric
(`withsense_gateway_shed_total`) and the signal to scale on (docs/deploy.md).
"""

from __future__ import annotations

import asyncio
from types import TracebackType

from withsense.gateway.errors import ResourceExhausted
from withsense.gateway.metrics import METRICS


class Admission:
    def __init__(self, max_in_flight: int, max_queued: int, queue_timeout_s: float) -> None:
        self.max_in_flight = max_in_flight
        self.max_queued = max_queued
        self.queue_timeout_s = queue_timeout_s
        self._slots = asyncio.Semaphore(max_in_flight)
        self.in_flight = 0
        self.queued = 0

    async def __aenter__(self) -> Admission:
        if self.in_flight >= self.max_in_flight and self.queued >= self.max_queued:
            self._shed(f"{self.in_flight} searches in flight and {self.queued} queued")
        self.queued += 1
        try:
            await asyncio.wait_for(self._slots.acquire(), self.queue_timeout_s)
        except TimeoutError:
            self._shed(f"no search slot within {self.queue_timeout_s * 1000:.0f} ms")
        finally:
            self.queued -= 1
        self.in_flight += 1
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        self.in_flight -= 1
        self._slots.release()

    def _shed(self, why: str) -> None:
        METRICS.shed.inc()
        raise ResourceExhausted(f"the gateway is at capacity ({why}); retry with backoff")
