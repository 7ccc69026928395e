"""Gateway fixtures: a gallery of real photos indexed through the real IndexImages stream."""

from __future__ import annotations

import pytest

from withsense.gallery import GALLERY
from withsense.v1 import search_pb2 as pb


def index_requests(photos: dict[str, bytes], extra: dict[str, dict[str, str]] | None = None):
    extra = extra or {}
    for name, data in photos.items():
        yield pb.IndexImagesRequest(image=data, uri=f"{name}.jpg", descriptions=GALLERY[name],
                                    payload=extra.get(name, {}))


@pytest.fixture
def indexed_gateway(start_gateway, gallery_photos):
    """A gateway restricted in DE and FR only, with the gallery indexed."""
    from tests.conftest import search_stub

    gateway = start_gateway(restricted_regions=["DE", "FR"])
    stub = search_stub(gateway.address)
    reply = stub.IndexImages(index_requests(gallery_photos, {"coffee": {"camera": "X100"}}), timeout=300)
    assert reply.indexed == len(gallery_photos) and reply.failed == 0
    return gateway, stub
