"""Compliance: no photo that shows or describes a child (anyone under 16) is served in a
restricted region, and no query about children is answered there.

- ``mentions_child`` / ``child_mentions``: the lexicon check on one text (English, Russian),
  on the text as written and with its disguises undone (``canonical``: leetspeak, look-alike
  letters, spacing, transliteration, misspellings); ``child_mention_rules`` says which.
- ``semantic_text``: the query as the semantic check judges it (non-person senses removed).
- ``QueryPolicy`` / ``PolicyDecision``: may a query be served (lexicon, then semantic check).
- ``SemanticChildCheck``, ``CHILD_PROTOTYPE_TEXTS``, ``choose_threshold``: the semantic check.
- ``flag_image`` / ``ImageFlags``: the ``minor`` flag of a photo, from its descriptions.
- ``RegionRules``: ISO 3166-1 alpha-2 validation and restricted regions.
- ``audit_log``: one JSON line per decision on the ``withsense.audit`` logger.
- ``DISCLAIMER``: what a withheld hit or a blocked query shows.
"""

from withsense.compliance.audit import AUDIT_LOGGER, audit_log, audit_record, query_hash
from withsense.compliance.flags import ImageFlags, flag_image
from withsense.compliance.mentions import (
    child_mention_rules,
    child_mentions,
    mentions_child,
    semantic_text,
)
from withsense.compliance.policy import ALLOWED, PolicyDecision, QueryPolicy
from withsense.compliance.regions import ISO_3166_ALPHA2, RegionRules, normalise_region
from withsense.compliance.semantic import (
    CHECK_SPACE,
    CHILD_PROTOTYPE_TEXTS,
    DEFAULT_TOWER_THRESHOLD,
    SemanticChildCheck,
    choose_threshold,
    threshold_report,
    tower_threshold,
)
from withsense.compliance.text import lemmatise, normalise, tokenise
from withsense.config.gateway import DISCLAIMER

__all__ = [
    "ALLOWED",
    "AUDIT_LOGGER",
    "CHECK_SPACE",
    "CHILD_PROTOTYPE_TEXTS",
    "DEFAULT_TOWER_THRESHOLD",
    "DISCLAIMER",
    "ISO_3166_ALPHA2",
    "ImageFlags",
    "PolicyDecision",
    "QueryPolicy",
    "RegionRules",
    "SemanticChildCheck",
    "audit_log",
    "audit_record",
    "child_mention_rules",
    "child_mentions",
    "choose_threshold",
    "flag_image",
    "lemmatise",
    "mentions_child",
    "normalise",
    "normalise_region",
    "query_hash",
    "semantic_text",
    "threshold_report",
    "tokenise",
    "tower_threshold",
]
