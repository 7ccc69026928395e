"""Load generator for the gateway's SearchService (grpc.aio).

Two modes:

- open loop (`qps`): request i is due at t_i = i / qps whatever happened to the earlier ones, and
  its latency is measured from t_i, not from when it was actually sent. A server that stalls for
  a second therefore shows a second of queueing on every request due during the stall, as real
  users would see it: the measurement is safe from coordinated omission. `concurrency`, if also
  given, caps the requests in flight; waiting for a slot still counts as latency.
- closed loop (`concurrency` only): N workers, each sending its next request when the previous one
  returns. It measures service time at a given parallelism; it cannot show queueing, because a
  slow server slows the generator down with it.

Both stop at `duration_s` (no new request after it; those in flight finish, bounded by their
deadline) or after `max_requests` requests, whichever comes first.
"""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import grpc

from withsense.loadtest.report import LoadReport

#: One request: takes the request number, returns "OK" or the gRPC status name of the failure.
Call = Callable[[int], Awaitable[str]]

_clock = time.perf_counter


def open_loop_schedule(
    qps: float, duration_s: float, max_requests: int | None = None
) -> Iterator[float]:
    """Send times, in seconds from the start, of an open-loop run: i / qps for every i with
    i / qps < duration_s, and at most max_requests of them."""
    if qps <= 0:
        raise ValueError(f"qps must be > 0, got {qps}")
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    for i in itertools.count():
        if max_requests is not None and i >= max_requests:
            return
        t = i / qps
        if t >= duration_s:
            return
        yield t


@dataclass
class _Tally:
    latencies_s: list[float] = field(default_factory=list)
    served_s: list[float] = field(default_factory=list)  # the OK responses' latencies
    statuses: Counter[str] = field(default_factory=Counter)
    sent: int = 0
    last_done: float = 0.0
    max_send_lag_s: float = 0.0

    def record(self, started: float, done: float, status: str) -> None:
        self.latencies_s.append(done - started)
        if status == "OK":
            self.served_s.append(done - started)
        self.statuses[status] += 1
        self.last_done = max(self.last_done, done)


async def _guarded(call: Call, i: int) -> str:
    try:
        return await call(i)
    except asyncio.CancelledError:
        raise
    except Exception as exc:  # a bug in the caller must not stop the run; count it instead
        return f"CLIENT_{type(exc).__name__}"


async def run_open_loop(
    call: Call,
    *,
    qps: float,
    duration_s: float,
    max_requests: int | None = None,
    max_in_flight: int | None = None,
) -> tuple[_Tally, float]:
    """Fires call(i) at start + i / qps; returns the tally and the start time."""
    tally = _Tally()
    slots = asyncio.Semaphore(max_in_flight) if max_in_flight else None
    pending: set[asyncio.Task[None]] = set()

    async def one(i: int, due: float) -> None:
        if slots is None:
            status = await _guarded(call, i)
        else:
            async with slots:
                status = await _guarded(call, i)
        tally.record(due, _clock(), status)

    start = _clock()
    for i, offset in enumerate(open_loop_schedule(qps, duration_s, max_requests)):
        due = start + offset
        delay = due - _clock()
        if delay > 0:
            await asyncio.sleep(delay)
        tally.max_send_lag_s = max(tally.max_send_lag_s, _clock() - due)
        task = asyncio.create_task(one(i, due))
        pending.add(task)
        task.add_done_callback(pending.discard)
        tally.sent += 1
    if pending:
        await asyncio.gather(*pending)
    return tally, start


async def run_closed_loop(
    call: Call, *, concurrency: int, duration_s: float, max_requests: int | None = None
) -> tuple[_Tally, float]:
    """N workers, each sending its next request when the previous one returned."""
    if concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    tally = _Tally()
    numbers = itertools.count()
    start = _clock()
    stop_at = start + duration_s

    async def worker() -> None:
        while _clock() < stop_at:
            i = next(numbers)
            if max_requests is not None and i >= max_requests:
                return
            tally.sent += 1
            sent = _clock()
            status = await _guarded(call, i)
            tally.record(sent, _clock(), status)

    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return tally, start


def load_queries(path: str | Path | None = None) -> list[str]:
    """Queries from a file (one per line, # comments skipped); the packaged default without one."""
    if path is None:
        text = resources.files("withsense.loadtest").joinpath("queries.txt").read_text("utf-8")
    else:
        text = Path(path).read_text("utf-8")
    queries = [line.strip() for line in text.splitlines()]
    queries = [q for q in queries if q and not q.startswith("#")]
    if not queries:
        raise ValueError(f"no queries in {path or 'the default query file'}")
    return queries


