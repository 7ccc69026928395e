"""Which text path a query takes: the English tower, or the multilingual one.

The English text tower (all-MiniLM-L6-v2) knows only the Latin alphabet: a Russian query comes
out as noise (R@10 0.16 against 0.90 for the same queries in English). The multilingual tower
(multilingual-e5-small) understands both, but through a learned map it is a little weaker in
English, so English keeps its own path and only text written mostly in another script goes
multilingual.

The test is the script of the letters, not a language model: it costs microseconds, needs no
data, and cannot be fooled into sending Russian to the English tower. A query is multilingual
when at least ``MULTILINGUAL_SHARE`` of its letters are not Latin. The share is low on purpose:
a mixed query ("собака on the beach") loses a word on the English tower but none on the
multilingual one. Latin-script languages other than English (French, German, ...) stay on the
English path: telling them from English needs more than the script.
"""

from __future__ import annotations

import unicodedata
from typing import Literal

from withsense.v1 import inference_pb2 as pb

TextPath = Literal["english", "multilingual"]
ENGLISH: TextPath = "english"
MULTILINGUAL: TextPath = "multilingual"
TEXT_PATHS: tuple[TextPath, ...] = (ENGLISH, MULTILINGUAL)

# At least this share of the letters outside the Latin alphabet sends a text multilingual.
MULTILINGUAL_SHARE = 0.25


def non_latin_share(text: str) -> float:
    """Share of the letters of ``text`` that are not Latin (0.0 when it has no letters)."""
    letters = [ch for ch in text if ch.isalpha()]
    if not letters:
        return 0.0
    other = sum(1 for ch in letters if not _is_latin(ch))
    return other / len(letters)


def _is_latin(ch: str) -> bool:
    if ch.isascii():
        return True
    # Accented Latin letters (é, ü, ß, ...) are named "LATIN ... LETTER ...".
    return unicodedata.name(ch, "").startswith("LATIN")


def text_path(text: str) -> TextPath:
    """"multilingual" when at least a quarter of the letters are not Latin, else "english"."""
    return MULTILINGUAL if non_latin_share(text) >= MULTILINGUAL_SHARE else ENGLISH


# The same paths on the wire (inference.proto's TextPath); None: by the text's script.
PATH_FROM_WIRE: dict[int, TextPath | None] = {
    pb.TEXT_PATH_AUTO: None, pb.TEXT_PATH_ENGLISH: ENGLISH, pb.TEXT_PATH_MULTILINGUAL: MULTILINGUAL,
}
PATH_TO_WIRE: dict[str, int] = {ENGLISH: pb.TEXT_PATH_ENGLISH, MULTILINGUAL: pb.TEXT_PATH_MULTILINGUAL}
