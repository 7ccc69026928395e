"""Admission control: a bound on searches in flight and on how long one may wait for a slot.

Without it an overloaded gateway queues every request until its deadline and then fails almost
all of them. With it, a search beyond `max_in_flight` waits at most `queue_timeout_s` among at
most `max_queued` others, and anything beyond that is shed at once with RESOURCE_EXHAUSTED, so
the searches that are accepted keep a bounded latency. The shed count is a metric
(`withsense_gateway_shed_total`) and the signal to scale on (docs/deploy.md).

A queue that never empties is not a burst: the arrivals outrun the service, and every search
that waits only adds its wait to its latency. So, as in Facebook's controlled delay ("Fail at
Scale", 2015), a search that arrives when the queue has not been empty for `STANDING_AFTER_S`
waits at most `standing_timeout_s` instead of `queue_timeout_s`, and so do those waiting with the
long wait then: bursts still queue for the long allowance, while sustained overload is shed after
a short wait, and the searches accepted take little more than the searches in flight ahead of
them (docs/benchmarks.md, "Tenth pass").

A request that carries a deadline (gRPC) is also held to it: it waits for a slot no longer than
its time left minus what a search takes now (a moving average of the searches served, which
fades with its age), and one whose time left is already shorter is shed at once. Work spent on
a search that cannot answer in time is taken from those that can: at 1M photos on 2 cores,
where the store call is slow, such searches were the deadline errors of an overloaded gateway
(docs/benchmarks.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from types import TracebackType

from withsense.gateway.errors import ResourceExhausted
from withsense.gateway.metrics import METRICS

# Weight of the newest search in the moving average of a search's time in its slot.
SERVICE_EWMA = 0.1
# The average halves for each second without a new sample: it says what a search takes *now*.
# Without the decay, an average that once rose above the deadlines callers send would shed every
# such call, and with no search served it would never learn that searches got fast again.
SERVICE_HALF_LIFE_S = 1.0
# A queue not empty for this long is standing, not a burst (CoDel's interval).
STANDING_AFTER_S = 0.1


class Admission:
    def __init__(self, max_in_flight: int, max_queued: int, queue_timeout_s: float,
                 standing_timeout_s: float | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        """standing_timeout_s: the longest wait while the queue stands (None: queue_timeout_s)."""
        self.max_in_flight = max_in_flight
        self.max_queued = max_queued
        self.queue_timeout_s = queue_timeout_s
        self.standing_timeout_s = min(queue_timeout_s, queue_timeout_s if standing_timeout_s is None
                                      else standing_timeout_s)
        self._slots = asyncio.Semaphore(max_in_flight)
        self.in_flight = 0
        self.queued = 0
        self._service_s = 0.0  # moving average of a served search's time in its slot
        self._clock = clock  # the decay's and the queue's clock: a test can hold it still
        self._sampled_at = clock()
        self._queue_empty_at = clock()  # when the searches waiting now started to queue
        # Searches waiting with the long wait (they came while the queue was young), by their
        # timeout, with the loop time they arrived at: cut to the short one once it stands.
        self._long_waits: dict[asyncio.Timeout, float] = {}

    @property
    def service_s(self) -> float:
        """What a search takes now: the moving average, decayed by its age (0: none yet)."""
        age = self._clock() - self._sampled_at
        return self._service_s * 0.5 ** (age / SERVICE_HALF_LIFE_S)

    @service_s.setter
    def service_s(self, seconds: float) -> None:
        self._service_s, self._sampled_at = seconds, self._clock()

    @property
    def standing(self) -> bool:
        """Whether searches have been waiting without a break for STANDING_AFTER_S."""
        return self.queued > 0 and self._clock() - self._queue_empty_at > STANDING_AFTER_S

    @asynccontextmanager
    async def slot(self, time_left_s: float | None = None) -> AsyncIterator[Admission]:
        """A search slot for a request with `time_left_s` until its deadline (None: none)."""
        await self._enter(time_left_s)
        started = time.perf_counter()
        try:
            yield self
            self._record(time.perf_counter() - started)  # served searches only, not failures
        finally:
            self._leave()

    async def __aenter__(self) -> Admission:
        """A slot for a request without a deadline (``slot(None)``, not timed)."""
        await self._enter(None)
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        trace: TracebackType | None) -> None:
        self._leave()

    async def _enter(self, time_left_s: float | None) -> None:
        service_s = self.service_s
        if time_left_s is not None and time_left_s <= service_s:
            self._shed(f"{time_left_s * 1000:.0f} ms left before the request's deadline; a search "
                       f"takes {service_s * 1000:.0f} ms now")
        if self.in_flight >= self.max_in_flight and self.queued >= self.max_queued:
            self._shed(f"{self.in_flight} searches in flight and {self.queued} queued")
        if not self._slots.locked():  # a free slot and nobody waiting: taken without a wait
            await self._slots.acquire()
            self.in_flight += 1
            return
        standing = self.standing
        if standing:
            self._cut_long_waits()
        wait_s = self.standing_timeout_s if standing else self.queue_timeout_s
        if time_left_s is not None:
            wait_s = min(wait_s, time_left_s - service_s)
        if self.queued == 0:  # a queue starts: it was empty until now
            self._queue_empty_at = self._clock()
        self.queued += 1
        arrived = asyncio.get_running_loop().time()
        timeout = asyncio.timeout(wait_s)
        try:
            async with timeout:
                if not standing:
                    self._long_waits[timeout] = arrived
                await self._slots.acquire()
        except TimeoutError:
            allowed_s = min(wait_s, (timeout.when() or arrived) - arrived)
            cut = allowed_s < wait_s - 1e-6
            self._shed(f"no search slot within {allowed_s * 1000:.0f} ms"
                       + (", the queue has not emptied for a while" if standing or cut else ""))
        finally:
            self.queued -= 1
            self._long_waits.pop(timeout, None)
        self.in_flight += 1

    def _cut_long_waits(self) -> None:
        """Once the queue stands, the searches given the long wait get the short one too (those
        that have waited longer already are shed now): they are first in line, and new searches
        waiting 50 ms behind them would otherwise be shed in their place."""
        for timeout, arrived in self._long_waits.items():
            timeout.reschedule(min(timeout.when() or arrived, arrived + self.standing_timeout_s))
        self._long_waits.clear()

    def _leave(self) -> None:
        self.in_flight -= 1
        self._slots.release()

    def _record(self, seconds: float) -> None:
        now = self.service_s
        self.service_s = seconds if now == 0.0 else (1 - SERVICE_EWMA) * now + SERVICE_EWMA * seconds

    def _shed(self, why: str) -> None:
        METRICS.shed.inc()
        raise ResourceExhausted(f"the gateway is at capacity ({why}); retry with backoff")
