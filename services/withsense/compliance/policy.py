"""Query policy: may this search query be served at all?"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from withsense.compliance.mentions import child_mention_rules, semantic_text
from withsense.compliance.semantic import SemanticChildCheck

RULE_ALLOWED = "allowed"
RULE_LEXICON = "lexicon:child"
RULE_SEMANTIC = "semantic:child-concept"
# The semantic check could not run (no check vector, no prototypes for the query's path):
# the query is blocked in a restricted region, never waved through.
RULE_SEMANTIC_UNAVAILABLE = "semantic:unavailable"


@dataclass(frozen=True)
class PolicyDecision:
    """``blocked``: the query gets no hits, only the disclaimer. ``rule``: why, for the response
    and the audit log ("lexicon:child", "lexicon:child(leet)" for a disguised term,
    "semantic:child-concept(sim=0.71>=0.55)", "allowed").
    ``matched``: the lexicon term, or the nearest prototype text, that triggered the block."""

    blocked: bool
    rule: str
    matched: str | None = None


ALLOWED = PolicyDecision(blocked=False, rule=RULE_ALLOWED, matched=None)


class QueryPolicy:
    """The lexicon check first (cheap, exact, explainable); then, only when an embedding is
    given and a semantic checker is configured, the semantic check for paraphrases.

    The embedding given for the semantic check must be that of ``semantic_text(text)``: the
    query without the words the lexicon knows to be no child ("baby" in "baby blue").
    """

    def __init__(self, semantic: SemanticChildCheck | None = None) -> None:
        self.semantic = semantic

    @staticmethod
    def semantic_text(text: str) -> str:
        """What to embed for ``check``'s semantic step (often ``text`` itself)."""
        return semantic_text(text)

    def check(self, text: str, embedding: np.ndarray | None = None) -> PolicyDecision:
        found = child_mention_rules(text)
        if found:
            term, disguise = found[0]
            rule = f"{RULE_LEXICON}({disguise})" if disguise else RULE_LEXICON
            return PolicyDecision(blocked=True, rule=rule, matched=term)
        if embedding is not None and self.semantic is not None:
            sim, label = self.semantic.nearest(embedding)
            if sim >= self.semantic.threshold:
                rule = f"{RULE_SEMANTIC}(sim={sim:.2f}>={self.semantic.threshold:.2f})"
                return PolicyDecision(blocked=True, rule=rule, matched=label)
        return ALLOWED
