"""Does a text show or describe a child? Lexicon matching over lemmatised tokens."""

from __future__ import annotations

import re
from collections.abc import Iterable
from functools import lru_cache

from withsense.compliance.canonical import canonical_tokens
from withsense.compliance.lexicon import (
    ADULT_NOUNS,
    AGE_LIMIT_YEARS,
    AGE_UNITS,
    ANIMAL_YOUNG_TERMS,
    ANIMALS,
    EN_FORMS,
    EN_NOT_TERMS,
    EN_NUMBER_WORDS,
    EN_TERMS,
    NAME_CONTEXT,
    NEUTRAL_NAMES,
    NEUTRAL_PHRASES,
    PHRASES,
    RU_AGE_PREFIXES,
    RU_NOT_AGE_AFTER,
    RU_TERMS,
    YOUNG_PERSON_NOUNS,
    YOUNG_WINDOW,
    en_surface_forms,
)
from withsense.compliance.text import is_cyrillic, lemmas, tokenise

_EN_FORM_TO_TERM: dict[str, str] = {
    form: term for term in sorted(EN_TERMS, reverse=True) for form in en_surface_forms(term)
}
_EN_FORM_TO_TERM.update(
    {"grandchildren": "grandchild", "godchildren": "godchild", "babysat": "babysit"}
)
_RU_AGE_SUFFIXES = ("летний", "месячный")
# "5yo", "3yrs", "6mos" written as one token.
_GLUED_AGE = re.compile(r"^(\d{1,3})(yo|y|yr|yrs|mo|mos|wk|wks)$")
_ENGLISH_AGE_UNITS = {unit for unit in AGE_UNITS if unit.isascii()}


def _number(token: str) -> int | None:
    if token.isdigit() and len(token) <= 3:
        return int(token)
    return EN_NUMBER_WORDS.get(token)


def _is_child_age(count: int, unit: str) -> bool:
    return count / AGE_UNITS[unit] < AGE_LIMIT_YEARS


def _token_term(token: str, candidates: frozenset[str]) -> str | None:
    """The lexicon term of one token, preferring a lemma to the surface form."""
    hits: set[str]
    if is_cyrillic(token):
        hits = set(candidates & RU_TERMS)
        # "пятилетний", "трехмесячная": every prefix in RU_AGE_PREFIXES is under 16 years.
        hits.update(
            lemma
            for lemma in candidates
            for prefix in RU_AGE_PREFIXES
            if lemma.startswith(prefix) and lemma[len(prefix) :] in _RU_AGE_SUFFIXES
        )
    else:
        if token in EN_NOT_TERMS:
            return None
        hits = set(candidates & EN_TERMS)
        if not hits and token in EN_FORMS:
            hits = {_EN_FORM_TO_TERM[token]}
    if not hits:
        return None
    lemma_hits = sorted(hits - {token})
    return lemma_hits[0] if lemma_hits else token


def _age_term(tokens: list[str], i: int) -> str | None:
    """An age under 16 starting at token ``i``: "5 year old", "six months old", "aged 12",
    "5yo", "10 лет" (but not "5 лет назад")."""
    token = tokens[i]
    nxt = tokens[i + 1] if i + 1 < len(tokens) else ""
    after = tokens[i + 2] if i + 2 < len(tokens) else ""
    glued = _GLUED_AGE.match(token)
    if glued:
        unit = {"yo": "year", "y": "year"}.get(glued.group(2), glued.group(2))
        return token if _is_child_age(int(glued.group(1)), unit) else None
    if token in ("aged", "age"):
        count = _number(nxt)
        if count is not None and count < AGE_LIMIT_YEARS and nxt not in ("a", "an"):
            return f"{token} {nxt}"
        return None
    count = _number(token)
    if count is None or nxt not in AGE_UNITS:
        return None
    if nxt in _ENGLISH_AGE_UNITS:
        if after != "old":
            return None
        return f"{token} {nxt} old" if _is_child_age(count, nxt) else None
    if not token.isdigit() or after in RU_NOT_AGE_AFTER:
        return None
    return f"{token} {nxt}" if _is_child_age(count, nxt) else None


def _young_person_term(lems: list[frozenset[str]], i: int) -> str | None:
    """The word "young" before a person word that is not an adult one: "a young soccer player"."""
    if "young" not in lems[i]:
        return None
    for j in range(i + 1, min(i + 1 + YOUNG_WINDOW, len(lems))):
        if lems[j] & ADULT_NOUNS:
            return None
        person = lems[j] & YOUNG_PERSON_NOUNS
        if person:
            return f"young {min(person)}"
    return None


def _phrase_at(lems: list[frozenset[str]], i: int, slots: tuple[frozenset[str], ...]) -> bool:
    if i + len(slots) > len(lems):
        return False
    return all(slot & lems[i + j] for j, slot in enumerate(slots))


class _Phrases:
    """Phrases (slot tuples, in their order) with an index by the words of their first slot:
    only a phrase whose first slot holds one of a token's lemmas can start at that token, so
    each position tries those alone, in the phrases' order (the same matches as trying every
    phrase everywhere, which was a third of a query's lexicon check)."""

    def __init__(self, phrases: Iterable[tuple[frozenset[str], ...]]) -> None:
        self.slots = tuple(phrases)
        index: dict[str, list[int]] = {}
        for n, slots in enumerate(self.slots):
            for word in slots[0]:
                index.setdefault(word, []).append(n)
        self._index = index

    def starting_at(self, lems: list[frozenset[str]], i: int) -> list[int]:
        """The numbers of the phrases that occur at position i, in their order."""
        tried = sorted({n for lemma in lems[i] for n in self._index.get(lemma, ())})
        return [n for n in tried if _phrase_at(lems, i, self.slots[n])]


