"""Load testing of the gateway: open-loop (fixed arrival rate, coordinated-omission safe) and
closed-loop (N concurrent workers) runs of SearchService.Search with latency percentiles.

    from withsense.loadtest import load_queries, render_table, run_loadtest
    report = run_loadtest("127.0.0.1:50051", qps=50, concurrency=None, duration_s=30,
                          queries=load_queries())
    print(render_table(report))

Also `python -m withsense.loadtest --help` (and, wired by the CLI, `withsense loadtest`).
"""

from withsense.loadtest.engine import (
    load_queries,
    open_loop_schedule,
    run_closed_loop,
    run_loadtest,
    run_loadtest_async,
    run_open_loop,
)
from withsense.loadtest.report import PERCENTILES, LoadReport, percentile, render_table

__all__ = [
    "PERCENTILES",
    "LoadReport",
    "load_queries",
    "open_loop_schedule",
    "percentile",
    "render_table",
    "run_closed_loop",
    "run_loadtest",
    "run_loadtest_async",
    "run_open_loop",
]
