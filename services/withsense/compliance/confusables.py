"""Look-alike letters across Latin and Cyrillic: "сhild" with a Cyrillic "с", "мaльчик" with a
Latin "a", "KPOXA" typed in Latin capitals for "кроха".

The pairs come from Unicode's confusables data (TR39), as shipped by the maintained
``confusable-homoglyphs`` package; each character is mapped to a look-alike of one script only
when that look-alike is a single letter of the target alphabet (Latin a-z, or the Russian
alphabet). Mapping happens before case folding, because capitals have look-alikes that their
lowercase forms lack (Cyrillic "К" / Latin "K", but "к" / "k" are not confusable).
"""

from __future__ import annotations

import json
import unicodedata
from functools import cache
from importlib import resources

LATIN = "latin"
CYRILLIC = "cyrillic"
_ALPHABETS = {
    LATIN: frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"),
    CYRILLIC: frozenset("абвгдеёжзийклмнопрстуфхцчшщъыьэюяАБВГДЕЁЖЗИЙКЛМНОПРСТУФХЦЧШЩЪЫЬЭЮЯ"),
}


@cache
def _table(script: str) -> dict[str, str]:
    """Every character with a look-alike letter of ``script`` -> that letter."""
    data = json.loads(
        resources.files("confusable_homoglyphs").joinpath("confusables.json").read_text("utf-8")
    )
    alphabet = _ALPHABETS[script]
    table: dict[str, str] = {}
    for char, homoglyphs in data.items():
        if len(char) != 1 or char in alphabet:
            continue
        for glyph in homoglyphs:
            if glyph["c"] in alphabet:
                table[char] = glyph["c"]
                break
    return table


def script_of(char: str) -> str | None:
    """"latin", "cyrillic" or None (digits, punctuation, other scripts)."""
    if not char.isalpha():
        return None
    name = unicodedata.name(char, "")
    if name.startswith("LATIN"):
        return LATIN
    if name.startswith("CYRILLIC"):
        return CYRILLIC
    return None


def scripts(word: str) -> set[str]:
    """The scripts of the letters of ``word`` (letters of other scripts count as None)."""
    return {script_of(char) for char in word if char.isalpha()}  # type: ignore[misc]


def skeleton(word: str, script: str) -> str:
    """``word`` with every character that has a look-alike letter of ``script`` replaced by it."""
    table = _table(script)
    return "".join(table.get(char, char) for char in word)