_NEUTRAL_SLOTS = _Phrases(tuple(frozenset({word}) for word in phrase) for phrase in NEUTRAL_PHRASES)
_NAME_SLOTS = _Phrases(tuple(frozenset({word}) for word in name) for name in NEUTRAL_NAMES)
_TERM_PHRASES = _Phrases(PHRASES.values())
_TERM_PHRASE_NAMES = tuple(PHRASES)


def _phrase_positions(lems: list[frozenset[str]], phrases: _Phrases) -> set[int]:
    """Positions of every token inside an occurrence of one of ``phrases``."""
    found: set[int] = set()
    for i in range(len(lems)):
        for n in phrases.starting_at(lems, i):
            found.update(range(i, i + len(phrases.slots[n])))
    return found


def _neutral_positions(lems: list[frozenset[str]]) -> set[int]:
    """Tokens in a non-person sense of a term: "baby blue", "kid gloves", "a baby kangaroo"."""
    neutral = _phrase_positions(lems, _NEUTRAL_SLOTS)
    neutral.update(i for i in range(len(lems) - 1)
                   if lems[i] & ANIMAL_YOUNG_TERMS and lems[i + 1] & ANIMALS)
    return neutral | _name_positions(lems)


def _name_positions(lems: list[frozenset[str]]) -> set[int]:
    """Tokens of an adult's proper name, when the rest of the text only talks about the name."""
    names = _phrase_positions(lems, _NAME_SLOTS)
    rest = (lems[i] for i in range(len(lems)) if i not in names)
    return names if all(lemma & NAME_CONTEXT for lemma in rest) else set()


def _terms_in(tokens: list[str]) -> list[tuple[str, int]]:
    """Every child term in a token list (lexicon lemmas, phrases, ages) and where it starts."""
    lems = [lemmas(token) for token in tokens]
    neutral = _neutral_positions(lems)
    found: list[tuple[str, int]] = []
    for i, token in enumerate(tokens):
        for n in _TERM_PHRASES.starting_at(lems, i):
            if not neutral & set(range(i, i + len(_TERM_PHRASES.slots[n]))):
                found.append((_TERM_PHRASE_NAMES[n], i))
        if i in neutral:
            continue
        term = _token_term(token, lems[i]) or _age_term(tokens, i) or _young_person_term(lems, i)
        if term is not None:
            found.append((term, i))
    return found


def _young_adult_positions(lems: list[frozenset[str]]) -> set[int]:
    """"young" right before an adult word: "a young man", "young adults"."""
    return {i for i in range(len(lems) - 1) if "young" in lems[i] and lems[i + 1] & ADULT_NOUNS}


def semantic_text(text: str) -> str:
    """The text the semantic check should judge: without the words the lexicon knows to be no
    child here (the term words of "baby blue", "kid gloves", "a baby elephant", "Billy the Kid",
    "childhood home", and "young" before an adult word), so that their embedding does not pull
    the query towards a child prototype ("a baby blue car" is judged as "a blue car"). Every
    other word stays, so a disguised request keeps its meaning ("a baby blue pram with a
    first-grader" is judged as "a blue pram with a first-grader"). Unchanged when nothing is
    neutral."""
    tokens = tokenise(text)
    lems = [lemmas(token) for token in tokens]
    drop = {i for i in _neutral_positions(lems) if _token_term(tokens[i], lems[i])}
    drop |= _young_adult_positions(lems)
    if not drop:
        return text
    return " ".join(token for i, token in enumerate(tokens) if i not in drop)


def terms_as_written(text: str) -> list[str]:
    """The child terms of the text as written, no disguise undone (the earlier lexicon check)."""
    return [term for term, _ in _terms_in(tokenise(text))]


def is_term_token(token: str) -> bool:
    """Does this one (normalised) token name a child term by itself?"""
    return _token_term(token, lemmas(token)) is not None


@lru_cache(maxsize=8192)
def child_mention_rules(text: str) -> tuple[tuple[str, str], ...]:
    """Every child term in ``text``, in order, without repeats, each with the rule that found it:
    "" for the text as written, else the disguise undone to find it ("leet", "confusable",
    "spacing", "translit", "misspelling", joined by "+"; see ``canonical``)."""
    found = dict.fromkeys(terms_as_written(text), "")
    canonical = canonical_tokens(text, is_term_token)
    for term, i in _terms_in([token.text for token in canonical]):
        if term not in found:
            span = canonical[i : i + YOUNG_WINDOW + 1]
            found[term] = next(("+".join(t.rules) for t in span if t.rules), "")
    return tuple(found.items())


def child_mentions(text: str) -> tuple[str, ...]:
    """Every child term in ``text`` (lexicon lemmas, phrases, ages), in order, without repeats,
    in the text as written or with its disguises undone (``canonical``)."""
    return tuple(term for term, _ in child_mention_rules(text))


def mentions_child(text: str) -> str | None:
    """The first child term ``text`` mentions (its lemma, e.g. "child" for "children's",
    "ребенок" for "детьми"), or None.

    The text is normalised (NFKC, lowercase, ``ё`` -> ``е``, invisible characters and
    punctuation stripped), tokenised and lemmatised (English: simplemma; Russian: pymorphy3,
    simplemma as fallback), and matched against the curated lexicon in
    ``withsense.compliance.lexicon`` on whole tokens only; then once more with leetspeak,
    look-alike letters, spacing, transliteration and misspellings undone (``canonical``).
    """
    found = child_mentions(text)
    return found[0] if found else None
