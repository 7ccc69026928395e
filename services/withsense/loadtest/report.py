"""What a load test measured: `LoadReport`, nearest-rank percentiles and a printable table."""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

PERCENTILES: tuple[float, ...] = (50, 90, 95, 99)


def percentile(sorted_values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile of already sorted values: the smallest value v such that at
    least q% of the values are <= v (no interpolation, so it is always a measured value).
    q=0 gives the minimum, q=100 the maximum; None for no values."""
    if not 0 <= q <= 100:
        raise ValueError(f"percentile must be within 0..100, got {q}")
    n = len(sorted_values)
    if n == 0:
        return None
    # round() first: q / 100 * n in floating point can land just above an integer (7.000000001).
    rank = math.ceil(round(q / 100 * n, 9))
    return float(sorted_values[min(max(rank, 1), n) - 1])


# The status of a request shed by the gateway's admission control: an answer at capacity, which
# the report counts apart from errors.
SHED_CODE = "RESOURCE_EXHAUSTED"


@dataclass
class LoadReport:
    """One load test run. Latencies are in milliseconds over every completed request, failed ones
    included (a timeout is a latency too); in open-loop mode they are measured from each
    request's scheduled send time, so time spent queueing behind a slow server is counted.
    ``served_*`` are over the OK responses alone: what the searches the service accepted cost
    their users (shed requests are quick and would pull the first figures down)."""

    target: str
    mode: str  # "open" (fixed arrival rate) or "closed" (N concurrent workers)
    duration_s: float  # asked for
    elapsed_s: float  # from the first scheduled send to the last completion
    offered_qps: float  # open: the schedule's rate; closed: requests sent / elapsed
    achieved_qps: float  # successful responses / elapsed
    requests: int  # sent
    ok: int
    errors_by_code: dict[str, int] = field(default_factory=dict)  # gRPC status name -> count
    shed: int = 0  # RESOURCE_EXHAUSTED: refused at once by admission control, not an error
    p50_ms: float | None = None
    p90_ms: float | None = None
    p95_ms: float | None = None
    p99_ms: float | None = None
    max_ms: float | None = None
    mean_ms: float | None = None
    served_p50_ms: float | None = None
    served_p99_ms: float | None = None
    concurrency: int | None = None  # closed: workers; open: the in-flight cap, if any
    blocked: int = 0  # OK responses whose query the policy blocked
    max_send_lag_ms: float = 0.0  # open: worst lateness of the generator against its schedule

    @property
    def errors(self) -> int:
        return sum(self.errors_by_code.values())

    @property
    def error_rate(self) -> float:
        return self.errors / self.requests if self.requests else 0.0

    @property
    def shed_rate(self) -> float:
        return self.shed / self.requests if self.requests else 0.0

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["errors"] = self.errors
        data["error_rate"] = self.error_rate
        data["shed_rate"] = self.shed_rate
        return data

    @classmethod
    def from_samples(
        cls,
        *,
        latencies_s: Sequence[float],
        statuses: Mapping[str, int],
        served_latencies_s: Sequence[float] = (),
        **fields: Any,
    ) -> LoadReport:
        """Builds a report from raw latencies (seconds), those of the OK responses, and a
        status-name -> count tally."""
        ordered = sorted(latencies_s)
        ms = [v * 1000.0 for v in ordered]
        served_ms = sorted(v * 1000.0 for v in served_latencies_s)
        ok = int(statuses.get("OK", 0))
        errors = {k: int(v) for k, v in sorted(statuses.items())
                  if k not in ("OK", SHED_CODE) and v}
        return cls(
            ok=ok,
            errors_by_code=errors,
            shed=int(statuses.get(SHED_CODE, 0)),
            p50_ms=percentile(ms, 50),
            p90_ms=percentile(ms, 90),
            p95_ms=percentile(ms, 95),
            p99_ms=percentile(ms, 99),
            max_ms=ms[-1] if ms else None,
            mean_ms=sum(ms) / len(ms) if ms else None,
            served_p50_ms=percentile(served_ms, 50),
            served_p99_ms=percentile(served_ms, 99),
            **fields,
        )


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f}"


def _rows(report: LoadReport) -> list[tuple[str, str]]:
    offered = f"{report.offered_qps:.1f}"
    if report.mode == "closed":
        offered += " (closed loop: sent / elapsed)"
    rows = [
        ("target", report.target),
        ("mode", report.mode + (f", concurrency {report.concurrency}" if report.concurrency else "")),
        ("duration", f"{report.elapsed_s:.1f} s (asked {report.duration_s:.1f} s)"),
        ("offered qps", offered),
        ("achieved qps", f"{report.achieved_qps:.1f}"),
        ("requests", str(report.requests)),
        ("ok", f"{report.ok} ({report.blocked} blocked by the query policy)"),
        ("shed", f"{report.shed} ({100 * report.shed_rate:.2f} %, RESOURCE_EXHAUSTED at once)"),
        ("errors", f"{report.errors} ({100 * report.error_rate:.2f} %)"),
    ]
    rows += [(f"  {code}", str(n)) for code, n in report.errors_by_code.items()]
    rows += [
        ("latency p50", _ms(report.p50_ms) + " ms"),
        ("latency p90", _ms(report.p90_ms) + " ms"),
        ("latency p95", _ms(report.p95_ms) + " ms"),
        ("latency p99", _ms(report.p99_ms) + " ms"),
        ("latency max", _ms(report.max_ms) + " ms"),
        ("latency mean", _ms(report.mean_ms) + " ms"),
        ("served p50 / p99", f"{_ms(report.served_p50_ms)} / {_ms(report.served_p99_ms)} ms (ok only)"),
    ]
    if report.mode == "open":
        rows.append(("max send lag", f"{report.max_send_lag_ms:.1f} ms"))
    return rows


def render_table(report: LoadReport) -> str:
    """The report as a table (rich when installed, plain text otherwise), with a warning when the
    generator itself fell behind its schedule."""
    rows = _rows(report)
    warning = ""
    if report.mode == "open" and report.max_send_lag_ms > 50:
        warning = (
            f"warning: the load generator fell up to {report.max_send_lag_ms:.0f} ms behind its "
            "schedule (client CPU-bound?); latencies still count from the schedule, but run more "
            "generators for higher rates\n"
        )
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:  # pragma: no cover - rich is a dependency of the project
        width = max(len(k) for k, _ in rows)
        body = "\n".join(f"{k.ljust(width)}  {v}" for k, v in rows)
        return f"With Sense load test\n{body}\n{warning}"
    table = Table(title="With Sense load test", show_header=True)
    table.add_column("metric")
    table.add_column("value", justify="right")
    for key, value in rows:
        table.add_row(key, value)
    buffer = io.StringIO()
    console = Console(file=buffer, width=100, color_system=None, force_terminal=False)
    console.print(table)
    return buffer.getvalue() + warning
