"""The lexicon's phrase index finds exactly what trying every phrase at every token finds."""

from __future__ import annotations

import random

from withsense.compliance import mentions
from withsense.compliance.lexicon import NEUTRAL_NAMES, NEUTRAL_PHRASES, PHRASES
from withsense.compliance.text import lemmas

PHRASE_SETS = [mentions._NEUTRAL_SLOTS, mentions._NAME_SLOTS, mentions._TERM_PHRASES]


def _every_phrase_everywhere(lems, slots_list) -> set[int]:
    found: set[int] = set()
    for i in range(len(lems)):
        for slots in slots_list:
            if mentions._phrase_at(lems, i, slots):
                found.update(range(i, i + len(slots)))
    return found


def test_the_index_keeps_every_phrase_in_order() -> None:
    assert len(mentions._NEUTRAL_SLOTS.slots) == len(NEUTRAL_PHRASES)
    assert len(mentions._NAME_SLOTS.slots) == len(NEUTRAL_NAMES)
    assert mentions._TERM_PHRASES.slots == tuple(PHRASES.values())
    assert tuple(PHRASES) == mentions._TERM_PHRASE_NAMES


def test_phrase_positions_equal_the_exhaustive_scan() -> None:
    words = sorted({w for phrases in PHRASE_SETS for slots in phrases.slots for slot in slots
                    for w in slot} | {"a", "the", "dog", "ones", "boys", "girls", "kids"})
    rng = random.Random(7)
    matched = 0
    for _ in range(3000):
        tokens = [rng.choice(words) for _ in range(rng.randint(1, 9))]
        lems = [lemmas(t) for t in tokens]
        for phrases in PHRASE_SETS:
            expected = _every_phrase_everywhere(lems, phrases.slots)
            assert mentions._phrase_positions(lems, phrases) == expected, tokens
            matched += bool(expected)
    assert matched > 100  # the random texts do hold phrases
