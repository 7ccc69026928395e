"""Worker fixtures: the real model loaded once per session, real workers on 127.0.0.1:0.

`worker_runtime` is the session's ModelRuntime (built on the root conftest's `model_runtime`
when there is one, so the whole suite loads the model once). `start_test_worker(**overrides)`
starts a worker with WorkerSettings overrides on this test's event loop and stops it afterwards;
`worker` / `stub` are the default ones. `photos` are real photos shipped with scikit-image,
encoded as JPEG bytes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import grpc
import pytest
from withsense.config import WorkerSettings
from withsense.v1 import inference_pb2_grpc

from tests.worker.helpers import OTHER_PHOTOS, PHOTO_QUERIES, jpeg_bytes

# Loopback, ephemeral port, no warm-up (the session runtime is warm), short batching wait.
TEST_WORKER_SETTINGS: dict[str, Any] = {
    "host": "127.0.0.1", "port": 0, "max_wait_ms": 2.0, "warmup": False, "grace_seconds": 5.0,
}


@pytest.fixture(scope="session")
def worker_runtime(request: pytest.FixtureRequest):
    """The real model, loaded once per session (the root conftest's `model_runtime` when it
    exists), with its image tower on the worker's default path (image_backend="auto": ONNX
    Runtime on the CPU) and its English text path on the worker's default (text_backend="auto":
    ONNX Runtime on the CPU) -- a copy sharing the weights, so model_runtime itself is untouched."""
    try:
        base = request.getfixturevalue("model_runtime")
    except pytest.FixtureLookupError:
        from withsense.model.runtime import ModelRuntime

        base = ModelRuntime()
    settings = WorkerSettings()
    return base.with_image_backend(settings.image_backend).with_text_backend(
        settings.text_backend, settings.text_precision, settings.text_threads)


@pytest.fixture(scope="session")
def photos() -> dict[str, bytes]:
    from skimage import data

    return {name: jpeg_bytes(getattr(data, name)()) for name in (*PHOTO_QUERIES, *OTHER_PHOTOS)}


StartWorker = Callable[..., Awaitable[Any]]


@pytest.fixture
async def start_test_worker(worker_runtime) -> AsyncIterator[StartWorker]:
    """`await start_test_worker(max_texts=4, ...)` -> a WorkerServer serving worker_runtime."""
    from withsense.worker.server import start_worker

    started = []

    async def start(runtime: Any = None, **overrides: Any):
        settings = WorkerSettings(**{**TEST_WORKER_SETTINGS, **overrides})
        server = await start_worker(settings, runtime or worker_runtime)
        started.append(server)
        return server

    yield start
    for server in started:
        await server.stop(0)


@pytest.fixture
async def worker(start_test_worker):
    return await start_test_worker()


@pytest.fixture
async def channel(worker) -> AsyncIterator[grpc.aio.Channel]:
    async with grpc.aio.insecure_channel(f"127.0.0.1:{worker.port}") as channel:
        yield channel


@pytest.fixture
def stub(channel) -> inference_pb2_grpc.InferenceServiceStub:
    return inference_pb2_grpc.InferenceServiceStub(channel)