class _SearchClient:
    """Search calls over several channels, each with its own connection, so that a Kubernetes
    ClusterIP Service (which balances connections, not calls) spreads them over gateway pods."""

    def __init__(
        self,
        target: str,
        *,
        queries: Sequence[str],
        top_k: int,
        region: str,
        api_key: str | None,
        timeout_s: float,
        channels: int,
        tls: bool,
    ) -> None:
        from withsense.client import AsyncSearchClient
        from withsense.v1 import search_pb2

        # No channel retries: the load test must see every failure, as a user would.
        self._clients = [
            AsyncSearchClient(target, api_key=api_key, tls=tls, retries=False, options=[
                ("grpc.use_local_subchannel_pool", 1),  # one connection per channel, not shared
            ])
            for _ in range(channels)
        ]
        self._requests = [
            search_pb2.SearchRequest(query=q, top_k=top_k, region=region) for q in queries
        ]
        self._timeout_s = timeout_s
        self.target = target
        self.blocked = 0

    async def connect(self, timeout_s: float) -> None:
        try:
            await asyncio.wait_for(
                asyncio.gather(*(c.channel.channel_ready() for c in self._clients)), timeout_s
            )
        except TimeoutError as exc:
            raise ConnectionError(
                f"cannot connect to the gateway at {self.target} within {timeout_s:.0f} s"
            ) from exc

    async def search(self, i: int) -> str:
        client = self._clients[i % len(self._clients)]
        request = self._requests[i % len(self._requests)]
        try:
            # The raw stub: the report times the RPC, not the conversion to dataclasses.
            reply = await client.stub.Search(request, timeout=self._timeout_s, metadata=client.metadata)
        except grpc.aio.AioRpcError as exc:
            return exc.code().name
        if reply.blocked:
            self.blocked += 1
        return "OK"

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self._clients))


async def run_loadtest_async(
    target: str,
    *,
    qps: float | None,
    concurrency: int | None,
    duration_s: float,
    queries: list[str],
    top_k: int = 10,
    region: str = "",
    api_key: str | None = None,
    timeout_s: float = 5.0,
    max_requests: int | None = None,
    channels: int = 4,
    tls: bool = False,
    warmup_requests: int = 0,
    connect_timeout_s: float = 10.0,
) -> LoadReport:
    """Runs a load test of SearchService at target ("HOST:PORT"). `qps` selects the open loop
    (with `concurrency` as an optional in-flight cap); `concurrency` alone the closed loop.
    `warmup_requests` are sent first, one at a time, and not counted."""
    if qps is None and concurrency is None:
        raise ValueError("give qps (open loop) or concurrency (closed loop)")
    if qps is not None and qps <= 0:
        raise ValueError(f"qps must be > 0, got {qps}")
    if concurrency is not None and concurrency < 1:
        raise ValueError(f"concurrency must be >= 1, got {concurrency}")
    if duration_s <= 0:
        raise ValueError(f"duration_s must be > 0, got {duration_s}")
    if max_requests is not None and max_requests < 1:
        raise ValueError(f"max_requests must be >= 1, got {max_requests}")
    if not queries:
        raise ValueError("queries must not be empty")
    if timeout_s <= 0:
        raise ValueError(f"timeout_s must be > 0, got {timeout_s}")
    client = _SearchClient(
        target,
        queries=queries,
        top_k=top_k,
        region=region,
        api_key=api_key,
        timeout_s=timeout_s,
        channels=max(1, channels),
        tls=tls,
    )
    try:
        await client.connect(connect_timeout_s)
        for i in range(warmup_requests):
            await client.search(i)
        client.blocked = 0
        if qps is not None:
            tally, start = await run_open_loop(
                client.search,
                qps=qps,
                duration_s=duration_s,
                max_requests=max_requests,
                max_in_flight=concurrency,
            )
            mode = "open"
        else:
            assert concurrency is not None
            tally, start = await run_closed_loop(
                client.search,
                concurrency=concurrency,
                duration_s=duration_s,
                max_requests=max_requests,
            )
            mode = "closed"
    finally:
        await client.close()
    elapsed = max(tally.last_done - start, 1e-9) if tally.sent else 0.0
    ok = tally.statuses.get("OK", 0)
    return LoadReport.from_samples(
        latencies_s=tally.latencies_s,
        served_latencies_s=tally.served_s,
        statuses=tally.statuses,
        target=target,
        mode=mode,
        duration_s=duration_s,
        elapsed_s=elapsed,
        offered_qps=float(qps) if qps is not None else (tally.sent / elapsed if elapsed else 0.0),
        achieved_qps=ok / elapsed if elapsed else 0.0,
        requests=tally.sent,
        concurrency=concurrency,
        blocked=client.blocked,
        max_send_lag_ms=tally.max_send_lag_s * 1000.0,
    )


def run_loadtest(target: str, **options: Any) -> LoadReport:
    """Blocking form of `run_loadtest_async` (runs its own event loop); same options."""
    return asyncio.run(run_loadtest_async(target, **options))
