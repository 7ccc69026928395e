"""The load test engine (services/withsense/loadtest) and the locust file (deploy/locust)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
import time
from pathlib import Path

import pytest
from withsense.loadtest import (
    LoadReport,
    load_queries,
    open_loop_schedule,
    percentile,
    render_table,
    run_closed_loop,
    run_loadtest_async,
    run_open_loop,
)
from withsense.loadtest.__main__ import build_parser

from ._support import DEPLOY, find_tool, tool_missing

# --------------------------------------------------------------------------- percentiles


def test_nearest_rank_percentiles() -> None:
    values = [float(v) for v in range(1, 101)]  # 1..100
    assert percentile(values, 50) == 50
    assert percentile(values, 90) == 90
    assert percentile(values, 99) == 99
    assert percentile(values, 99.5) == 100
    assert percentile(values, 100) == 100
    assert percentile(values, 0) == 1
    # 7 / 100 * 100 is 7.000000000000001 in floating point: still the 7th value.
    assert percentile(values, 7) == 7
    assert percentile([5.0], 50) == percentile([5.0], 99) == 5.0
    assert percentile([1.0, 2.0, 3.0, 4.0], 50) == 2.0  # a measured value, never interpolated
    assert percentile([1.0, 2.0, 3.0, 4.0], 51) == 3.0
    assert percentile([], 50) is None
    with pytest.raises(ValueError):
        percentile(values, 101)


def test_report_from_samples_and_rendering() -> None:
    latencies = [0.010] * 98 + [0.200, 1.000]
    report = LoadReport.from_samples(
        latencies_s=latencies,
        statuses={"OK": 95, "UNAVAILABLE": 2, "DEADLINE_EXCEEDED": 1, "RESOURCE_EXHAUSTED": 2},
        served_latencies_s=[0.010] * 94 + [0.200],
        target="127.0.0.1:50051", mode="open", duration_s=10.0, elapsed_s=10.0,
        offered_qps=10.0, achieved_qps=9.7, requests=100, blocked=3,
    )
    # Shed requests (admission control) are counted apart from errors.
    assert report.ok == 95 and report.errors == 3 and report.shed == 2
    assert report.errors_by_code == {"DEADLINE_EXCEEDED": 1, "UNAVAILABLE": 2}
    assert report.p50_ms == pytest.approx(10.0)
    assert report.p99_ms == pytest.approx(200.0)
    assert report.max_ms == pytest.approx(1000.0)
    # Over the OK responses alone: the 1 s failure is not among them.
    assert report.served_p50_ms == pytest.approx(10.0) and report.served_p99_ms == pytest.approx(200.0)
    data = json.loads(json.dumps(report.to_dict()))
    for key in ("offered_qps", "achieved_qps", "requests", "ok", "errors_by_code", "p50_ms",
                "p90_ms", "p95_ms", "p99_ms", "max_ms"):
        assert key in data
    assert data["error_rate"] == pytest.approx(0.03) and data["shed_rate"] == pytest.approx(0.02)
    table = render_table(report)
    for text in ("p99", "200.0", "UNAVAILABLE", "achieved qps", "shed", "10.0 / 200.0 ms (ok only)"):
        assert text in table
    empty = LoadReport.from_samples(
        latencies_s=[], statuses={}, target="t", mode="closed", duration_s=1.0, elapsed_s=0.0,
        offered_qps=0.0, achieved_qps=0.0, requests=0,
    )
    assert empty.p50_ms is None and "-" in render_table(empty)


# --------------------------------------------------------------------------- schedule


def test_open_loop_schedule_is_fixed_in_advance() -> None:
    assert list(open_loop_schedule(10, 1.0)) == pytest.approx([i / 10 for i in range(10)])
    assert len(list(open_loop_schedule(3, 2.0))) == 6
    assert list(open_loop_schedule(100, 10.0, max_requests=3)) == pytest.approx([0, 0.01, 0.02])
    assert list(open_loop_schedule(0.5, 5.0)) == [0.0, 2.0, 4.0]
    for bad in ((0, 1.0), (-1, 1.0), (1, 0)):
        with pytest.raises(ValueError):
            list(open_loop_schedule(*bad))


async def test_open_loop_sends_on_schedule_whatever_the_replies() -> None:
    """Request i leaves at i / qps even when every reply takes longer than the gap."""
    sent: list[float] = []

    async def slow(i: int) -> str:
        sent.append(time.perf_counter())
        await asyncio.sleep(0.3)
        return "OK"

    tally, start = await run_open_loop(slow, qps=50, duration_s=0.2)
    assert tally.sent == 10 and len(sent) == 10
    assert sent[-1] - start < 1.0, "the generator waited for replies (closed loop: 3 s)"
    assert tally.statuses == {"OK": 10}


async def test_open_loop_counts_queueing_from_the_scheduled_time() -> None:
    """Coordinated omission: a server that takes 20 ms per request, one at a time, offered 200/s.
    Measured from the scheduled times, the queue shows (latencies grow to ~0.3 s); measured from
    the actual sends, every request would look like 20 ms."""

    async def serial(i: int) -> str:
        await asyncio.sleep(0.02)
        return "OK"

    tally, _ = await run_open_loop(serial, qps=200, duration_s=0.1, max_in_flight=1)
    latencies = sorted(tally.latencies_s)
    assert tally.sent == 20
    assert latencies[0] >= 0.018
    p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
    assert p50 is not None and p99 is not None
    assert p99 >= 0.2, latencies
    assert p50 >= 0.1, latencies


async def test_open_loop_counts_failures_and_client_errors() -> None:
    async def flaky(i: int) -> str:
        if i % 4 == 3:
            raise RuntimeError("bug in the caller")
        return "UNAVAILABLE" if i % 2 else "OK"

    tally, _ = await run_open_loop(flaky, qps=1000, duration_s=1.0, max_requests=8)
    assert tally.sent == 8
    assert tally.statuses == {"OK": 4, "UNAVAILABLE": 2, "CLIENT_RuntimeError": 2}
    assert len(tally.served_s) == 4 and len(tally.latencies_s) == 8  # served: the OK ones alone


async def test_closed_loop_keeps_n_requests_in_flight_and_stops() -> None:
    in_flight = 0
    most = 0

    async def call(i: int) -> str:
        nonlocal in_flight, most
        in_flight += 1
        most = max(most, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1
        return "OK"

    started = time.perf_counter()
    tally, _ = await run_closed_loop(call, concurrency=3, duration_s=0.1)
    assert time.perf_counter() - started < 2.0
    assert most == 3 and 9 <= tally.sent <= 40
    assert all(0.009 <= v < 1.0 for v in tally.latencies_s)
    tally, _ = await run_closed_loop(call, concurrency=4, duration_s=10.0, max_requests=7)
    assert tally.sent == 7


async def test_run_loadtest_rejects_bad_arguments_before_connecting() -> None:
    queries = ["a photo"]
    bad: list[tuple[float | None, int | None]] = [(None, None), (0, None), (None, 0)]
    for qps, concurrency in bad:
        with pytest.raises(ValueError):
            await run_loadtest_async("127.0.0.1:1", qps=qps, concurrency=concurrency,
                                     duration_s=1.0, queries=queries)
    with pytest.raises(ValueError):
        await run_loadtest_async("127.0.0.1:1", qps=1, concurrency=None, duration_s=1.0,
                                 queries=[])


async def test_run_loadtest_says_when_the_gateway_is_unreachable() -> None:
    with pytest.raises(ConnectionError, match="127.0.0.1:1"):
        await run_loadtest_async("127.0.0.1:1", qps=1, concurrency=None, duration_s=1.0,
                                 queries=["a photo"], connect_timeout_s=0.5)


# --------------------------------------------------------------------------- queries, CLI


def test_default_queries() -> None:
    queries = load_queries()
    assert 45 <= len(queries) <= 60
    assert len(set(queries)) == len(queries)
    assert not any(q.startswith("#") for q in queries)
    children = [q for q in queries if any(w in q.lower().split() for w in
                                          ("boy", "girl", "kids", "baby", "child"))]
    assert 2 <= len(children) <= 8, children
    assert "A man is crossing a mountain pass on a metal bridge" in queries


def test_custom_query_file(tmp_path: Path) -> None:
    path = tmp_path / "q.txt"
    path.write_text("# comment\n\n a red car \nsnow\n")
    assert load_queries(path) == ["a red car", "snow"]
    path.write_text("# nothing\n")
    with pytest.raises(ValueError):
        load_queries(path)


def test_module_command_line() -> None:
    args = build_parser().parse_args(
        ["--target", "gw:50051", "--qps", "100", "--duration", "60", "--json"]
    )
    assert (args.target, args.qps, args.concurrency, args.duration) == ("gw:50051", 100, None, 60)
    with pytest.raises(SystemExit):
        build_parser().parse_args(["--qps", "1", "--concurrency", "2"])
    done = subprocess.run([sys.executable, "-m", "withsense.loadtest", "--help"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "--qps" in done.stdout


# --------------------------------------------------------------------------- locust


def test_locustfile_loads_in_locust() -> None:
    locust = find_tool("locust")
    if locust is None:
        tool_missing("locust not found: pip install locust (the deploy extra)")
    done = subprocess.run(
        [locust, "-f", str(DEPLOY / "locust" / "locustfile.py"), "--list"],
        capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert "SearchUser" in done.stdout


# --------------------------------------------------------------------------- smoke (real gateway)


@pytest.mark.slow
async def test_smoke_against_a_real_gateway(gateway_target: str) -> None:
    queries = load_queries()[:5]
    report = await run_loadtest_async(
        gateway_target, qps=20, concurrency=None, duration_s=2.0, queries=queries, top_k=5,
        region="DE", timeout_s=30.0,
    )
    assert report.mode == "open" and report.requests == 40
    assert report.ok == report.requests, report.errors_by_code
    assert report.achieved_qps > 0
    assert report.p50_ms is not None and report.p99_ms is not None and report.max_ms is not None
    assert 0 < report.p50_ms <= report.p99_ms <= report.max_ms
    closed = await run_loadtest_async(
        gateway_target, qps=None, concurrency=2, duration_s=30.0, queries=queries,
        max_requests=10, timeout_s=30.0,
    )
    assert closed.mode == "closed" and closed.requests == 10 and closed.ok == 10
    assert "p99" in render_table(closed)
