"""A small LRU cache of query embeddings, keyed by the texts and the model version.

Repeated queries (a shared URL, a popular search, a load test) skip the worker's text tower.
The key includes the model version, so a new model never answers with an old model's vectors.
The hit rate is a metric (`withsense_gateway_query_cache_total{result}`).
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Generic, TypeVar

from withsense.gateway.metrics import METRICS

V = TypeVar("V")


class QueryCache(Generic[V]):
    def __init__(self, size: int) -> None:
        self.size = size
        self._entries: OrderedDict[tuple[tuple[str, ...], str], V] = OrderedDict()

    def get(self, texts: tuple[str, ...], model_version: str) -> V | None:
        if self.size <= 0:
            return None
        value = self._entries.get((texts, model_version))
        METRICS.query_cache.labels(result="miss" if value is None else "hit").inc()
        if value is not None:
            self._entries.move_to_end((texts, model_version))
        return value

    def put(self, texts: tuple[str, ...], model_version: str, value: V) -> None:
        if self.size <= 0:
            return
        self._entries[(texts, model_version)] = value
        self._entries.move_to_end((texts, model_version))
        while len(self._entries) > self.size:
            self._entries.popitem(last=False)

    def __len__(self) -> int:
        return len(self._entries)
