"""Each rule that undoes a disguise of a child term, and the phrases that only look like one."""

from __future__ import annotations

import pytest
from withsense.compliance import QueryPolicy, child_mention_rules, mentions_child, semantic_text
from withsense.compliance.canonical import canonical_tokens
from withsense.compliance.confusables import CYRILLIC, LATIN, skeleton
from withsense.compliance.leet import has_leet, readings
from withsense.compliance.mentions import is_term_token
from withsense.compliance.spelling import correct, max_edits, russian_in_latin, to_cyrillic


def _rule(text: str) -> str | None:
    found = child_mention_rules(text)
    return found[0][1] if found else None


# --- look-alike letters ------------------------------------------------------------------------

def test_skeleton_maps_look_alikes_to_one_script() -> None:
    assert skeleton("сhild", LATIN) == "child"  # Cyrillic с
    assert skeleton("мaльчик", CYRILLIC) == "мальчик"  # Latin a
    assert skeleton("KPOXA", CYRILLIC) == "КРОХА"  # capitals have look-alikes lowercase lacks
    assert skeleton("bοy", LATIN) == "boy"  # Greek omicron


@pytest.mark.parametrize(("text", "term"), [
    ("сhild on a swing", "child"), ("gіrl in a dress", "girl"), ("bοy with a kite", "boy"),
    ("дeти в парке", "ребенок"), ("KPOXA в коляске", "кроха"), ("MAЛЬЧИК", "мальчик"),
])
def test_confusable_letters_are_read_in_one_script(text: str, term: str) -> None:
    assert child_mention_rules(text)[0] == (term, "confusable")


def test_a_known_word_is_not_read_in_the_other_script() -> None:
    # "сон" (sleep) and "рак" are Russian words; their Latin look-alikes are not taken.
    assert mentions_child("сон на природе") is None
    assert mentions_child("a cosy home") is None


# --- leetspeak ---------------------------------------------------------------------------------

def test_leet_readings() -> None:
    assert "kids" in readings("k1ds", LATIN) and "klds" in readings("k1ds", LATIN)
    assert readings("маль4ик", CYRILLIC)[0] == "мальчик"
    assert has_leet("b@by") and not has_leet("2024") and not has_leet("kids!")


@pytest.mark.parametrize(("text", "term"), [
    ("k1ds playing in a park", "kid"), ("b@by in a bathtub", "baby"), ("t33n at a party", "teen"),
    ("sch00lboy with a backpack", "schoolboy"), ("маль4ик с мячом", "мальчик"),
    ("п0дросток с гитарой", "подросток"),
])
def test_leet_is_decoded(text: str, term: str) -> None:
    assert child_mention_rules(text)[0] == (term, "leet")


def test_numbers_and_ages_keep_their_plain_reading() -> None:
    assert child_mention_rules("5yo boy") == (("5yo", ""), ("boy", ""))
    assert mentions_child("3 dogs in 2024") is None


# --- spacing and invisible characters ----------------------------------------------------------

@pytest.mark.parametrize(("text", "term"), [
    ("c h i l d on a swing", "child"), ("c.h.i.l.d at the zoo", "child"),
    ("c-h-i-l-d-r-e-n dancing", "child"), ("chi ld on a slide", "child"),
    ("todd ler with a toy", "toddler"), ("д.е.т.и в парке", "ребенок"),
    ("ш-к-о-л-ь-н-и-ц-а", "школьница"), ("a c h i l d", "child"),
])
def test_spaced_and_split_words_are_joined(text: str, term: str) -> None:
    assert child_mention_rules(text)[0] == (term, "spacing")


def test_single_letters_around_a_spaced_word_stay_apart() -> None:
    tokens = [t.text for t in canonical_tokens("д е т и в парке", is_term_token)]
    assert tokens == ["дети", "в", "парке"]


def test_real_words_are_not_joined() -> None:
    # "grand" and "son" are words by themselves: no "spacing" reading (the semantic check is
    # there for such phrases); "a b c" spells nothing.
    assert [t.text for t in canonical_tokens("a grand son", is_term_token)] == ["a", "grand", "son"]
    assert mentions_child("a b c") is None


