"""End-to-end search through a real gateway, worker and embedded Qdrant Edge store."""

from __future__ import annotations

import pytest
from withsense.config.gateway import DISCLAIMER
from withsense.v1 import search_pb2 as pb

from tests.helpers import index_requests, search_stub

pytestmark = pytest.mark.slow


def uris(reply) -> list[str]:
    return [hit.uri for hit in reply.hits]


@pytest.mark.parametrize(("query", "expected"), [
    ("a cup of coffee on a table", "coffee.jpg"),
    ("a rocket on the launch pad", "rocket.jpg"),
    ("a tabby cat", "chelsea.jpg"),
])
def test_search_finds_the_matching_photo_first(indexed_gateway, query, expected):
    _, stub = indexed_gateway
    reply = stub.Search(pb.SearchRequest(query=query, top_k=5, region="US"), timeout=30)
    assert reply.hits[0].uri == expected, uris(reply)
    scores = [hit.score for hit in reply.hits]
    assert all(0.0 <= s <= 1.0 for s in scores)
    assert scores == sorted(scores, reverse=True)
    assert len(reply.hits) == 5 and reply.model_version
    assert not reply.blocked and "US unrestricted" in reply.reason


def test_flagged_photo_withheld_in_restricted_region_and_served_elsewhere(indexed_gateway):
    _, stub = indexed_gateway
    query = "a man filming with a camera on a tripod"  # its description names the man "my son"
    served = stub.Search(pb.SearchRequest(query=query, top_k=3, region="US"), timeout=30)
    assert served.hits[0].uri == "camera.jpg" and not served.hits[0].withheld

    for region in ["DE", "fr", ""]:  # listed regions, any case, and an unknown region
        reply = stub.Search(pb.SearchRequest(query=query, top_k=3, region=region), timeout=30)
        top = reply.hits[0]
        assert top.withheld and top.disclaimer == DISCLAIMER
        assert top.uri == "" and top.image_id == ""
        assert "flagged minor by description" in top.reason
        assert reply.disclaimer == DISCLAIMER and "withheld" in reply.reason
        assert "camera.jpg" not in uris(reply)


def test_a_cat_is_served_and_a_photo_without_description_is_judged_by_sight(indexed_gateway):
    _, stub = indexed_gateway
    cat = stub.Search(pb.SearchRequest(query="a cat", top_k=3, region="DE"), timeout=30).hits[0]
    assert cat.uri == "chelsea.jpg" and not cat.withheld
    # The astronaut has no description: only its pixels can withhold it.
    reply = stub.Search(pb.SearchRequest(query="an astronaut in front of the flag", top_k=3,
                                         region="DE"), timeout=30)
    assert any(hit.withheld and "flagged minor by pixels" in hit.reason for hit in reply.hits)


def test_dropped_mode_filters_flagged_photos_in_the_engine(start_gateway, gallery_photos):
    gateway = start_gateway(withheld_mode="drop")
    stub = search_stub(gateway.address)
    stub.IndexImages(index_requests(gallery_photos), timeout=300)
    flagged = stub.GetStats(pb.GetStatsRequest(), timeout=10).flagged
    reply = stub.Search(pb.SearchRequest(query="a cat", top_k=len(gallery_photos)), timeout=30)
    assert "camera.jpg" not in uris(reply) and "astronaut.jpg" not in uris(reply)
    assert not any(hit.withheld for hit in reply.hits)
    assert len(reply.hits) == len(gallery_photos) - flagged


@pytest.mark.parametrize("query", [
    "a little girl on a swing",
    "Two BOYS playing football",
    "children's birthday party",
    "мальчики играют в футбол",
    "фотография детей на пляже",
    "девочкой с собакой",
])
def test_child_queries_are_blocked_with_the_disclaimer(indexed_gateway, query):
    _, stub = indexed_gateway
    reply = stub.Search(pb.SearchRequest(query=query, top_k=5, region="DE"), timeout=30)
    assert reply.blocked and not reply.hits
    assert reply.disclaimer == DISCLAIMER
    assert "blocked" in reply.reason


def test_child_query_is_not_blocked_in_an_unrestricted_region(indexed_gateway):
    _, stub = indexed_gateway
    reply = stub.Search(pb.SearchRequest(query="a little girl with her cat", top_k=3, region="US"),
                        timeout=30)
    assert not reply.blocked and reply.hits


def test_min_score_and_payload_filters(indexed_gateway):
    _, stub = indexed_gateway
    reply = stub.Search(pb.SearchRequest(query="coffee", top_k=10, region="US",
                                         filters={"camera": "X100"}), timeout=30)
    assert uris(reply) == ["coffee.jpg"]
    everything = stub.Search(pb.SearchRequest(query="coffee", top_k=10, region="US"), timeout=30)
    cut = everything.hits[2].score
    reply = stub.Search(pb.SearchRequest(query="coffee", top_k=10, region="US", min_score=cut),
                        timeout=30)
    assert all(hit.score >= cut for hit in reply.hits) and len(reply.hits) >= 3


