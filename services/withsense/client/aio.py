"""AsyncSearchClient: the asyncio client of the gateway (the CLI, the load test, services)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable, Callable, Iterable, Mapping, Sequence
from pathlib import Path

from withsense.client.base import ClientBase, delete_request, search_request
from withsense.client.channel import open_aio_channel
from withsense.client.folder import find_photos, folder_requests
from withsense.client.types import IndexReport, SearchResult, Stats
from withsense.v1 import search_pb2 as pb
from withsense.v1 import search_pb2_grpc as pb_grpc


class AsyncSearchClient(ClientBase):
    """    async with AsyncSearchClient("127.0.0.1:50051", tls_ca="ca.pem") as client:
            result = await client.search("a cat", region="DE")

    gRPC errors arrive as grpc.aio.AioRpcError with the gateway's status code and message.
    """

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.channel = open_aio_channel(self.settings)
        self.stub = pb_grpc.SearchServiceStub(self.channel)

    async def search(self, query: str, *, top_k: int = 10, region: str = "", min_score: float = 0.0,
                     filters: Mapping[str, str] | None = None,
                     timeout_s: float | None = None) -> SearchResult:
        reply = await self.stub.Search(search_request(query, top_k, region, min_score, filters),
                                       metadata=self.metadata, timeout=self._timeout(timeout_s))
        return SearchResult.from_proto(reply)

    async def index(self, requests: Iterable[pb.IndexImagesRequest] | AsyncIterable[pb.IndexImagesRequest],
                    *, timeout_s: float | None = 3600.0) -> IndexReport:
        """Streams IndexImages requests (photo bytes, uri, descriptions, payload)."""
        report = IndexReport()
        report.add_reply(await self.stub.IndexImages(requests, metadata=self.metadata,
                                                     timeout=self._timeout(timeout_s)))
        return report

    async def index_folder(self, folder: Path, descriptions: Mapping[str, list[str]] | None = None, *,
                           photos: list[Path] | None = None,
                           progress: Callable[[int], None] | None = None,
                           timeout_s: float | None = 3600.0) -> IndexReport:
        """Indexes every photo under `folder` (idempotent: unchanged photos are skipped). Files
        are read in a thread, so the event loop keeps serving while a large folder streams."""
        photos = find_photos(folder) if photos is None else photos
        failures: list[tuple[str, str]] = []
        requests = folder_requests(folder, photos, dict(descriptions or {}), failures, progress)

        async def stream():
            while (request := await asyncio.to_thread(next, requests, None)) is not None:
                yield request

        report = await self.index(stream(), timeout_s=timeout_s)
        report.failures = failures + report.failures
        return report

    async def delete(self, *, image_ids: Sequence[str] = (), uris: Sequence[str] = (),
                     timeout_s: float | None = None) -> int:
        reply = await self.stub.DeleteImages(delete_request(image_ids, uris), metadata=self.metadata,
                                             timeout=self._timeout(timeout_s))
        return reply.deleted

    async def stats(self, *, timeout_s: float | None = None) -> Stats:
        return Stats.from_proto(await self.stub.GetStats(
            pb.GetStatsRequest(), metadata=self.metadata, timeout=self._timeout(timeout_s)))

    async def health(self, service: str = "", *, timeout_s: float | None = None) -> str:
        """The grpc.health.v1 status name of `service` ("" = the server): SERVING, NOT_SERVING, ..."""
        from grpc_health.v1 import health_pb2, health_pb2_grpc  # not in the load-test image

        reply = await health_pb2_grpc.HealthStub(self.channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=self._timeout(timeout_s))
        return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)

    async def wait_ready(self, timeout_s: float = 10.0) -> None:
        try:
            await asyncio.wait_for(self.channel.channel_ready(), timeout_s)
        except TimeoutError:
            raise ConnectionError(f"cannot connect to {self.target} within {timeout_s:g} s") from None

    async def close(self) -> None:
        await self.channel.close()

    async def __aenter__(self) -> AsyncSearchClient:
        return self

    async def __aexit__(self, *exc_info) -> None:
        await self.close()
