"""Leetspeak: digits and symbols written for letters ("k1ds", "b@by", "$chool", "маль4ик").

Only characters inside a word that also has letters are decoded, so numbers and ages ("5 year
old", "3yo") keep their meaning in the plain reading; the decoded reading is an extra one.
A character with several readings ("1": i or l) yields every reading.
"""

from __future__ import annotations

import itertools
import re

from withsense.compliance.confusables import CYRILLIC, LATIN

_LEET: dict[str, dict[str, tuple[str, ...]]] = {
    LATIN: {
        "0": ("o",), "1": ("i", "l"), "3": ("e",), "4": ("a",), "5": ("s",), "6": ("b", "g"),
        "7": ("t",), "8": ("b",), "9": ("g",), "@": ("a",), "$": ("s",), "!": ("i", "l"),
        "|": ("l", "i"), "+": ("t",), "€": ("e",), "£": ("l",),
    },
    CYRILLIC: {
        "0": ("о",), "3": ("з", "е"), "4": ("ч", "а"), "6": ("б",), "8": ("в",), "@": ("а",),
        "$": ("с",), "|": ("л",),
    },
}  # fmt: skip
LEET_CHARS = frozenset(char for table in _LEET.values() for char in table)
# A word for leetspeak: letters, digits and the symbols above (so "b@by" stays one word).
LEET_WORD = re.compile(r"[\w@$!|+€£]+")
_MAX_READINGS = 16


def has_leet(word: str) -> bool:
    """A letter and, inside or at the start of the word, a leet character: "k1ds", "$chool"
    (but not "kids!" or "5yo"-like ages alone: those are decoded too, and the plain reading
    still counts)."""
    core = word.rstrip("!|")
    return any(c.isalpha() for c in core) and any(c in LEET_CHARS for c in core)


def readings(word: str, script: str) -> list[str]:
    """Every decoding of ``word`` with the leet table of ``script`` (at most 16)."""
    table = _LEET[script]
    core = word.rstrip("!|")
    options = [table.get(char, (char,)) for char in core]
    return ["".join(parts) for parts in itertools.islice(itertools.product(*options), _MAX_READINGS)]
