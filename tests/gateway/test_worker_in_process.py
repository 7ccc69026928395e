"""`serve all`'s gateway calls the worker in process: the same hits, scores and errors as over
gRPC, with the worker's metrics counting the calls. Real gateways, the real worker and model."""

from __future__ import annotations

import pytest
from withsense.gateway.errors import InvalidArgument
from withsense.v1 import search_pb2 as pb

from tests.helpers import index_requests, search_stub

pytestmark = pytest.mark.slow

QUERIES = ["a cup of coffee", "an astronaut in a white suit", "Ünïcödé café — 東京", "a cat " * 160]


def _embed_text_calls(worker_server) -> float:
    return worker_server.serving.metrics.requests.labels("EmbedText", "OK")._value.get()


@pytest.fixture
def in_process_gateway(background_loop, worker_server, tmp_path):
    from withsense.config import GatewaySettings
    from withsense.gateway.server import start_gateway
    from withsense.worker.in_process import InProcessWorkerClient

    settings = GatewaySettings(port=0, http_port=-1, data_dir=tmp_path / "in-process",
                               worker_address="127.0.0.1:1", query_cache_size=0,
                               restricted_regions=["DE"])
    client = InProcessWorkerClient(worker_server.serving, settings.worker_timeout_s)
    gateway = background_loop.run(start_gateway(settings, dim=worker_server.dim, worker=client))
    yield gateway
    background_loop.run(gateway.stop(0.5))


def _search_all(stub) -> list[list[tuple[str, str, float, bool, tuple[str, ...]]]]:
    out = []
    for region in ("US", "DE"):
        for query in QUERIES:
            reply = stub.Search(pb.SearchRequest(query=query, top_k=20, region=region), timeout=60)
            out.append([(h.image_id, h.uri, h.score, h.withheld, tuple(h.evidence)) for h in reply.hits])
    return out


def test_in_process_worker_gives_the_hits_of_the_grpc_worker(in_process_gateway, start_gateway,
                                                              gallery_photos, worker_server):
    over_grpc = start_gateway(query_cache_size=0, restricted_regions=["DE"])
    # worker_address points nowhere: every worker call of this gateway went in process.
    assert in_process_gateway.engine.worker.address == "in-process"
    results = []
    for gateway in (in_process_gateway, over_grpc):
        stub = search_stub(gateway.address)
        reply = stub.IndexImages(index_requests(gallery_photos), timeout=300)
        assert reply.indexed == len(gallery_photos) and reply.failed == 0
        before = _embed_text_calls(worker_server)
        results.append(_search_all(stub))
        assert _embed_text_calls(worker_server) >= before + 2 * len(QUERIES)  # counted either way
    here, there = results
    assert any(here) and here == there  # same hits, order, probabilities, withheld flags, evidence
    blocked = search_stub(in_process_gateway.address).Search(
        pb.SearchRequest(query="a toddler on a swing", top_k=5, region="DE"), timeout=60)
    assert blocked.blocked and not blocked.hits


def test_in_process_worker_refuses_bad_input_as_grpc_does(in_process_gateway, start_gateway,
                                                          background_loop, worker_server):
    too_long = "x" * (worker_server.settings.max_text_chars + 1)
    errors = []
    for gateway in (in_process_gateway, start_gateway()):
        with pytest.raises(InvalidArgument, match=r"texts\[0\] is \d+ characters") as error:
            background_loop.run(gateway.engine.worker.embed_texts([too_long]))
        errors.append(str(error.value))
    assert errors[0] == errors[1]
    assert worker_server.serving.metrics.requests.labels("EmbedText", "INVALID_ARGUMENT")._value.get() >= 2
