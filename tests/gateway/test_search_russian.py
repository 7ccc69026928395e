"""Russian queries end to end: real gateway, real worker (the multilingual path), Qdrant Edge."""

from __future__ import annotations

import pytest
from withsense.compliance import mentions_child
from withsense.config.gateway import DISCLAIMER
from withsense.v1 import search_pb2 as pb

pytestmark = pytest.mark.slow


@pytest.fixture
def russian_gateway(indexed_gateway, model_runtime):
    if not model_runtime.multilingual:
        pytest.skip("the shipped artifact has no multilingual map (withsense train adds it)")
    return indexed_gateway


@pytest.mark.parametrize(("query", "expected"), [
    ("чашка кофе на столе", "coffee.jpg"),
    ("ракета на стартовой площадке", "rocket.jpg"),
    ("полосатая кошка", "chelsea.jpg"),
])
def test_russian_query_finds_the_matching_photo_first(russian_gateway, query, expected):
    _, stub = russian_gateway
    # US: unrestricted, so no flagged photo of the gallery is withheld in front of the cat.
    reply = stub.Search(pb.SearchRequest(query=query, top_k=5, region="US"), timeout=60)
    assert not reply.blocked, reply.reason
    assert reply.hits[0].uri == expected, [hit.uri for hit in reply.hits]


@pytest.mark.parametrize("query", [
    "дети", "мальчик", "школьница", "ребёнок 5 лет",
    "маленькая девочка бежит по пляжу",  # a caption of the Russian test set
])
def test_russian_child_queries_are_blocked(russian_gateway, query):
    _, stub = russian_gateway
    reply = stub.Search(pb.SearchRequest(query=query, top_k=5, region="DE"), timeout=60)
    assert reply.blocked and not reply.hits and reply.disclaimer == DISCLAIMER
    assert "blocked" in reply.reason


@pytest.mark.parametrize("query", ["ученики в классе", "ученик за школьной партой"])
def test_russian_paraphrases_are_blocked_by_meaning_on_the_multilingual_path(russian_gateway, query):
    assert mentions_child(query) is None  # the lexicon alone would let it through
    _, stub = russian_gateway
    reply = stub.Search(pb.SearchRequest(query=query, top_k=5, region="DE"), timeout=60)
    assert reply.blocked and not reply.hits and reply.disclaimer == DISCLAIMER
    assert "semantic" in reply.reason


@pytest.mark.parametrize("query", [
    "собака бежит по пляжу", "женщина читает книгу на крыльце", "мужчина в красной куртке",
])
def test_innocent_russian_queries_are_served(russian_gateway, query):
    _, stub = russian_gateway
    reply = stub.Search(pb.SearchRequest(query=query, top_k=3, region="DE"), timeout=60)
    assert not reply.blocked and reply.hits, reply.reason