def test_reindexing_is_idempotent_and_stats_count(indexed_gateway, gallery_photos):
    _, stub = indexed_gateway
    before = stub.GetStats(pb.GetStatsRequest(), timeout=10)
    reply = stub.IndexImages(index_requests(gallery_photos, {"coffee": {"camera": "X100"}}), timeout=300)
    assert (reply.indexed, reply.unchanged, reply.failed) == (0, len(gallery_photos), 0)
    after = stub.GetStats(pb.GetStatsRequest(), timeout=10)
    assert after.images == before.images == len(gallery_photos)
    assert after.flagged == before.flagged >= 2  # camera by description, astronaut by sight
    assert after.store_backend == "qdrant-edge"


def test_delete_by_uri_and_id(indexed_gateway):
    _, stub = indexed_gateway
    first = stub.Search(pb.SearchRequest(query="a rocket", top_k=1, region="US"), timeout=30).hits[0]
    assert stub.DeleteImages(pb.DeleteImagesRequest(image_ids=[first.image_id]), timeout=10).deleted == 1
    assert stub.DeleteImages(pb.DeleteImagesRequest(uris=["coffee.jpg"]), timeout=10).deleted == 1
    reply = stub.Search(pb.SearchRequest(query="a rocket", top_k=20, region="US"), timeout=30)
    assert "rocket.jpg" not in uris(reply) and "coffee.jpg" not in uris(reply)


def test_results_survive_a_gateway_restart(start_gateway, background_loop, gallery_photos, tmp_path):
    data_dir = tmp_path / "persist"
    first = start_gateway(data_dir=data_dir)
    stub = search_stub(first.address)
    stub.IndexImages(index_requests(gallery_photos), timeout=300)
    request = pb.SearchRequest(query="a cup of coffee", top_k=5, region="US")
    before = stub.Search(request, timeout=30)
    background_loop.run(first.stop(0.5))  # closes the store, as a process exit would

    second = start_gateway(data_dir=data_dir)
    after = search_stub(second.address).Search(request, timeout=30)
    assert [(h.image_id, h.uri) for h in after.hits] == [(h.image_id, h.uri) for h in before.hits]
    assert [h.score for h in after.hits] == pytest.approx([h.score for h in before.hits], abs=1e-6)


@pytest.mark.parametrize("query", ["pupils in a classroom", "a first grader with a backpack"])
def test_paraphrases_of_child_terms_are_blocked_by_meaning(indexed_gateway, query):
    from withsense.compliance import mentions_child

    assert mentions_child(query) is None  # the lexicon alone would let it through
    _, stub = indexed_gateway
    reply = stub.Search(pb.SearchRequest(query=query, top_k=5, region="DE"), timeout=30)
    assert reply.blocked and not reply.hits and reply.disclaimer == DISCLAIMER
    assert "semantic" in reply.reason


@pytest.mark.parametrize(("query", "rule"), [
    ("k1ds playing in a park", "lexicon:child(leet)"),
    ("c h i l d on a swing", "lexicon:child(spacing)"),
    ("сhild on a swing", "lexicon:child(confusable)"),
    ("todler walking", "lexicon:child(misspelling)"),
    ("malchik na velosipede", "lexicon:child(translit)"),
])
def test_disguised_child_queries_are_blocked_with_the_rule(indexed_gateway, query, rule):
    _, stub = indexed_gateway
    reply = stub.Search(pb.SearchRequest(query=query, top_k=5, region="DE"), timeout=30)
    assert reply.blocked and not reply.hits and f"blocked by {rule};" in reply.reason


def test_phrases_that_only_look_like_child_terms_are_served(indexed_gateway):
    _, stub = indexed_gateway
    for query in ["Billy the Kid", "childhood home", "a baby blue car", "a kid glove",
                  "a young man climbing"]:
        reply = stub.Search(pb.SearchRequest(query=query, top_k=3, region="DE"), timeout=30)
        assert not reply.blocked and reply.hits, (query, reply.reason)


def test_the_semantic_check_judges_the_text_tower_vector(indexed_gateway, model_runtime):
    """A child paraphrase (no lexicon term) is blocked at the artifact's text-tower threshold,
    and innocent near-misses, over the joint-space threshold before, are served."""
    from withsense.compliance import mentions_child, tower_threshold

    threshold = tower_threshold(model_runtime.artifact.config)
    assert threshold is not None
    _, stub = indexed_gateway
    paraphrase = "a pupil at a school desk"
    assert mentions_child(paraphrase) is None
    reply = stub.Search(pb.SearchRequest(query=paraphrase, top_k=5, region="DE"), timeout=30)
    assert reply.blocked and not reply.hits
    assert "semantic:child-concept" in reply.reason and f">={threshold:.2f})" in reply.reason
    for query in ["a young man climbing", "childhood home", "a family at the beach"]:
        reply = stub.Search(pb.SearchRequest(query=query, top_k=3, region="DE"), timeout=30)
        assert not reply.blocked and reply.hits, (query, reply.reason)
