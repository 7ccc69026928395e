"""withsense.client against a real gateway, and its retry policy against a real gRPC server."""

from __future__ import annotations

from concurrent import futures

import grpc
import pytest
from withsense.client import AsyncSearchClient, Hit, SearchClient, SearchResult, read_api_key
from withsense.config.gateway import DISCLAIMER
from withsense.v1 import search_pb2 as pb
from withsense.v1 import search_pb2_grpc as pb_grpc


@pytest.mark.slow
def test_search_client_typed_hits_stats_health_and_delete(gateway_target):
    with SearchClient(gateway_target) as client:
        result = client.search("a cup of coffee on a table", top_k=3, region="US")
        assert isinstance(result, SearchResult) and all(isinstance(h, Hit) for h in result.hits)
        assert result.hits[0].uri == "coffee.jpg" and 0 < result.hits[0].score <= 1
        assert not result.blocked and result.model_version

        first = client.search("a man filming with a camera on a tripod", top_k=3, region="").hits[0]
        assert first.withheld and first.disclaimer == DISCLAIMER and not first.uri
        blocked = client.search("a little girl playing in the park", region="DE")
        assert blocked.blocked and blocked.hits == [] and blocked.disclaimer == DISCLAIMER

        stats = client.stats()
        assert stats.images == 14 and 2 <= stats.flagged < 14 and stats.store_backend == "qdrant-edge"
        assert client.health() == "SERVING"
        assert client.health("withsense.v1.SearchService") == "SERVING"
        assert client.delete(uris=["coffee.jpg"]) == 1 and client.stats().images == 13
        with pytest.raises(grpc.RpcError) as error:
            client.search("", region="US")
        assert error.value.code() == grpc.StatusCode.INVALID_ARGUMENT


@pytest.mark.slow
async def test_async_client_indexes_a_folder_with_a_key_from_a_file(start_gateway, gallery_photos,
                                                                    tmp_path):
    gateway = start_gateway(index_api_keys=["sesame"])
    folder = tmp_path / "photos"
    (folder / "trip").mkdir(parents=True)
    (folder / "trip" / "rocket.jpg").write_bytes(gallery_photos["rocket"])
    (folder / "moon.png").write_bytes(gallery_photos["moon"])
    (folder / "broken.jpg").write_bytes(b"not a photo")
    (folder / "notes.txt").write_text("not a photo either, and not picked up")
    key_file = tmp_path / "key.txt"
    key_file.write_text("# mounted secret\n\nsesame\n")
    descriptions = {"trip/rocket.jpg": ["A rocket on the launch pad"], "moon.png": ["The moon"]}
    seen = []
    async with AsyncSearchClient(gateway.address, api_key_file=key_file) as client:
        report = await client.index_folder(folder, descriptions, progress=seen.append)
        assert (report.indexed, report.unchanged, report.flagged) == (2, 0, 0)
        assert [uri for uri, _ in report.failures] == ["broken.jpg"] and len(seen) == 3
        again = await client.index_folder(folder, descriptions)
        assert (again.indexed, again.unchanged) == (0, 2)
        hits = (await client.search("a rocket before launch", top_k=1, region="US")).hits
        assert hits[0].uri == "trip/rocket.jpg"
    async with AsyncSearchClient(gateway.address) as keyless:
        with pytest.raises(grpc.aio.AioRpcError) as error:
            await keyless.stats()
        assert error.value.code() == grpc.StatusCode.UNAUTHENTICATED


def test_api_key_file_errors(tmp_path):
    empty = tmp_path / "empty.txt"
    empty.write_text("# only a comment\n")
    with pytest.raises(ValueError, match="holds no key"):
        read_api_key(empty)
    with pytest.raises(ValueError, match="missing.txt"):
        read_api_key(tmp_path / "missing.txt")


class _FlakyGateway(pb_grpc.SearchServiceServicer):
    """A real gRPC server that answers UNAVAILABLE to the first `failures` calls of each method."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls: dict[str, int] = {}

    def _count(self, method: str, context) -> None:
        self.calls[method] = self.calls.get(method, 0) + 1
        if self.calls[method] <= self.failures:
            context.abort(grpc.StatusCode.UNAVAILABLE, "restarting")

    def GetStats(self, request, context):
        self._count("GetStats", context)
        return pb.GetStatsResponse(images=7)

    def IndexImages(self, request_iterator, context):
        list(request_iterator)
        self._count("IndexImages", context)
        return pb.IndexImagesResponse(indexed=1)


@pytest.fixture
def flaky_server():
    servicer = _FlakyGateway(failures=2)
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    pb_grpc.add_SearchServiceServicer_to_server(servicer, server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    yield f"127.0.0.1:{port}", servicer
    server.stop(None)


def test_idempotent_calls_are_retried_on_unavailable_by_the_channel(flaky_server):
    target, servicer = flaky_server
    with SearchClient(target, timeout_s=10) as client:
        assert client.stats().images == 7
    assert servicer.calls["GetStats"] == 3


def test_streams_and_clients_without_retries_see_unavailable(flaky_server):
    target, servicer = flaky_server
    with SearchClient(target, timeout_s=10) as client, pytest.raises(grpc.RpcError) as error:
        client.index([pb.IndexImagesRequest(image=b"x", uri="x.jpg")])
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE and servicer.calls["IndexImages"] == 1
    with SearchClient(target, retries=False) as client, pytest.raises(grpc.RpcError) as error:
        client.stats()
    assert error.value.code() == grpc.StatusCode.UNAVAILABLE and servicer.calls["GetStats"] == 1
