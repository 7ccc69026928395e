"""The child-term lexicon on English and Russian text, inflected forms included."""

import pytest
from withsense.compliance import child_mentions, mentions_child, normalise, tokenise

BLOCKED = [
    ("Мальчик играет с собакой", "мальчик"),
    ("фото детей на пляже", "ребенок"),
    ("a toddler in a pool", "toddler"),
    ("Kids!", "kid"),
    ("two boys playing football", "boy"),
    ("the girls' locker room", "girl"),
    ("children's toys on the floor", "child"),
    ("A child in a pink dress is climbing up a set of stairs", "child"),
    ("A little girl covered in paint sits in front of a painted rainbow", "girl"),
    ("a baby sleeping", "baby"),
    ("Babies in a playpen", "baby"),
    ("a teenager on a skateboard", "teenager"),
    ("two teenage friends", "teenage"),
    ("a pre-teen in a hoodie", "teen"),
    ("newborns in a hospital", "newborn"),
    ("a father and his son fishing", "son"),
    ("mother with two daughters", "daughter"),
    ("schoolgirls in uniform", "schoolgirl"),
    ("the babysitter reads a book", "babysitter"),
    ("little ones in the garden", "little one"),
    ("a little league game", "little league"),
    ("a 5-year-old at the beach", "5 year old"),
    ("a six month old on a blanket", "six month old"),
    ("The young soccer player kicks the ball", "young player"),
    ("a young person sliding down a sandy hill", "young person"),
    ("мальчики на велосипедах", "мальчик"),
    ("с девочкой на руках", "девочка"),
    ("родители с детьми в парке", "ребенок"),
    ("игрушка для ребёнка", "ребенок"),
    ("игрушка для ребенка", "ребенок"),
    ("РЕБЁНОК В КОЛЯСКЕ", "ребенок"),
    ("младенцы спят", "младенец"),
    ("подростки в парке", "подросток"),
    ("школьница с рюкзаком", "школьница"),
    ("отец с сыном", "сын"),
    ("мама и дочка", "дочка"),
    ("бабушка с внуками", "внук"),
    ("карапузы в песочнице", "карапуз"),
    ("детский сад", "детский"),
    ("трёхлетняя девочка", "трехлетний"),
    ("малыши играют", "малыш"),
    ("Дитё плачет", "дите"),
    ("a 3yo on a tricycle", "3yo"),
    ("grandchildren at the table", "grandchild"),
]

ALLOWED = [
    "A man is crossing a mountain pass on a metal bridge",
    "A young man in a red jacket",
    "Two women walk a dog",
    "Мужчина идёт по мосту",
    "a young woman reading in a cafe",
    "young adults at a party",
    "A young black man in sunglasses is smiling broadly",
    "A young German Shepherd runs with a toy",
    "aged 40 and happy",
    "A little white dog runs through the grass",
    "a small boat in the harbour",
    "kidney beans in a bowl",
    "you must be kidding",
    "a sonar screen on a ship",
    "my boyfriend and I at the lake",
    "a cowboy on a horse",
    "the school canteen at noon",
    "fifteen cyclists on a road",
    "a 30 year old man jogging",
    "a baby blue car",
    "a baby kangaroo in the park",
    "minor league baseball stadium",
    "5 лет назад",
    "Женщина с собакой на пляже",
    "детали двигателя",
    "молодой человек в кафе",
    "",
]


@pytest.mark.parametrize(("text", "term"), BLOCKED)
def test_child_terms_are_found(text: str, term: str) -> None:
    assert mentions_child(text) == term


@pytest.mark.parametrize("text", ALLOWED)
def test_adult_and_other_texts_are_allowed(text: str) -> None:
    assert mentions_child(text) is None, child_mentions(text)


def test_all_terms_in_order_without_repeats() -> None:
    assert child_mentions("A boy and a girl, and another boy") == ("boy", "girl")


def test_a_neutral_phrase_only_neutralises_its_own_tokens() -> None:
    assert mentions_child("a baby in a baby blue blanket") == "baby"


def test_normalise_folds_case_unicode_yo_and_punctuation() -> None:
    assert normalise("Ребёнок, ＫＩＤＳ!  children’s") == "ребенок kids children"
    assert tokenise("six-year-old's toys") == ["six", "year", "old", "toys"]
