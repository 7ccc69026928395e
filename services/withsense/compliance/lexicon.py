"""The curated lexicon of child terms, English and Russian (anyone under 16).

Everything here is in folded form (lowercase, ``ё`` -> ``е``; see ``text.fold``) and matched
against whole tokens and their lemmas, never substrings, so words that merely contain a term are
not matches: "kidney", "sonar", "boyfriend", "girlfriend", "cowboy", "canteen", "fifteen".

Choices (the direction of doubt is to block: a false block costs one search result, a miss can
break the law):
- Relationship words (son, daughter, grandson, niece, сын, дочь, внук, ...) are terms although
  adults have parents too: in photo captions and queries they mostly describe children.
- "girl"/"boy" are terms although adults are sometimes called so ("girls' night out").
- "minor", "juvenile", "kid" have adult senses ("minor road", "kid leather"): kept; the commonest
  non-person phrases are listed in ``NEUTRAL_PHRASES`` and do not count.
- "teenage"/"teenaged" are terms (they describe a teen), "babysitter"/"babysitting" too (a
  babysitter is there for a child).
- "young", "little", "small", "юный", "маленький" alone are not terms ("a young man", "a little
  dog"); "little one(s)", "young one(s)" and "little league" are (``PHRASES``).
- "youth" is a term ("youth football" shows children); "youth hostel" and "fountain of youth" are
  not (``NEUTRAL_PHRASES``).
- Idioms, colours, materials and proper names that only look like child terms are listed in
  ``NEUTRAL_PHRASES`` ("baby blue", "kid gloves", "Billy the Kid", "childhood home"); a phrase
  goes there only when it cannot describe a child ("childhood photos", "baby steps", "the karate
  kid", "baby shower" stay blocked: a doubtful phrase is withheld).
- "family", "student", "pupil", "ученик" are not terms (adults, or an eye); the semantic check is
  there for such paraphrases.
- "детский" (children's ...: "детский сад", "детская площадка") and "детство" are terms, like
  English "children's", "childhood"; "детеныш" (an animal's young) is not.
- "девчонка" (a lass, sometimes an adult) and "старшеклассник" (a high-schooler, 15-17) are
  terms: the conservative reading.
"""

from __future__ import annotations

# English lemmas (simplemma's lemma, or the word itself where simplemma keeps it).
EN_TERMS: frozenset[str] = frozenset(
    {
        # children in general
        "child", "children", "childhood", "kid", "kidz", "kiddie", "kiddy", "kiddo", "youngster",
        "youngling", "youth", "juvenile", "minor", "offspring", "orphan", "bairn", "tyke", "tot",
        # babies
        "baby", "babyhood", "infant", "newborn", "neonate", "toddler",
        "babysitter", "babysit", "babysitting",
        # boys and girls
        "boy", "boyhood", "girl", "girlhood", "schoolboy", "schoolgirl", "choirboy", "paperboy",
        "ballboy", "ballgirl",
        # school age
        "schoolchild", "schoolchildren", "schoolkid", "preschooler", "preschool", "kindergarten",
        "kindergartner", "kindergartener",
        # teens
        "teen", "teens", "teenage", "teenaged", "teenager", "tween", "preteen", "adolescent",
        "adolescence", "pubescent", "prepubescent", "underage",
        # family
        "son", "daughter", "stepson", "stepdaughter", "grandson", "granddaughter", "grandchild",
        "godson", "goddaughter", "godchild", "nephew", "niece",
    }
)  # fmt: skip

# Surface forms whose lemma collides with a term but which are not about a child
# (simplemma lemmatises the verb "to kid": "kidding" -> "kid").
EN_NOT_TERMS: frozenset[str] = frozenset({"kidding", "kidded", "kidder", "kidders", "kiddings"})

