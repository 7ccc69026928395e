"""Health, reflection, metrics, start before the model is loaded, graceful stop, signals."""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import threading
import time
import urllib.request

import grpc
import pytest
from grpc_health.v1 import health_pb2, health_pb2_grpc
from withsense.config import WorkerSettings
from withsense.v1 import inference_pb2 as pb
from withsense.v1 import inference_pb2_grpc
from withsense.worker.server import WorkerServer, run_worker

from tests.worker.conftest import TEST_WORKER_SETTINGS
from tests.worker.helpers import rpc_error

SERVICE = "withsense.v1.InferenceService"
SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING


async def health_status(channel: grpc.aio.Channel, service: str) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    reply = await stub.Check(health_pb2.HealthCheckRequest(service=service), timeout=10)
    return reply.status


async def test_health_reports_serving(channel):
    assert await health_status(channel, "") == SERVING
    assert await health_status(channel, SERVICE) == SERVING


async def test_not_serving_until_the_model_is_loaded(worker_runtime):
    server = await WorkerServer.create(WorkerSettings(**TEST_WORKER_SETTINGS))
    try:
        async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
            assert await health_status(channel, "") == NOT_SERVING
            assert await health_status(channel, SERVICE) == NOT_SERVING
            stub = inference_pb2_grpc.InferenceServiceStub(channel)
            error = await rpc_error(stub.EmbedText(pb.EmbedTextRequest(texts=["a cat"]), timeout=10))
            assert error.code() == grpc.StatusCode.UNAVAILABLE
            assert "still loading" in error.details()
            await server.load(worker_runtime)
            assert await health_status(channel, "") == SERVING
            assert await health_status(channel, SERVICE) == SERVING
            reply = await stub.EmbedText(pb.EmbedTextRequest(texts=["a cat"]), timeout=30)
            assert len(reply.vectors) == 1
    finally:
        await server.stop(0)


def reflected_services(port: int) -> tuple[list[str], list[str]]:
    from google.protobuf.descriptor_pool import DescriptorPool
    from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
        ProtoReflectionDescriptorDatabase,
    )

    with grpc.insecure_channel(f"127.0.0.1:{port}") as channel:
        database = ProtoReflectionDescriptorDatabase(channel)
        services = list(database.get_services())
        service = DescriptorPool(database).FindServiceByName(SERVICE)
        return services, [method.name for method in service.methods]


async def test_reflection_lists_the_service(worker):
    # The reflection client is synchronous: run it off this loop, which serves the worker.
    services, methods = await asyncio.to_thread(reflected_services, worker.port)
    assert SERVICE in services and "grpc.health.v1.Health" in services
    assert set(methods) == {"EmbedText", "EmbedImages", "Score", "GetModelInfo"}


async def test_graceful_stop_lets_an_in_flight_call_finish(start_test_worker, photos):
    # A long batching wait keeps the call in flight while the stop begins.
    worker = await start_test_worker(max_wait_ms=400)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{worker.port}") as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        await stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)  # connected
        in_flight = asyncio.ensure_future(
            stub.EmbedImages(pb.EmbedImagesRequest(images=[photos["chelsea"]]), timeout=30)
        )
        await asyncio.sleep(0.1)
        assert not in_flight.done()
        started = time.monotonic()
        await worker.stop(grace=10)
        assert time.monotonic() - started < 5  # finished well within the grace period
        reply = await in_flight
        assert len(reply.vectors) == 1
        error = await rpc_error(stub.EmbedText(pb.EmbedTextRequest(texts=["late"]), timeout=5))
        assert error.code() == grpc.StatusCode.UNAVAILABLE


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


async def test_metrics_are_counted_and_served_over_http(start_test_worker):
    worker = await start_test_worker(metrics_port=free_port())
    async with grpc.aio.insecure_channel(f"127.0.0.1:{worker.port}") as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        await stub.EmbedText(pb.EmbedTextRequest(texts=["one", "two"]), timeout=30)
        await rpc_error(stub.EmbedText(pb.EmbedTextRequest(texts=[""]), timeout=30))
    registry = worker.metrics.registry
    assert registry.get_sample_value(
        "withsense_worker_requests_total", {"method": "EmbedText", "code": "OK"}) == 1
    assert registry.get_sample_value(
        "withsense_worker_requests_total", {"method": "EmbedText", "code": "INVALID_ARGUMENT"}) == 1
    assert registry.get_sample_value("withsense_worker_batch_size_sum", {"kind": "text"}) == 2
    assert registry.get_sample_value("withsense_worker_request_seconds_count",
                                     {"method": "EmbedText"}) == 2
    url = f"http://127.0.0.1:{worker.metrics_port}/metrics"
    text = await asyncio.to_thread(lambda: urllib.request.urlopen(url, timeout=10).read().decode())
    assert 'withsense_worker_requests_total{code="OK",method="EmbedText"} 1.0' in text
    assert "withsense_worker_model_loaded 1.0" in text


async def test_a_taken_port_is_a_clear_error(worker):
    with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{worker.port}"):
        await WorkerServer.create(WorkerSettings(**{**TEST_WORKER_SETTINGS, "port": worker.port}))


@pytest.mark.skipif(threading.current_thread() is not threading.main_thread(),
                    reason="signal handlers need the main thread")
async def test_sigterm_stops_gracefully(worker_runtime):
    before = signal.getsignal(signal.SIGTERM)
    serving: asyncio.Future[WorkerServer] = asyncio.get_running_loop().create_future()
    settings = WorkerSettings(**{**TEST_WORKER_SETTINGS, "max_wait_ms": 300})
    task = asyncio.ensure_future(
        run_worker(settings, runtime=worker_runtime, on_serving=serving.set_result)
    )
    worker = await asyncio.wait_for(serving, 60)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{worker.port}") as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        await stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=10)
        in_flight = asyncio.ensure_future(
            stub.EmbedText(pb.EmbedTextRequest(texts=["in flight at SIGTERM"]), timeout=30)
        )
        await asyncio.sleep(0.05)
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 30)
        assert len((await in_flight).vectors) == 1
    assert signal.getsignal(signal.SIGTERM) == before  # the previous handler is back


async def test_a_bad_model_folder_fails_the_start_and_frees_the_port(tmp_path):
    from withsense.config import ModelSettings
    from withsense.model.artifact import ArtifactError
    from withsense.worker.server import start_worker

    port = free_port()
    settings = WorkerSettings(**{**TEST_WORKER_SETTINGS, "port": port})
    with pytest.raises(ArtifactError, match="config.json is missing"):
        # ModelSettings in runtime's place is accepted (the CLI's stack passes it so).
        await start_worker(settings, ModelSettings(model_dir=tmp_path / "no-model"))
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))  # released again
