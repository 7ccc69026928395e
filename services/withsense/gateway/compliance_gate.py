"""The gateway's compliance decisions for one request, with the reason that explains each."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from withsense.compliance import (
    CHILD_PROTOTYPE_TEXTS,
    DEFAULT_TOWER_THRESHOLD,
    DISCLAIMER,
    PolicyDecision,
    QueryPolicy,
    RegionRules,
    SemanticChildCheck,
)
from withsense.compliance.policy import RULE_SEMANTIC_UNAVAILABLE
from withsense.gateway.errors import InvalidArgument
from withsense.model.language import ENGLISH, MULTILINGUAL, TextPath

# The English path's check compares text-tower vectors; an artifact without a threshold chosen
# in that space (an older one, the zero-shot model) gets the default chosen there.
ZERO_SHOT_SEMANTIC_THRESHOLD = DEFAULT_TOWER_THRESHOLD


@dataclass(frozen=True)
class RegionDecision:
    region: str          # normalised code, "" when unknown
    restricted: bool

    def describe(self) -> str:
        name = self.region or "unknown region"
        return f"{name} {'restricted' if self.restricted else 'unrestricted'}"


class ComplianceGate:
    """Query policy + region rules; semantic prototypes are embedded by the worker at start,
    once per text path: a query's embedding is checked against prototypes embedded on the same
    path (the same tower), with that path's own threshold."""

    disclaimer = DISCLAIMER

    def __init__(self, restricted_regions: list[str], semantic_threshold: float | None,
                 multilingual_semantic_threshold: float | None = None) -> None:
        try:
            self.regions = RegionRules(restricted_regions)
        except ValueError as exc:
            raise ValueError(f"WITHSENSE_RESTRICTED_REGIONS: {exc}") from exc
        self.semantic_threshold = semantic_threshold
        self.multilingual_semantic_threshold = multilingual_semantic_threshold
        self.policy = QueryPolicy()  # the lexicon alone until the prototypes are embedded
        self.policies: dict[TextPath, QueryPolicy] = {}

    def prototype_texts(self) -> list[str]:
        return list(CHILD_PROTOTYPE_TEXTS)

    def set_prototypes(self, vectors: np.ndarray, model_threshold: float | None) -> float:
        """Arms the semantic check; the configured threshold wins over the model's. Returns it."""
        threshold = next(t for t in (self.semantic_threshold, model_threshold,
                                     ZERO_SHOT_SEMANTIC_THRESHOLD) if t is not None)
        semantic = SemanticChildCheck(vectors.astype(np.float32), threshold,
                                      labels=self.prototype_texts())
        self.policy = QueryPolicy(semantic=semantic)
        self.policies[ENGLISH] = self.policy
        return threshold

    def set_multilingual_prototypes(self, vectors: np.ndarray, model_threshold: float | None) -> float:
        """Arms the semantic check of the multilingual path (after ``set_prototypes``): the
        configured threshold, else the model's for this path, else the English one."""
        english = self.policies.get(ENGLISH)
        fallback = english.semantic.threshold if english and english.semantic else None
        threshold = next(t for t in (self.multilingual_semantic_threshold, model_threshold,
                                     fallback, ZERO_SHOT_SEMANTIC_THRESHOLD) if t is not None)
        semantic = SemanticChildCheck(vectors.astype(np.float32), threshold,
                                      labels=self.prototype_texts())
        self.policies[MULTILINGUAL] = QueryPolicy(semantic=semantic)
        return threshold

    def semantic_decision(self, text: str, path: TextPath,
                          check_vector: np.ndarray | None) -> PolicyDecision:
        """The semantic check of a query (after the lexicon) with the prototypes of its path.
        When it cannot run (no prototypes armed for the path, no check vector from the worker,
        a vector that does not fit the prototypes) the query is blocked: fail closed."""
        policy = self.policies.get(path)
        if policy is None or policy.semantic is None or check_vector is None:
            missing = "no check vector" if check_vector is None else f"no prototypes for {path}"
            return PolicyDecision(blocked=True, rule=RULE_SEMANTIC_UNAVAILABLE, matched=missing)
        try:
            return policy.check(text, embedding=check_vector)
        except ValueError as exc:
            return PolicyDecision(blocked=True, rule=RULE_SEMANTIC_UNAVAILABLE, matched=str(exc))

    def region(self, code: str) -> RegionDecision:
        try:
            region = self.regions.validate(code)
        except ValueError as exc:
            raise InvalidArgument(f"region: {exc}") from None
        return RegionDecision(region=region, restricted=self.regions.is_restricted(region))
