"""Prometheus metrics of the gateway (served on WITHSENSE_METRICS_PORT when set)."""

from __future__ import annotations

from dataclasses import dataclass

from prometheus_client import Counter, Histogram


@dataclass(frozen=True)
class GatewayMetrics:
    searches: Counter
    search_seconds: Histogram
    indexed: Counter
    errors: Counter
    shed: Counter
    query_cache: Counter
    stage_seconds: Histogram


METRICS = GatewayMetrics(
    searches=Counter("withsense_gateway_searches_total", "Searches by outcome", ["outcome"]),
    search_seconds=Histogram("withsense_gateway_search_seconds", "Search latency"),
    indexed=Counter("withsense_gateway_indexed_total", "Photos written to the store"),
    errors=Counter("withsense_gateway_errors_total", "Failed calls by gRPC code", ["method", "code"]),
    shed=Counter("withsense_gateway_shed_total", "Searches shed by admission control"),
    query_cache=Counter("withsense_gateway_query_cache_total", "Query embedding cache lookups",
                        ["result"]),
    # Where a search's wall time goes (docs/benchmarks.md, Search path): policy, embed, store,
    # score, fuse.
    stage_seconds=Histogram("withsense_gateway_search_stage_seconds",
                            "Wall time of each stage of a search", ["stage"],
                            buckets=(0.0002, 0.0005, 0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1,
                                     0.2, 0.5, 1.0)),
)
