"""A second reading of a query with its disguises undone, for the lexicon to check as well.

A client who wants photos of children and knows that a word list stands in the way writes
"k1ds", "c h i l d", "сhild" (a Cyrillic "с"), "chidren", "malchik". ``canonical_tokens`` reads
the text as such a client would mean it, token by token, and says which rule changed each token:

- ``confusable``: a word mixing Latin and Cyrillic look-alikes is read in one script (both are
  tried; the one that names a term wins, else the script of most of its letters); a word of one
  script that no dictionary knows is also read in the other script when that names a term
  ("KPOXA" in Latin capitals);
- ``leet``: digits and symbols inside a word are read as letters ("k1ds", "b@by");
- ``spacing``: three or more single letters in a row are joined ("c h i l d"), and 2-4
  neighbouring pieces are joined when together they spell a term form and one of them is not a
  word by itself ("chi ld", "tod dler"); invisible characters (zero-width spaces, soft hyphens)
  are dropped before anything else (``text.fold``);
- ``translit``: an unknown Latin word that spells a Russian term form ("deti", "malchik");
- ``misspelling``: an unknown word within a few edits of a term form (``spelling.correct``).

The plain reading is always checked too (``mentions.child_mentions``); this one only adds.
Whether a token "names a term" is asked of the caller (``is_term``), so that this module does not
depend on the matcher.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import lru_cache

from withsense.compliance.confusables import CYRILLIC, LATIN, scripts, skeleton
from withsense.compliance.leet import LEET_WORD, has_leet, readings
from withsense.compliance.lexicon import EN_FORMS
from withsense.compliance.spelling import correct, is_known_word, ru_forms, russian_in_latin
from withsense.compliance.text import fold, tokenise

RULE_CONFUSABLE = "confusable"
RULE_LEET = "leet"
RULE_SPACING = "spacing"
RULE_TRANSLIT = "translit"
RULE_MISSPELLING = "misspelling"
_MIN_SINGLE_LETTER_RUN = 3
# How a word reads depends on the word alone (and on `is_term`, fixed for a process), and
# queries share most of their words: so a query never seen before mostly reads words that were.
# Both per-word steps are remembered (a new query's check took 2.4 ms of CPU, most of it here).
_WORDS_REMEMBERED = 65536
_MAX_JOINED_PIECES = 4
SHORT_WORDS: frozenset[str] = frozenset(
    {
        "a", "i", "an", "at", "in", "on", "to", "of", "by", "is", "it", "be", "we", "he", "me",
        "my", "no", "so", "up", "us", "or", "as", "do", "go", "if", "am", "ok",
        "в", "и", "с", "к", "у", "о", "а", "я", "на", "не", "по", "за", "из", "до", "от", "то",
        "же", "ли", "бы", "во", "со", "ко", "об", "он", "мы", "вы", "их", "ее", "её", "да", "но",
    }
)  # fmt: skip

IsTerm = Callable[[str], bool]


@dataclass(frozen=True)
class Token:
    text: str
    rules: tuple[str, ...] = ()


def _majority_script(word: str) -> str:
    latin = sum(1 for char in word if scripts(char) == {LATIN})
    cyrillic = sum(1 for char in word if scripts(char) == {CYRILLIC})
    return CYRILLIC if cyrillic > latin else LATIN


def _word_readings(word: str) -> list[tuple[str, tuple[str, ...]]]:
    """Readings of one raw word (original case), most likely first, with the rules used."""
    found = scripts(word)
    if not found:  # digits and symbols only: a number, not a disguised word
        return [(word, ())]
    majority = _majority_script(word)
    out: list[tuple[str, tuple[str, ...]]] = [(word, ())]
    if len(found) > 1 or None in found:  # mixed scripts, or letters of a third script
        other = CYRILLIC if majority == LATIN else LATIN
        out = [(skeleton(word, majority), (RULE_CONFUSABLE,)),
               (skeleton(word, other), (RULE_CONFUSABLE,))]
    else:
        other = CYRILLIC if found == {LATIN} else LATIN
        out.append((skeleton(word, other), (RULE_CONFUSABLE,)))
    with_leet: list[tuple[str, tuple[str, ...]]] = []
    for text, rules in out:
        if has_leet(text):
            script = _majority_script(text)
            with_leet += [(reading, (*rules, RULE_LEET)) for reading in readings(text, script)]
        with_leet.append((text, rules))
    return with_leet


@lru_cache(maxsize=_WORDS_REMEMBERED)
def _read_word(word: str, is_term: IsTerm) -> tuple[Token, ...]:
    """The tokens of one raw word under its first reading that names a term, else as written.
    A cross-script reading of a word a dictionary knows is never taken ("сон" is not "coh")."""
    plain = tuple(Token(t) for t in tokenise(word))
    for text, rules in _word_readings(word):
        tokens = tokenise(text)
        if not rules or not any(is_term(t) for t in tokens):
            continue
        if rules == (RULE_CONFUSABLE,) and len(scripts(word)) == 1 and all(
            is_known_word(t) for t in tokenise(word)
        ):
            continue
        return tuple(Token(t, rules) for t in tokens)
    return plain


def _is_form(word: str) -> bool:
    return word in EN_FORMS or word in ru_forms()


def _is_word(piece: str) -> bool:
    """A piece that stands as a word by itself: a dictionary word of 3+ letters, or a short
    function word ("a", "to", "в"); other 1-2 letter pieces ("ld", "n") are fragments."""
    if len(piece) <= 2:
        return piece in SHORT_WORDS
    return is_known_word(piece)


def _join_pieces(tokens: list[Token]) -> list[Token]:
    """Joins runs of single letters and pieces of a split term (see the module docstring)."""
    out: list[Token] = []
    i = 0
    while i < len(tokens):
        run = i
        while run < len(tokens) and len(tokens[run].text) == 1 and tokens[run].text.isalpha():
            run += 1
        if run - i >= _MIN_SINGLE_LETTER_RUN:
            out += _join_letters(tokens[i:run])
            i = run
            continue
        for size in range(_MAX_JOINED_PIECES, 1, -1):
            pieces = tokens[i : i + size]
            word = "".join(p.text for p in pieces)
            if len(pieces) == size and word.isalpha() and _is_form(word) and not all(
                _is_word(p.text) for p in pieces
            ):
                out.append(_joined(pieces))
                i += size
                break
        else:
            out.append(tokens[i])
            i += 1
    return out


def _join_letters(letters: list[Token]) -> list[Token]:
    """A run of single letters: the longest stretch that spells a term form is joined, the
    letters around it are read again the same way ("д е т и в" -> "дети", "в"); with no such
    stretch the whole run is joined (and may still be a misspelling)."""
    for size in range(len(letters), _MIN_SINGLE_LETTER_RUN - 1, -1):
        for start in range(len(letters) - size + 1):
            if _is_form("".join(t.text for t in letters[start : start + size])):
                return (_join_letters(letters[:start]) + [_joined(letters[start : start + size])]
                        + _join_letters(letters[start + size :]))
    if len(letters) < _MIN_SINGLE_LETTER_RUN:
        return letters
    return [_joined(letters)]


def _joined(pieces: list[Token]) -> Token:
    rules = tuple(dict.fromkeys(r for p in pieces for r in p.rules))
    return Token("".join(p.text for p in pieces), (*rules, RULE_SPACING))


@lru_cache(maxsize=_WORDS_REMEMBERED)
def _respell(token: Token, is_term: IsTerm) -> Token:
    if is_term(token.text):
        return token
    for rule, fix in ((RULE_TRANSLIT, russian_in_latin), (RULE_MISSPELLING, correct)):
        fixed = fix(token.text)
        if fixed is not None:
            return Token(fixed, (*token.rules, rule))
    return token


def canonical_tokens(text: str, is_term: IsTerm) -> list[Token]:
    """The tokens of ``text`` with disguises undone, each with the rules that changed it."""
    # fold() drops invisible characters; case is kept for the look-alike tables.
    cleaned = fold(text, keep_case=True)
    tokens: list[Token] = []
    for chunk in cleaned.split():
        last = 0
        for match in LEET_WORD.finditer(chunk):
            tokens += [Token(t) for t in tokenise(chunk[last : match.start()])]
            tokens += _read_word(match.group(), is_term)
            last = match.end()
        tokens += [Token(t) for t in tokenise(chunk[last:])]
    return [_respell(token, is_term) for token in _join_pieces(tokens)]