# Russian lemmas, as pymorphy3 normalises them (nominative singular / masculine), folded.
RU_TERMS: frozenset[str] = frozenset(
    {
        # children in general ("дети" normalises to "ребенок"; kept for the simplemma fallback)
        "ребенок", "ребеночек", "дети", "дитя", "дите", "чадо", "малявка", "детишки", "детвора",
        "ребятишки", "ребятня", "детство", "детский", "детсад", "детсадовец", "детсадовский",
        "дошкольник", "дошкольница", "несовершеннолетний", "сирота",
        # babies
        "младенец", "грудничок", "новорожденный", "малыш", "малышка", "малютка", "карапуз",
        "кроха", "годовалый", "полугодовалый",
        # boys and girls
        "мальчик", "мальчишка", "мальчуган", "мальчонка", "пацаненок", "девочка", "девчонка",
        "девчушка",
        # school age and teens
        "школьник", "школьница", "первоклассник", "первоклассница", "первоклашка",
        "младшеклассник", "младшеклассница", "старшеклассник", "старшеклассница", "подросток",
        "тинейджер", "отрок",
        # family
        "сын", "сынок", "сынишка", "дочь", "дочка", "доченька", "дочурка", "внук", "внучка",
        "внучок", "пасынок", "падчерица", "племянник", "племянница", "крестник", "крестница",
    }
)  # fmt: skip

# Multi-word terms: consecutive tokens, each given as the set of lemmas that may fill the slot.
# The returned term is the key.
PHRASES: dict[str, tuple[frozenset[str], ...]] = {
    "little one": (frozenset({"little"}), frozenset({"one", "ones"})),
    "young one": (frozenset({"young"}), frozenset({"one", "ones"})),
    "little league": (frozenset({"little"}), frozenset({"league"})),
    "cub scout": (frozenset({"cub"}), frozenset({"scout"})),
    "under age": (frozenset({"under"}), frozenset({"age"})),
}

# Phrases whose tokens do not count as child terms: the non-person senses of a term. Only those
# tokens are neutralised, so "a baby in a baby blue blanket" is still flagged.
NEUTRAL_PHRASES: tuple[tuple[str, ...], ...] = (
    ("baby", "blue"),
    ("baby", "pink"),
    ("baby", "grand"),
    ("baby", "spinach"),
    ("baby", "carrot"),
    ("baby", "corn"),
    ("baby", "back", "rib"),
    ("kid", "glove"),
    ("kid", "leather"),
    ("minor", "league"),
    ("minor", "key"),
    ("minor", "road"),
    ("minor", "injury"),
    ("minor", "detail"),
    ("baby", "pool"),
    ("kiddie", "pool"),
    ("kiddy", "pool"),
    ("baby", "boomer"),
    ("minor", "chord"),
    ("minor", "scale"),
    ("minor", "repair"),
    ("minor", "damage"),
    ("minor", "planet"),
    ("youth", "hostel"),
    ("fountain", "of", "youth"),
    # A place where someone grew up is a building, not a child ("childhood photos" still counts).
    ("childhood", "home"),
    ("childhood", "house"),
)

# Proper names that contain a term but name adults (an outlaw, musicians, a band, a sitcom about
# old women, cartoon turtles). A name can also be a child's ("billy the kid next door on his
# bike"), so a name is neutral only when every other word of the text is one of
# ``NAME_CONTEXT``: the query is about the name itself ("Kid Rock concert", "Billy the Kid").
NEUTRAL_NAMES: tuple[tuple[str, ...], ...] = (
    ("billy", "the", "kid"),
    ("kid", "rock"),
    ("boy", "george"),
    ("pet", "shop", "boy"),
    ("golden", "girl"),
    ("teenage", "mutant", "ninja", "turtle"),
)
NAME_CONTEXT: frozenset[str] = frozenset(
    {
        "a", "an", "the", "of", "on", "at", "in", "and", "by", "with", "from", "live", "stage",
        "concert", "tour", "album", "song", "band", "show", "film", "movie", "poster", "photo",
        "picture", "portrait", "premiere", "tickets", "statue", "grave", "museum", "book",
        "cover", "costume", "logo", "toy", "figure", "figurine", "mural", "graffiti", "sign",
    }
)  # fmt: skip

# "baby" before an animal is the animal's young ("a baby kangaroo"): not a child term.
ANIMAL_YOUNG_TERMS: frozenset[str] = frozenset({"baby"})
ANIMALS: frozenset[str] = frozenset(
    {
        "animal", "dog", "puppy", "cat", "kitten", "bird", "chick", "duck", "duckling", "goose",
        "swan", "owl", "penguin", "kangaroo", "koala", "elephant", "giraffe", "zebra", "lion",
        "tiger", "bear", "panda", "monkey", "gorilla", "chimp", "chimpanzee", "horse", "pony",
        "donkey", "cow", "calf", "goat", "sheep", "lamb", "pig", "deer", "fawn", "rabbit",
        "bunny", "squirrel", "fox", "wolf", "seal", "dolphin", "whale", "turtle", "tortoise",
        "alligator", "crocodile", "snake", "lizard", "camel", "llama", "hippo", "rhino", "otter",
        "raccoon", "bat", "shark", "fish",
    }
)  # fmt: skip

