"""Web fixtures: a real gateway (gRPC + HTTP) with the gallery indexed, shared by a module."""

from __future__ import annotations

import pytest
from withsense.client import SearchClient

from tests.helpers import index_requests

RESTRICTED = ["DE", "FR"]


def start_indexed_gateway(background_loop, worker_server, data_dir, photos, **overrides):
    from withsense.config import GatewaySettings
    from withsense.gateway.server import start_gateway

    settings = GatewaySettings(**{
        "port": 0, "http_port": 0, "data_dir": data_dir, "restricted_regions": RESTRICTED,
        "worker_address": f"127.0.0.1:{worker_server.port}", **overrides,
    })
    gateway = background_loop.run(start_gateway(settings, dim=worker_server.dim))
    # Indexing needs an index key when keys are on (search keys may only search).
    key = next(iter([*(settings.index_api_keys or []), *(settings.api_keys or [])]), None)
    with SearchClient(gateway.address, api_key=key, retries=False) as client:
        report = client.index(index_requests(photos), timeout_s=300)
    assert report.indexed == len(photos) and not report.failures
    return gateway


@pytest.fixture(scope="module")
def web_gateway(background_loop, worker_server, gallery_photos, tmp_path_factory):
    """A gateway restricted in DE and FR, gallery indexed; tests must not change what it holds."""
    gateway = start_indexed_gateway(background_loop, worker_server,
                                    tmp_path_factory.mktemp("web") / "data", gallery_photos)
    yield gateway
    background_loop.run(gateway.stop(0.5))


@pytest.fixture
def fresh_gateway(background_loop, worker_server, gallery_photos, tmp_path):
    """A gateway of its own (for tests that upload or delete), gallery indexed."""
    started = []

    def factory(**overrides):
        gateway = start_indexed_gateway(background_loop, worker_server, tmp_path / "data",
                                        gallery_photos, **overrides)
        started.append(gateway)
        return gateway

    yield factory
    for gateway in started:
        background_loop.run(gateway.stop(0.5))
