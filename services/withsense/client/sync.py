"""SearchClient: the blocking client of the gateway (scripts, notebooks, locust, health checks)."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path

import grpc

from withsense.client.base import ClientBase, delete_request, search_request
from withsense.client.channel import open_channel
from withsense.client.folder import find_photos, folder_requests
from withsense.client.types import IndexReport, SearchResult, Stats
from withsense.v1 import search_pb2 as pb
from withsense.v1 import search_pb2_grpc as pb_grpc


class SearchClient(ClientBase):
    """    with SearchClient("127.0.0.1:50051", api_key_file="key.txt") as client:
            for hit in client.search("a cup of coffee", top_k=5, region="US").hits: ...

    gRPC errors arrive as grpc.RpcError with the gateway's status code and message.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.channel = open_channel(self.settings)
        self.stub = pb_grpc.SearchServiceStub(self.channel)

    def search(self, query: str, *, top_k: int = 10, region: str = "", min_score: float = 0.0,
               filters: Mapping[str, str] | None = None, timeout_s: float | None = None) -> SearchResult:
        reply = self.stub.Search(search_request(query, top_k, region, min_score, filters),
                                 metadata=self.metadata, timeout=self._timeout(timeout_s))
        return SearchResult.from_proto(reply)

    def index(self, requests: Iterable[pb.IndexImagesRequest], *,
              timeout_s: float | None = 3600.0) -> IndexReport:
        """Streams IndexImages requests (photo bytes, uri, descriptions, payload)."""
        report = IndexReport()
        report.add_reply(self.stub.IndexImages(iter(requests), metadata=self.metadata,
                                               timeout=self._timeout(timeout_s)))
        return report

    def index_folder(self, folder: Path, descriptions: Mapping[str, list[str]] | None = None, *,
                     photos: list[Path] | None = None, progress: Callable[[int], None] | None = None,
                     timeout_s: float | None = 3600.0) -> IndexReport:
        """Indexes every photo under `folder` (idempotent: unchanged photos are skipped)."""
        photos = find_photos(folder) if photos is None else photos
        failures: list[tuple[str, str]] = []
        report = self.index(folder_requests(folder, photos, dict(descriptions or {}), failures,
                                            progress), timeout_s=timeout_s)
        report.failures = failures + report.failures
        return report

    def delete(self, *, image_ids: Sequence[str] = (), uris: Sequence[str] = (),
               timeout_s: float | None = None) -> int:
        reply = self.stub.DeleteImages(delete_request(image_ids, uris), metadata=self.metadata,
                                       timeout=self._timeout(timeout_s))
        return reply.deleted

    def stats(self, *, timeout_s: float | None = None) -> Stats:
        return Stats.from_proto(self.stub.GetStats(pb.GetStatsRequest(), metadata=self.metadata,
                                                   timeout=self._timeout(timeout_s)))

    def health(self, service: str = "", *, timeout_s: float | None = None) -> str:
        """The grpc.health.v1 status name of `service` ("" = the server): SERVING, NOT_SERVING, ..."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc  # not in the load-test image

        reply = health_pb2_grpc.HealthStub(self.channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=self._timeout(timeout_s))
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    def wait_ready(self, timeout_s: float = 10.0) -> None:
        try:
            grpc.channel_ready_future(self.channel).result(timeout=timeout_s)
        except grpc.FutureTimeoutError:
            raise ConnectionError(f"cannot connect to {self.target} within {timeout_s:g} s") from None

    def close(self) -> None:
        self.channel.close()

    def __enter__(self) -> SearchClient:
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()
