"""Load testing of the gateway: open-loop (fixed arrival rate, coordinated-omission safe) and
closed-loop (N concurrent workers) runs of SearchService.Search with latency percentiles.

    from withsense.loadtest import load_queries, render_table, run_loadtest
    report = run_loadtest("127.0.0.1:50051", qps=50, concurrency=None, duration_s=30,
                          queries=load_queries())
    print(render_table(report))

Also `python -m withsense.loadtest --help`, the same command line as `withsense loadtest`
(``withsense.loadtest.cli``).
"""

from __future__ import annotations

import importlib
from typing import Any

# Exported lazily (PEP 562): `withsense loadtest --help` builds its parser from
# withsense.loadtest.cli without importing grpc and the engine.
_EXPORTS = {
    "load_queries": "engine", "open_loop_schedule": "engine", "run_closed_loop": "engine",
    "run_loadtest": "engine", "run_loadtest_async": "engine", "run_open_loop": "engine",
    "PERCENTILES": "report", "LoadReport": "report", "percentile": "report",
    "render_table": "report",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"withsense.loadtest.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
