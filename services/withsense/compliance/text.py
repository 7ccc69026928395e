"""Text preparation for the child-term lexicon: normalise, tokenise, lemmatise.

English tokens are lemmatised with simplemma; Russian (Cyrillic) tokens with pymorphy3 (all
normal forms of all its parses, so an ambiguous word is matched under every reading: for a
compliance check, recall matters more than precision), with simplemma as the fallback for words
pymorphy3 does not know. Every lemma goes through the same folding as the input (lowercase,
NFKC, ``ё`` -> ``е``), so the lexicon is written in folded form.

Both analysers are loaded lazily, once per process, and lemmas are memoised, so the first query
pays a fraction of a second and later ones microseconds.
"""

from __future__ import annotations

import re
import threading
import unicodedata
from functools import lru_cache
from typing import Any

# Apostrophe-like characters NFKC leaves alone; folded to "'" before the possessive is stripped.
_APOSTROPHES = str.maketrans({"\u2019": "'", "\u2018": "'", "\u02bc": "'", "`": "'", "\u00b4": "'"})
# English possessive / elided endings: "children's" -> "children", "girls'" -> "girls".
_POSSESSIVE = re.compile(r"(?<=\w)'(?:s\b)?")
# Anything that is neither a letter nor a digit separates tokens: punctuation, hyphens
# ("pre-teen" -> "pre teen", "six-year-old" -> "six year old"), underscores, symbols.
_NON_WORD = re.compile(r"[\W_]+")
_CYRILLIC = re.compile(r"[\u0400-\u04ff]")
_LATIN = re.compile(r"[a-z]")


def _visible(text: str) -> str:
    """Without format characters (category Cf: zero-width spaces and joiners, soft hyphens, bidi
    marks), which render as nothing and would otherwise split or disguise a word."""
    return "".join(char for char in text if unicodedata.category(char) != "Cf")


def fold(text: str, keep_case: bool = False) -> str:
    """Unicode NFKC without invisible characters, lowercase (casefold) unless ``keep_case``, and
    ``ё`` -> ``е`` (Russian writes both)."""
    text = _visible(unicodedata.normalize("NFKC", text))
    if keep_case:
        return text.replace("ё", "е").replace("Ё", "Е")
    return text.casefold().replace("ё", "е")


def normalise(text: str) -> str:
    """Fold, drop English possessives, and turn every run of punctuation into one space."""
    folded = fold(text).translate(_APOSTROPHES)
    folded = _POSSESSIVE.sub("", folded)
    return _NON_WORD.sub(" ", folded).strip()


def tokenise(text: str) -> list[str]:
    """Tokens of the normalised text, in order."""
    return normalise(text).split()


def is_cyrillic(token: str) -> bool:
    return _CYRILLIC.search(token) is not None


def is_latin(token: str) -> bool:
    return _LATIN.search(token) is not None


_morph: Any = None
_morph_lock = threading.Lock()


def morph_analyser() -> Any:
    """The process-wide pymorphy3 analyser (loading it takes ~0.1 s and some memory)."""
    global _morph
    if _morph is None:
        with _morph_lock:
            if _morph is None:
                import pymorphy3

                _morph = pymorphy3.MorphAnalyzer(lang="ru")
    return _morph


def _simplemma(token: str, lang: str) -> str:
    import simplemma

    return simplemma.lemmatize(token, lang=lang)


@lru_cache(maxsize=65536)
def lemmas(token: str) -> frozenset[str]:
    """Every candidate lemma of one (normalised) token, folded, the token itself included.

    Latin tokens: simplemma's English lemma. Cyrillic tokens: the normal forms of all pymorphy3
    parses; when pymorphy3 does not know the word (a misspelling, slang) simplemma's Russian
    lemma too (simplemma's Russian data takes ~1 s to load, so it is only touched then). Other
    tokens (digits, other scripts) are returned as they are.
    """
    out = {token}
    if is_cyrillic(token):
        morph = morph_analyser()
        out.update(fold(parse.normal_form) for parse in morph.parse(token))
        if not morph.word_is_known(token):
            out.add(fold(_simplemma(token, "ru")))
    elif is_latin(token):
        out.add(fold(_simplemma(token, "en")))
    return frozenset(out)


def lemmatise(text: str) -> list[frozenset[str]]:
    """Candidate lemmas of every token of ``text``, in order."""
    return [lemmas(token) for token in tokenise(text)]
