"""Shared fixtures: the real model loaded once, a real worker and real gateways on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.helpers import BackgroundLoop, index_requests, search_stub


@pytest.fixture(scope="session")
def background_loop() -> Iterator[BackgroundLoop]:
    loop = BackgroundLoop()
    yield loop
    loop.close()


@pytest.fixture(scope="session")
def model_runtime():
    from withsense.model.runtime import ModelRuntime

    return ModelRuntime()


@pytest.fixture(scope="session")
def worker_server(background_loop, model_runtime):
    from withsense.config import WorkerSettings
    from withsense.worker.server import start_worker

    server = background_loop.run(start_worker(WorkerSettings(port=0), runtime=model_runtime))
    yield server
    background_loop.run(server.stop(1.0))


@pytest.fixture
def start_gateway(background_loop, worker_server, tmp_path) -> Iterator[Callable[..., object]]:
    """Starts real gateways (settings overridable) against the session worker; stops them after."""
    from withsense.config import GatewaySettings
    from withsense.gateway.server import start_gateway as start

    started = []

    def factory(**overrides):
        settings = GatewaySettings(**{
            "port": 0, "http_port": 0, "data_dir": tmp_path / "data",
            "worker_address": f"127.0.0.1:{worker_server.port}", **overrides,
        })
        gateway = background_loop.run(start(settings, dim=worker_server.dim))
        started.append(gateway)
        return gateway

    yield factory
    for gateway in started:
        background_loop.run(gateway.stop(0.5))


@pytest.fixture(scope="session")
def gallery_photos() -> dict[str, bytes]:
    from withsense.gallery import gallery_photos as photos

    return photos()


@pytest.fixture
def gateway_target(start_gateway, gallery_photos) -> str:
    """HOST:PORT of a real gateway with the gallery indexed."""
    gateway = start_gateway()
    search_stub(gateway.address).IndexImages(index_requests(gallery_photos), timeout=300)
    return gateway.address
