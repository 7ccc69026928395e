"""Descriptions as evidence through a real gateway, worker (the shipped artifact with its fusion
model) and embedded Qdrant Edge store: hybrid retrieval and the evidence of each hit."""

from __future__ import annotations

import pytest
from withsense.gallery import GALLERY
from withsense.v1 import search_pb2 as pb

from tests.helpers import search_stub

pytestmark = pytest.mark.slow
UNDESCRIBED = "rocket"


@pytest.fixture
def mixed_gateway(start_gateway, gallery_photos, model_runtime):
    """The gallery with one photo indexed without descriptions."""
    assert model_runtime.fusion is not None, "the shipped artifact has no fusion.json"
    gateway = start_gateway(restricted_regions=["DE"])
    stub = search_stub(gateway.address)
    requests = [pb.IndexImagesRequest(image=data, uri=f"{name}.jpg",
                                      descriptions=[] if name == UNDESCRIBED else GALLERY[name])
                for name, data in gallery_photos.items()]
    reply = stub.IndexImages(iter(requests), timeout=300)
    assert reply.indexed == len(gallery_photos) and reply.failed == 0
    return stub


def search(stub, query: str, region: str = "US"):
    return stub.Search(pb.SearchRequest(query=query, top_k=5, region=region), timeout=30)


def test_undescribed_photo_is_found_by_its_pixels(mixed_gateway):
    reply = search(mixed_gateway, "a rocket on the launch pad")
    top = reply.hits[0]
    assert top.uri == f"{UNDESCRIBED}.jpg", [h.uri for h in reply.hits]
    assert list(top.evidence) == ["pixels"]


def test_described_photo_is_found_by_a_keyword(mixed_gateway):
    reply = search(mixed_gateway, "Nikon D750")
    top = reply.hits[0]
    assert top.uri == "clock.jpg", [(h.uri, list(h.evidence)) for h in reply.hits]
    assert "keywords" in top.evidence


def test_descriptions_raise_the_probability_of_a_described_match(mixed_gateway):
    reply = search(mixed_gateway, "a cup of coffee")
    top = reply.hits[0]
    assert top.uri == "coffee.jpg"
    assert "descriptions" in top.evidence
    assert top.score > 0.5
    assert all(set(h.evidence) <= {"pixels", "descriptions", "keywords"} for h in reply.hits)


def test_withheld_hits_carry_no_evidence(mixed_gateway):
    reply = search(mixed_gateway, "a tabby cat", region="DE")
    withheld = [h for h in reply.hits if h.withheld]
    assert withheld and all(not h.evidence and not h.uri for h in withheld)
