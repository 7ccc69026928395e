"""Compliance by sight through real servers: worker (shipped model with its minor detector),
gateway, embedded Qdrant Edge store. A photo is withheld on either signal, descriptions or
pixels; a flag is never lowered by a re-upload; re-indexing after a detector change re-flags."""

from __future__ import annotations

import copy
import io

import pytest
from PIL import Image
from withsense.config.gateway import DISCLAIMER
from withsense.v1 import search_pb2 as pb

from tests.helpers import search_stub

pytestmark = pytest.mark.slow

NEVER = 1.0  # p(child) >= 1.0: no photo is flagged by sight at this threshold
ALWAYS = 0.0  # every photo is flagged by sight


def requests(photos: dict[str, bytes], descriptions: dict[str, list[str]] | None = None):
    for name, data in photos.items():
        yield pb.IndexImagesRequest(image=data, uri=f"{name}.jpg",
                                    descriptions=(descriptions or {}).get(name, []))


def search(stub, query: str, region: str, top_k: int = 3):
    return stub.Search(pb.SearchRequest(query=query, top_k=top_k, region=region), timeout=60)


def test_a_photo_is_withheld_by_pixels_without_any_description(start_gateway, gallery_photos):
    photos = {name: gallery_photos[name] for name in ("coffee", "rocket", "moon")}
    stub = search_stub(start_gateway(restricted_regions=["DE"], minor_threshold=ALWAYS).address)
    reply = stub.IndexImages(requests(photos), timeout=300)
    assert (reply.indexed, reply.flagged, reply.flagged_by_sight) == (3, 3, 3)
    assert reply.flagged_by_description == 0
    top = search(stub, "a cup of coffee on a table", "DE").hits[0]
    assert top.withheld and top.disclaimer == DISCLAIMER and top.uri == ""
    assert "by pixels" in top.reason and "description" not in top.reason
    assert search(stub, "a cup of coffee on a table", "US").hits[0].uri == "coffee.jpg"


def test_the_shipped_detector_decides_at_its_own_operating_point(start_gateway, gallery_photos):
    stub = search_stub(start_gateway(restricted_regions=["DE"]).address)
    reply = stub.IndexImages(requests(gallery_photos), timeout=300)
    assert reply.indexed == len(gallery_photos) and reply.flagged == reply.flagged_by_sight
    # Photos of things, not people: the detector leaves them to be served.
    for query, uri in (("a cup of coffee on a table", "coffee.jpg"), ("a brick wall", "brick.jpg")):
        assert search(stub, query, "DE").hits[0].uri == uri


def test_reupload_without_descriptions_does_not_lower_the_flag(start_gateway, gallery_photos):
    stub = search_stub(start_gateway(restricted_regions=["DE"], minor_threshold=NEVER).address)
    coffee = {"coffee": gallery_photos["coffee"]}
    first = stub.IndexImages(requests(coffee, {"coffee": ["My son's first cup of coffee"]}),
                             timeout=120)
    assert (first.flagged, first.flagged_by_description) == (1, 1)
    # The same bytes again, without the description: stored anew, still flagged.
    again = stub.IndexImages(requests(coffee), timeout=120)
    assert (again.indexed, again.flagged, again.flags_changed) == (1, 1, 0)
    top = search(stub, "a cup of coffee on a table", "DE").hits[0]
    assert top.withheld and "by description" in top.reason
    # Other bytes of the photo at the same uri (re-encoded) inherit the description's flag too.
    image = Image.open(io.BytesIO(gallery_photos["coffee"]))
    buffer = io.BytesIO()
    image.save(buffer, format="JPEG", quality=70)
    other = stub.IndexImages(requests({"coffee": buffer.getvalue()}), timeout=120)
    assert (other.indexed, other.flagged) == (1, 1)
    assert stub.GetStats(pb.GetStatsRequest(), timeout=30).images == 1
    assert search(stub, "a cup of coffee on a table", "DE").hits[0].withheld


def test_reindexing_with_a_new_threshold_counts_changed_flags(background_loop, start_gateway,
                                                             gallery_photos):
    photos = {name: gallery_photos[name] for name in ("coffee", "rocket", "moon")}
    described = {"moon": ["The moon, as my daughter saw it"]}
    lenient = start_gateway(restricted_regions=["DE"], minor_threshold=NEVER)
    reply = search_stub(lenient.address).IndexImages(requests(photos, described), timeout=300)
    assert (reply.flagged, reply.flagged_by_description) == (1, 1)
    background_loop.run(lenient.stop(0.5))

    strict = start_gateway(restricted_regions=["DE"], minor_threshold=ALWAYS)  # same store
    stub = search_stub(strict.address)
    reply = stub.IndexImages(requests(photos, described), timeout=300)
    assert reply.unchanged == 0 and reply.flags_changed == 2  # moon was flagged already
    assert (reply.flagged, reply.flagged_by_sight) == (3, 3)
    again = stub.IndexImages(requests(photos, described), timeout=300)
    assert (again.unchanged, again.flags_changed) == (3, 0)
    background_loop.run(strict.stop(0.5))

    back = search_stub(start_gateway(restricted_regions=["DE"], minor_threshold=NEVER).address)
    reply = back.IndexImages(requests(photos), timeout=300)  # the moon's description is gone
    # Pixel flags drop with the new threshold; the description flag is sticky.
    assert (reply.flags_changed, reply.flagged, reply.flagged_by_description) == (2, 1, 1)


def test_without_a_detector_every_photo_is_withheld_until_one_has_seen_it(
        background_loop, start_gateway, model_runtime, gallery_photos):
    from withsense.config import WorkerSettings
    from withsense.worker.server import start_worker

    blind = copy.copy(model_runtime)
    blind.minor = None  # the shipped model as an artifact without a detector would load
    worker = background_loop.run(start_worker(WorkerSettings(port=0), runtime=blind))
    try:
        photos = {name: gallery_photos[name] for name in ("coffee", "rocket")}
        gateway = start_gateway(restricted_regions=["DE"],
                                worker_address=f"127.0.0.1:{worker.port}")
        stub = search_stub(gateway.address)
        reply = stub.IndexImages(requests(photos), timeout=300)
        assert (reply.flagged, reply.flagged_by_sight) == (2, 2)
        top = search(stub, "a cup of coffee on a table", "DE").hits[0]
        assert top.withheld and "pixels" in top.reason
        background_loop.run(gateway.stop(0.5))
    finally:
        background_loop.run(worker.stop(0.5))
    # The model with its detector: the photos are looked at, and the summary says so.
    stub = search_stub(start_gateway(restricted_regions=["DE"], minor_threshold=NEVER).address)
    reply = stub.IndexImages(requests(photos), timeout=300)
    assert (reply.unchanged, reply.flags_changed, reply.flagged) == (0, 2, 0)
    assert search(stub, "a cup of coffee on a table", "DE").hits[0].uri == "coffee.jpg"
