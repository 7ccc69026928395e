"""One photo (one content) is one point with every uri it was indexed under.

Counts, deletes and search agree with that model: the same bytes twice are one photo, a second
uri is added (never silently replacing the first), deleting a uri takes only that uri off, and
the photo goes with its last uri.
"""

from __future__ import annotations

import pytest
from withsense.v1 import search_pb2 as pb

from tests.helpers import search_stub

pytestmark = pytest.mark.slow


def _stream(*items: tuple[str, bytes]):
    return iter([pb.IndexImagesRequest(image=data, uri=uri) for uri, data in items])


def _images(stub) -> int:
    return stub.GetStats(pb.GetStatsRequest(), timeout=10).images


def _uris(stub, query: str) -> list[str]:
    reply = stub.Search(pb.SearchRequest(query=query, top_k=10, region="US"), timeout=30)
    return [h.uri for h in reply.hits]


def test_same_bytes_twice_in_one_stream_is_one_photo(start_gateway, gallery_photos):
    stub = search_stub(start_gateway().address)
    coffee = gallery_photos["coffee"]
    reply = stub.IndexImages(_stream(("coffee.jpg", coffee), ("coffee.jpg", coffee)), timeout=120)
    assert (reply.indexed, reply.unchanged, reply.failed) == (1, 1, 0)
    assert len(set(reply.image_ids)) == 1 and _images(stub) == 1


def test_a_second_uri_is_added_and_each_uri_deletes_separately(start_gateway, gallery_photos):
    stub = search_stub(start_gateway().address)
    coffee = gallery_photos["coffee"]
    first = stub.IndexImages(_stream(("a/coffee.jpg", coffee), ("b/copy.jpg", coffee)), timeout=120)
    assert (first.indexed, first.unchanged) == (1, 1)
    later = stub.IndexImages(_stream(("c/again.jpg", coffee)), timeout=120)
    assert (later.indexed, later.unchanged) == (1, 0)  # the photo changed: one more uri
    assert _images(stub) == 1
    assert _uris(stub, "a cup of coffee") == ["a/coffee.jpg"]  # a hit shows its first uri

    assert stub.DeleteImages(pb.DeleteImagesRequest(uris=["a/coffee.jpg"]), timeout=10).deleted == 1
    assert _images(stub) == 1 and _uris(stub, "a cup of coffee") == ["b/copy.jpg"]
    assert stub.DeleteImages(pb.DeleteImagesRequest(uris=["a/coffee.jpg"]), timeout=10).deleted == 0
    deleted = stub.DeleteImages(pb.DeleteImagesRequest(uris=["b/copy.jpg", "c/again.jpg"]), timeout=10)
    assert deleted.deleted == 2 and _images(stub) == 0


def test_new_content_under_a_uri_moves_the_uri(start_gateway, gallery_photos):
    stub = search_stub(start_gateway().address)
    stub.IndexImages(_stream(("photo.jpg", gallery_photos["coffee"]),
                             ("keep.jpg", gallery_photos["rocket"])), timeout=120)
    stub.IndexImages(_stream(("photo.jpg", gallery_photos["rocket"])), timeout=120)
    # The coffee photo lost its only uri and is gone; the rocket has both.
    assert _images(stub) == 1
    assert stub.DeleteImages(pb.DeleteImagesRequest(uris=["keep.jpg"]), timeout=10).deleted == 1
    assert _uris(stub, "a rocket") == ["photo.jpg"]


def test_delete_by_image_id_removes_every_uri(start_gateway, gallery_photos):
    stub = search_stub(start_gateway().address)
    coffee = gallery_photos["coffee"]
    reply = stub.IndexImages(_stream(("one.jpg", coffee), ("two.jpg", coffee)), timeout=120)
    deleted = stub.DeleteImages(pb.DeleteImagesRequest(image_ids=[reply.image_ids[0]]), timeout=10)
    assert deleted.deleted == 1 and _images(stub) == 0
    assert stub.DeleteImages(pb.DeleteImagesRequest(uris=["two.jpg"]), timeout=10).deleted == 0
