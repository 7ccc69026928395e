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


METRICS = GatewayMetrics(
    searches=Counter("withsense_gateway_searches_total", "Searches by outcome", ["outcome"]),
    search_seconds=Histogram("withsense_gateway_search_seconds", "Search latency"),
    indexed=Counter("withsense_gateway_indexed_total", "Photos written to the store"),
    errors=Counter("withsense_gateway_errors_total", "Failed calls by gRPC code", ["method", "code"]),
    shed=Counter("withsense_gateway_shed_total", "Searches shed by admission control"),
    query_cache=Counter("withsense_gateway_query_cache_total", "Query embedding cache lookups",
                        ["result"]),
)
