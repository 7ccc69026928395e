"""Keywords of photo descriptions as a sparse vector, so that exact terms match exactly.

A dense text embedding blurs "Nikon D750", a place name or a photographer's term into its
neighbourhood; a sparse vector keeps them. No vocabulary and no model: each token of the text
(normalised and lemmatised by the compliance tokenizer, so "dogs" meets "dog") is hashed into
a 31-bit index. Every form of a token is indexed ("running" and "run"), stop words are not.

* `document_vector(descriptions)`: the photo's sparse vector. The value of a form is the BM25
  term-frequency saturation with k = 1.2 and no length normalisation (descriptions are short):
  1.0 for one occurrence, approaching 2.2 for many. Qdrant multiplies it by the form's IDF over
  the collection (the `keywords` sparse vector is created with the IDF modifier).
* `query_vector(text)`: 1.0 per form of the query.
* `keyword_coverage(text, document_indices)`: the share of the query's content words found in
  the descriptions. It is the fusion model's keyword feature: unlike an IDF-weighted score it
  does not depend on what else the collection holds, so training and serving see the same scale.
"""

from __future__ import annotations

import hashlib
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

from withsense.compliance.text import lemmas, tokenise

BM25_K = 1.2
INDEX_BITS = 31

# Function words that carry no scene content (English, Russian); digits stay ("d750", "2").
_STOP_WORDS_TEXT = """a an the and or but of in on at to for from by with without into onto over under up down
    out off is are was were be been being am has have had do does did it its this that these those
    there here their they them he she his her him we our you your i me my as while near next
    some very just not no so than then who whom which what where when
    и в во на с со к ко по за из у о об от до же ли не ни а но что это как"""
STOP_WORDS = frozenset(_STOP_WORDS_TEXT.split())


@dataclass(frozen=True)
class SparseVector:
    """Sorted, unique indices and their values (Qdrant's sparse vector)."""

    indices: tuple[int, ...]
    values: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.indices) != len(self.values):
            raise ValueError("sparse vector: indices and values differ in length")

    def __bool__(self) -> bool:
        return bool(self.indices)


@lru_cache(maxsize=65536)
def hash_form(form: str) -> int:
    """A stable 31-bit index of one word form (blake2b, the same on every machine)."""
    digest = hashlib.blake2b(form.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "little") & ((1 << INDEX_BITS) - 1)


def content_tokens(text: str) -> list[str]:
    """The tokens of `text` that are not stop words, in order."""
    return [t for t in tokenise(text) if t not in STOP_WORDS]


def token_indices(token: str) -> frozenset[int]:
    """The indices of every form of one token (the token itself and its lemmas)."""
    return frozenset(hash_form(form) for form in lemmas(token) if form not in STOP_WORDS)


def _sparse(counts: Counter[int], value: Iterable[float] | None = None) -> SparseVector:
    indices = tuple(sorted(counts))
    if value is None:
        values = tuple(counts[i] * (BM25_K + 1) / (counts[i] + BM25_K) for i in indices)
    else:
        values = tuple(value)
    return SparseVector(indices, values)


def document_vector(descriptions: Sequence[str]) -> SparseVector:
    """The sparse vector of a photo's descriptions (empty when they hold no content word)."""
    counts: Counter[int] = Counter()
    for text in descriptions:
        for token in content_tokens(text):
            counts.update(token_indices(token))
    return _sparse(counts)


def query_vector(text: str) -> SparseVector:
    """The sparse vector of a query: 1.0 for every form of its content words."""
    return words_vector(query_words(text))


def query_words(text: str) -> list[frozenset[int]]:
    """The forms of each distinct content word of a query (what ``coverage`` counts)."""
    words = [token_indices(t) for t in dict.fromkeys(content_tokens(text))]
    return [w for w in words if w]


def words_vector(words: Sequence[frozenset[int]]) -> SparseVector:
    """``query_vector`` of words already found by ``query_words`` (a search needs both, and
    lemmatises its query once)."""
    forms = frozenset().union(*words)
    return _sparse(Counter(forms), [1.0] * len(forms))


def coverage(words: Sequence[frozenset[int]], document_indices: Iterable[int]) -> float:
    """Share of the query's words (``query_words``) with a form among `document_indices`.
    A search computes the words once for all its candidates: lemmatising the query again for
    each of ~100 candidates cost ~10-35 ms a search on 2 cores."""
    if not words:
        return 0.0
    have = set(document_indices)
    return sum(1 for w in words if w & have) / len(words)


def keyword_coverage(text: str, document_indices: Iterable[int]) -> float:
    """Share of the query's content words with a form among `document_indices` (0 if none)."""
    return coverage(query_words(text), document_indices)


__all__ = [
    "STOP_WORDS",
    "SparseVector",
    "content_tokens",
    "coverage",
    "document_vector",
    "hash_form",
    "keyword_coverage",
    "query_vector",
    "query_words",
    "words_vector",
]
