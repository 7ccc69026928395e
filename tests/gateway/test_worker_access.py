"""Only the gateway reaches the worker: a shared secret, no paths revealed."""

from __future__ import annotations

import grpc
import pytest
from withsense.v1 import inference_pb2 as ipb
from withsense.v1 import inference_pb2_grpc
from withsense.v1 import search_pb2 as pb

from tests.helpers import search_stub

pytestmark = pytest.mark.slow


@pytest.fixture
def guarded_worker(background_loop, model_runtime, tmp_path):
    from withsense.config import WorkerSettings
    from withsense.worker.server import start_worker

    secret = tmp_path / "worker-token"
    secret.write_text("s3cret-token\n")
    worker = background_loop.run(start_worker(WorkerSettings(port=0, token_file=secret),
                                              runtime=model_runtime))
    yield worker, secret
    background_loop.run(worker.stop(0))


def test_the_worker_refuses_callers_without_the_secret(guarded_worker, start_gateway, tmp_path):
    from grpc_health.v1 import health_pb2, health_pb2_grpc

    worker, secret = guarded_worker
    channel = grpc.insecure_channel(f"127.0.0.1:{worker.port}")
    stub = inference_pb2_grpc.InferenceServiceStub(channel)
    for metadata in [(), (("authorization", "Bearer wrong"),)]:
        with pytest.raises(grpc.RpcError) as refused:
            stub.EmbedText(ipb.EmbedTextRequest(texts=["a cat"]), metadata=metadata, timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    health = health_pb2_grpc.HealthStub(channel).Check(health_pb2.HealthCheckRequest(), timeout=5)
    assert health.status == health_pb2.HealthCheckResponse.SERVING  # probes need no secret

    gateway = start_gateway(worker_address=f"127.0.0.1:{worker.port}", worker_token_file=secret)
    reply = search_stub(gateway.address).Search(
        pb.SearchRequest(query="a cat", top_k=1, region="US"), timeout=30)
    assert reply.model_version
    with pytest.raises(Exception, match="UNAUTHENTICATED|accepts calls from the gateway only"):
        # No secret: refused at start.
        start_gateway(worker_address=f"127.0.0.1:{worker.port}", data_dir=tmp_path / "other")


def test_an_empty_token_file_refuses_to_start(start_gateway, tmp_path):
    empty = tmp_path / "token"
    empty.write_text("\n")
    with pytest.raises(ValueError, match="is empty"):
        start_gateway(worker_token_file=empty)
