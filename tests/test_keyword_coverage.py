"""A search computes its query's words once and reuses them for every candidate."""

from __future__ import annotations

import pytest
from withsense.keywords import coverage, document_vector, keyword_coverage, query_words

DOCUMENTS = [["Two dogs are running on the beach"], ["A man crosses a metal bridge"], [],
             ["Собаки бегают по пляжу"], ["a dog"]]


@pytest.mark.parametrize("query", ["a dog runs on the beach", "dogs", "the of a", "",
                                   "собака бежит", "bridge crossing men"])
def test_words_computed_once_give_the_same_coverage(query):
    words = query_words(query)
    for descriptions in DOCUMENTS:
        indices = document_vector(descriptions).indices
        assert coverage(words, indices) == keyword_coverage(query, indices)


def test_a_query_without_content_words_covers_nothing():
    assert query_words("the of a") == []
    assert coverage([], document_vector(["a dog"]).indices) == 0.0
