"""locust load test of the With Sense gateway over gRPC (SearchService.Search).

    locust -f deploy/locust/locustfile.py --headless --users 50 --spawn-rate 10 \
        --run-time 2m --host 127.0.0.1:50051

`--host` is the gateway's HOST:PORT (no scheme). Settings from the environment:
WITHSENSE_API_KEY / WITHSENSE_API_KEY_FILE (Bearer key), WITHSENSE_QUERIES (query file; default the
one packaged with withsense.loadtest), WITHSENSE_REGION, WITHSENSE_TOP_K (10),
WITHSENSE_TIMEOUT_S (5), WITHSENSE_USER_QPS (searches per second per user, 2).

Each user waits for its reply before the next search (locust is closed-loop): for latency under a
fixed arrival rate, without coordinated omission, use `python -m withsense.loadtest --qps N`.
"""

from __future__ import annotations

import itertools
import os
import random
import time
from pathlib import Path

import grpc
import grpc.experimental.gevent as grpc_gevent
from locust import User, constant_throughput, task

grpc_gevent.init_gevent()  # grpc's completion queue must cooperate with locust's gevent loop

from withsense.client import SearchClient  # noqa: E402
from withsense.v1 import search_pb2  # noqa: E402

_FALLBACK_QUERIES = [
    "A man is crossing a mountain pass on a metal bridge",
    "Two dogs running along a sandy beach at sunset",
    "A climber hanging from an overhang above the sea",
    "A boy in a red shirt jumping into a swimming pool",
]


def _load_queries() -> list[str]:
    path = os.environ.get("WITHSENSE_QUERIES")
    if path:
        text = Path(path).read_text("utf-8")
    else:
        try:
            from withsense.loadtest import load_queries

            return load_queries()
        except ImportError:
            return list(_FALLBACK_QUERIES)
    queries = [ln.strip() for ln in text.splitlines()]
    return [q for q in queries if q and not q.startswith("#")] or list(_FALLBACK_QUERIES)


QUERIES = _load_queries()
API_KEY = os.environ.get("WITHSENSE_API_KEY") or None
API_KEY_FILE = os.environ.get("WITHSENSE_API_KEY_FILE") or None
TOP_K = int(os.environ.get("WITHSENSE_TOP_K", "10"))
REGION = os.environ.get("WITHSENSE_REGION", "")
TIMEOUT_S = float(os.environ.get("WITHSENSE_TIMEOUT_S", "5"))
USER_QPS = float(os.environ.get("WITHSENSE_USER_QPS", "2"))


class SearchUser(User):
    """A photographer searching: one gRPC channel (one connection) per user, so that the load
    spreads over gateway pods behind a Kubernetes Service."""

    wait_time = constant_throughput(USER_QPS)

    def on_start(self) -> None:
        if not self.host:
            raise ValueError("give the gateway as --host HOST:PORT")
        target = self.host.removeprefix("grpc://").removeprefix("http://")
        # No channel retries: locust must count every failure, as a user would see it.
        self._client = SearchClient(target, api_key=API_KEY, retries=False,
                                    api_key_file=Path(API_KEY_FILE) if API_KEY_FILE else None)
        start = random.randrange(len(QUERIES))
        self._queries = itertools.cycle(QUERIES[start:] + QUERIES[:start])

    def on_stop(self) -> None:
        self._client.close()

    @task
    def search(self) -> None:
        query = next(self._queries)
        request = search_pb2.SearchRequest(query=query, top_k=TOP_K, region=REGION)
        started = time.perf_counter()
        exception: Exception | None = None
        length = 0
        name = "Search"
        try:
            reply = self._client.stub.Search(request, timeout=TIMEOUT_S, metadata=self._client.metadata)
            length = reply.ByteSize()
            if reply.blocked:
                name = "Search (blocked query)"
        except grpc.RpcError as exc:
            # One short line per status in locust's error report, e.g. "UNAVAILABLE: ...".
            code = exc.code() if isinstance(exc, grpc.Call) else None
            details = exc.details() if isinstance(exc, grpc.Call) else str(exc)
            exception = RuntimeError(f"{code.name if code else 'UNKNOWN'}: {details}")
        self.environment.events.request.fire(
            request_type="grpc",
            name=name,
            response_time=(time.perf_counter() - started) * 1000.0,
            response_length=length,
            exception=exception,
            context={"query": query},
        )