@pytest.mark.parametrize("text", ["chi\u200bld in a pool", "chi\u00adldren at play", "bo\u200dy"])
def test_invisible_characters_are_dropped(text: str) -> None:
    assert mentions_child(text) is not None and _rule(text) == ""


# --- misspellings ------------------------------------------------------------------------------

def test_allowed_edits_grow_with_length() -> None:
    assert [max_edits(w) for w in ("kid", "gril", "todler", "chldren1")] == [0, 1, 1, 2]


@pytest.mark.parametrize(("typo", "form"), [
    ("chidren", "children"), ("todler", "toddler"), ("gril", "girl"), ("kdis", "kids"),
    ("teenagres", "teenagers"), ("рибенок", "ребенок"), ("малчик", "мальчик"),
    ("девачка", "девочка"),
])
def test_misspellings_are_corrected(typo: str, form: str) -> None:
    assert correct(typo) == form


@pytest.mark.parametrize("word", [
    "chill", "kinds", "chile", "boyds",  # dictionary words stay themselves
    "bady", "kiss",  # 4 letters: only a swap of neighbours counts
    "детокс",  # a term with letters added at its end is another word ("деток" + "с")
])
def test_words_that_are_not_misspelt_terms(word: str) -> None:
    assert correct(word) is None


def test_misspelling_rule_is_named() -> None:
    assert child_mention_rules("todler walking") == (("toddler", "misspelling"),)


# --- transliteration ---------------------------------------------------------------------------

def test_to_cyrillic_readings() -> None:
    assert "дети" in to_cyrillic("deti")
    assert "щука" in to_cyrillic("shchuka")


@pytest.mark.parametrize(("latin", "form"), [
    ("deti", "дети"), ("malchik", "мальчик"), ("shkolnitsa", "школьница"),
    ("devochka", "девочка"), ("rebyonok", "ребенок"), ("podrostok", "подросток"),
])
def test_russian_typed_in_latin_letters(latin: str, form: str) -> None:
    assert russian_in_latin(latin) == form


@pytest.mark.parametrize("word", ["son", "vnukovo", "detail", "sirocco"])
def test_english_words_and_names_are_not_transliterated_terms(word: str) -> None:
    assert russian_in_latin(word) is None


# --- phrases that only look like child terms ---------------------------------------------------

@pytest.mark.parametrize("text", [
    "Billy the Kid", "childhood home", "a baby blue car", "a kid glove", "a young man climbing",
    "my childhood house in the village", "Kid Rock concert", "Boy George on stage",
    "baby boomers at a reunion", "a youth hostel in Berlin", "the fountain of youth",
    "a minor chord on a guitar", "teenage mutant ninja turtles poster",
])
def test_innocent_look_alike_phrases_pass_the_lexicon(text: str) -> None:
    assert mentions_child(text) is None


@pytest.mark.parametrize("text", [
    "Billy the kid next door on his bike",  # a name with a child scene: not about the name
    "childhood photos", "a baby in a baby blue blanket", "a kid wearing kid gloves",
    "Boy George with a boy", "a baby shower",  # doubtful: withheld
])
def test_neutral_phrases_do_not_hide_a_child(text: str) -> None:
    assert mentions_child(text) is not None


# --- what the semantic check judges ------------------------------------------------------------

@pytest.mark.parametrize(("text", "judged"), [
    ("a baby blue car", "a blue car"), ("a kid glove", "a glove"),
    ("a young man climbing", "a man climbing"), ("a baby elephant", "a elephant"),
    ("childhood home", "home"), ("young adults at a party", "adults at a party"),
    ("a baby in a baby blue blanket", "a baby in a blue blanket"),
    ("a baby blue pram with a first grader", "a blue pram with a first grader"),
])
def test_semantic_text_drops_only_non_person_senses(text: str, judged: str) -> None:
    assert semantic_text(text) == judged


def test_semantic_text_is_the_query_itself_when_nothing_is_neutral() -> None:
    text = "Pupils in a classroom!"
    assert semantic_text(text) is text


def test_policy_rule_names_the_disguise() -> None:
    decision = QueryPolicy().check("k1ds playing in a park")
    assert decision.blocked and decision.rule == "lexicon:child(leet)" and decision.matched == "kid"
    assert QueryPolicy().check("kids playing").rule == "lexicon:child"
