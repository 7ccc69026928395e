"""Misspelt and transliterated child terms: "chidren", "todler", "рибенок", "malchik", "deti".

Only words that no dictionary knows are corrected (simplemma's English list, pymorphy3's Russian
one), so real words one letter away from a term stay themselves: "chill", "kinds", "chile",
"мальчишник", "детектив". Short words are where a single edit turns one word into another, so
the allowed distance grows with length (``max_edits``): 4 letters allow only a swap of two
neighbours ("gril" -> "girl"), 5-7 letters one edit, 8 or more two; a term with letters only
added or cut at its end is not taken ("детокс" is not "деток"). Edits are counted as optimal
string alignment (insertions, deletions, substitutions, adjacent swaps; rapidfuzz).

Russian typed in Latin letters is read back letter by letter (``to_cyrillic``) and matched
exactly, up to the letters transliteration loses or blurs (ь, ъ, ё/е, й/и/ы, э/е): "malchik" ->
"малчик" ~ "мальчик".
"""

from __future__ import annotations

import re
from functools import cache

from rapidfuzz.distance import OSA
from rapidfuzz.process import extractOne

from withsense.compliance.lexicon import EN_FORMS, RU_TERMS
from withsense.compliance.text import fold, morph_analyser

# Latin -> Cyrillic, longest spellings first; a tuple lists every reading.
_TRANSLIT: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("shch", ("щ",)), ("sch", ("щ",)), ("sh", ("ш",)), ("ch", ("ч",)), ("zh", ("ж",)),
    ("kh", ("х",)), ("ts", ("ц",)), ("tz", ("ц",)), ("yu", ("ю",)), ("ju", ("ю",)),
    ("iu", ("ю",)), ("ya", ("я",)), ("ja", ("я",)), ("ia", ("я", "иа")), ("yo", ("е",)),
    ("jo", ("е",)), ("ye", ("е",)), ("a", ("а",)), ("b", ("б",)), ("v", ("в",)), ("w", ("в",)),
    ("g", ("г",)), ("d", ("д",)), ("e", ("е",)), ("z", ("з",)), ("i", ("и",)), ("j", ("й",)),
    ("y", ("ы", "й")), ("k", ("к",)), ("l", ("л",)), ("m", ("м",)), ("n", ("н",)), ("o", ("о",)),
    ("p", ("п",)), ("r", ("р",)), ("s", ("с",)), ("t", ("т",)), ("u", ("у",)), ("f", ("ф",)),
    ("h", ("х",)), ("c", ("к", "ц")), ("x", ("кс",)), ("q", ("к",)), ("'", ("ь",)),
)  # fmt: skip
# What transliteration loses or blurs, removed from both sides before comparing.
_BLUR = str.maketrans({"ь": "", "ъ": "", "й": "и", "ы": "и", "э": "е", "ё": "е"})
_LATIN_WORD = re.compile(r"^[a-z']+$")
_MAX_READINGS = 8


def max_edits(word: str) -> int:
    """Edits allowed between an unknown word and a term (4 letters: one adjacent swap only)."""
    if len(word) >= 8:
        return 2
    return 1 if len(word) >= 4 else 0


@cache
def ru_forms() -> frozenset[str]:
    """Every inflected form of every Russian term (folded), from pymorphy3's dictionary."""
    morph = morph_analyser()
    forms = set(RU_TERMS)
    for term in RU_TERMS:
        for parse in morph.parse(term):
            if fold(parse.normal_form) == term:
                forms.update(fold(form.word) for form in parse.lexeme)
    return frozenset(forms)


@cache
def _sorted_forms(cyrillic: bool) -> tuple[str, ...]:
    """Candidate forms in a fixed order, so that ties break the same way in every process."""
    return tuple(sorted(ru_forms() if cyrillic else EN_FORMS))


@cache
def _ru_blurred() -> dict[str, str]:
    return {form.translate(_BLUR): form for form in sorted(ru_forms())}


def is_known_word(token: str) -> bool:
    """Does a dictionary know this (folded) word? Cyrillic: pymorphy3; Latin: simplemma."""
    if re.search(r"[\u0400-\u04ff]", token):
        return bool(morph_analyser().word_is_known(token))
    import simplemma

    return bool(simplemma.is_known(token, lang="en"))


def correct(token: str) -> str | None:
    """The lexicon form an unknown word is a misspelling of, or None."""
    budget = max_edits(token)
    if budget == 0 or is_known_word(token) or token.isdigit():
        return None
    cyrillic = re.search(r"[\u0400-\u04ff]", token) is not None
    best = extractOne(token, _sorted_forms(cyrillic), scorer=OSA.distance, score_cutoff=budget)
    if best is None:
        return None
    form = best[0]
    if len(token) == 4 and not _is_adjacent_swap(token, form):
        return None
    # A term with letters added or cut at the end is mostly another word, not a typo:
    # "детокс" is not "деток", "kidder" not "kidde".
    if token.startswith(form) or form.startswith(token):
        return None
    return form


def _is_adjacent_swap(a: str, b: str) -> bool:
    if len(a) != len(b):
        return False
    diff = [i for i in range(len(a)) if a[i] != b[i]]
    return len(diff) == 2 and diff[1] == diff[0] + 1 and a[diff[0]] == b[diff[1]] and a[diff[1]] == b[diff[0]]


def to_cyrillic(token: str) -> list[str]:
    """Readings of a Latin word as transliterated Russian ("deti" -> ["дети"])."""
    readings = [""]
    i = 0
    while i < len(token):
        for latin, cyrillic in _TRANSLIT:
            if token.startswith(latin, i):
                readings = [r + c for r in readings for c in cyrillic][:_MAX_READINGS]
                i += len(latin)
                break
        else:
            return []
    return readings


def russian_in_latin(token: str) -> str | None:
    """The Russian term form an unknown Latin word transliterates, or None."""
    if not _LATIN_WORD.match(token) or is_known_word(token):
        return None
    blurred = _ru_blurred()
    for reading in to_cyrillic(token):
        form = blurred.get(reading.translate(_BLUR))
        if form is not None:
            return form
    return None
