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


METRICS = GatewayMetrics(
    searches=Counter("withsense_gateway_searches_total", "Searches by outcome", ["outcome"]),
    search_seconds=Histogram("withsense_gateway_search_seconds", "Search latency"),
    indexed=Counter("withsense_gateway_indexed_total", "Photos written to the store"),
    errors=Counter("withsense_gateway_errors_total", "Failed calls by gRPC code", ["method", "code"]),
)