# "young" alone is not a term ("a young man"), but "young" before a person word that does not
# say "adult" is: in Flickr-style captions "a young soccer player", "a young person", "young
# people" describe children or teens (every such caption in the customer's sample belongs to a
# photo that other captions call a boy, a girl or a child). "young" looks ahead at most
# ``YOUNG_WINDOW`` tokens ("a young football player"), and an adult word stops it ("a young
# black man", "young adults").
YOUNG_WINDOW = 3
YOUNG_PERSON_NOUNS: frozenset[str] = frozenset(
    {
        "person", "people", "individual", "male", "female", "player", "athlete",
        "footballer", "skater", "skateboarder", "snowboarder", "skier", "swimmer", "surfer",
        "diver", "dancer", "gymnast", "ballerina", "student", "rider", "cyclist", "biker",
        "climber", "runner", "fan", "performer", "musician", "singer", "drummer", "guitarist",
        "cheerleader", "wrestler", "boxer", "golfer", "pitcher", "batter", "catcher", "goalie",
        "sibling", "brother", "sister", "twin",
    }
)  # fmt: skip
ADULT_NOUNS: frozenset[str] = frozenset(
    {
        "man", "men", "woman", "women", "lady", "gentleman", "adult", "guy", "couple", "mother",
        "mom", "mum", "father", "dad", "husband", "wife", "bride", "groom", "soldier",
        "businessman", "businesswoman", "professional",
    }
)  # fmt: skip

# Ages under 16 ("a 5 year old", "six-month-old", "aged 12"), English number words.
EN_NUMBER_WORDS: dict[str, int] = {
    "a": 1, "an": 1, "one": 1, "two": 2, "three": 3, "four": 4, "five": 5, "six": 6,
    "seven": 7, "eight": 8, "nine": 9, "ten": 10, "eleven": 11, "twelve": 12, "thirteen": 13,
    "fourteen": 14, "fifteen": 15, "sixteen": 16, "seventeen": 17, "eighteen": 18,
    "nineteen": 19, "twenty": 20,
}  # fmt: skip
AGE_LIMIT_YEARS = 16
# Units of an age and how many of them make a year.
AGE_UNITS: dict[str, float] = {
    "year": 1.0, "years": 1.0, "yr": 1.0, "yrs": 1.0,
    "month": 12.0, "months": 12.0, "mo": 12.0, "mos": 12.0,
    "week": 52.0, "weeks": 52.0, "wk": 52.0, "wks": 52.0,
    "day": 365.0, "days": 365.0,
    "лет": 1.0, "год": 1.0, "года": 1.0,
    "месяц": 12.0, "месяца": 12.0, "месяцев": 12.0,
}  # fmt: skip
# Russian words after "N лет" that make it a span of time, not an age ("5 лет назад").
RU_NOT_AGE_AFTER: frozenset[str] = frozenset({"назад", "спустя", "тому", "подряд", "работы"})
# Russian compound age adjectives: "пятилетний", "трехлетняя" (lemma ...летний / ...месячный).
RU_AGE_PREFIXES: dict[str, int] = {
    "одно": 1, "двух": 2, "трех": 3, "четырех": 4, "пяти": 5, "шести": 6, "семи": 7,
    "восьми": 8, "девяти": 9, "десяти": 10, "одиннадцати": 11, "двенадцати": 12,
    "тринадцати": 13, "четырнадцати": 14, "пятнадцати": 15,
}  # fmt: skip


def en_surface_forms(term: str) -> set[str]:
    """A term plus its regular plurals, in case the lemmatiser does not know the word."""
    forms = {term, term + "s"}
    if term.endswith(("s", "sh", "ch", "x")):
        forms.add(term + "es")
    if term.endswith("y") and term[-2:-1] not in set("aeiou"):
        forms.add(term[:-1] + "ies")
    return forms


EN_FORMS: frozenset[str] = frozenset(
    form for term in EN_TERMS for form in en_surface_forms(term)
) | frozenset({"grandchildren", "godchildren", "schoolchildren", "babysat"})
