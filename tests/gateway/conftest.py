"""Gateway fixtures: a gallery of real photos indexed through the real IndexImages stream."""

from __future__ import annotations

import pytest

from tests.helpers import index_requests


@pytest.fixture
def indexed_gateway(start_gateway, gallery_photos):
    """A gateway restricted in DE and FR only, with the gallery indexed."""
    from tests.helpers import search_stub

    gateway = start_gateway(restricted_regions=["DE", "FR"])
    stub = search_stub(gateway.address)
    reply = stub.IndexImages(index_requests(gallery_photos, {"coffee": {"camera": "X100"}}), timeout=300)
    assert reply.indexed == len(gallery_photos) and reply.failed == 0
    return gateway, stub
