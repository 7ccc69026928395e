"""The worker's Prometheus metrics."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram


class Metrics:
    """Prometheus metrics of one worker, in their own registry (several workers per process
    in tests; `server.start_worker` exports it over HTTP when `metrics_port` is set)."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        reg = self.registry
        self.requests = Counter(
            "withsense_worker_requests", "gRPC requests by method and status code.",
            ["method", "code"], registry=reg,
        )
        self.latency = Histogram(
            "withsense_worker_request_seconds", "gRPC request latency in the worker, seconds.",
            ["method"], registry=reg,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )
        self.in_flight = Gauge(
            "withsense_worker_in_flight_requests", "Requests being handled now.", registry=reg
        )
        self.batch_size = Histogram(
            "withsense_worker_batch_size",
            "Items per model batch (texts, photos, or Score queries).", ["kind"], registry=reg,
            buckets=(1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024),
        )
        self.batch_requests = Histogram(
            "withsense_worker_batch_requests", "Requests merged into one model batch.",
            ["kind"], registry=reg, buckets=(1, 2, 3, 4, 6, 8, 12, 16, 32, 64),
        )
        self.batch_seconds = Histogram(
            "withsense_worker_batch_seconds", "Model time of one batch, seconds.", ["kind"],
            registry=reg,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
        )
        self.queue_seconds = Histogram(
            "withsense_worker_queue_seconds", "Time a request waited for its batch to start.",
            ["kind"], registry=reg,
            buckets=(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 5),
        )
        self.items = Counter(
            "withsense_worker_items", "Texts, photos and Score candidates processed.", ["kind"],
            registry=reg,
        )
        self.model_loaded = Gauge(
            "withsense_worker_model_loaded", "1 once the model is loaded and serving.", registry=reg
        )
