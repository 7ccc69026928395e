"""Which threshold applies to the check vectors, and the gateway's fail-closed semantic step."""

from __future__ import annotations

import numpy as np
import pytest
from withsense.compliance import CHECK_SPACE, DEFAULT_TOWER_THRESHOLD, tower_threshold
from withsense.compliance.policy import RULE_SEMANTIC_UNAVAILABLE
from withsense.gateway.compliance_gate import ZERO_SHOT_SEMANTIC_THRESHOLD, ComplianceGate


def test_only_a_threshold_chosen_in_the_tower_space_applies() -> None:
    assert tower_threshold({"semantic_child_threshold": 0.43,
                            "semantic_child_check": {"space": CHECK_SPACE}}) == 0.43
    # An older artifact's threshold was chosen in the trained joint space: not for check vectors.
    assert tower_threshold({"semantic_child_threshold": 0.37,
                            "semantic_child_check": {"threshold": 0.37}}) is None
    assert tower_threshold({"semantic_child_threshold": 0.37}) is None
    assert tower_threshold({}) is None
    assert ZERO_SHOT_SEMANTIC_THRESHOLD == DEFAULT_TOWER_THRESHOLD


def _gate() -> ComplianceGate:
    gate = ComplianceGate(["DE"], semantic_threshold=None)
    count = len(gate.prototype_texts())
    prototypes = np.tile(np.array([[1, 0, 0, 0]], np.float32), (count, 1))
    prototypes[1] = [0, 1, 0, 0]
    gate.set_prototypes(prototypes, model_threshold=0.5)
    return gate


def test_the_semantic_step_blocks_near_prototypes_and_serves_the_rest() -> None:
    gate = _gate()
    near = gate.semantic_decision("a pupil", "english", np.array([0.9, 0.1, 0, 0], np.float32))
    far = gate.semantic_decision("a bridge", "english", np.array([0, 0, 1, 0], np.float32))
    assert near.blocked and near.rule.startswith("semantic:child-concept")
    assert not far.blocked


@pytest.mark.parametrize(("path", "vector"), [
    ("english", None),                                      # the worker sent no check vector
    ("multilingual", np.array([0, 0, 1, 0], np.float32)),   # no prototypes for this path
    ("english", np.array([0, 0, 1], np.float32)),           # does not fit the prototypes
    ("english", np.zeros(4, np.float32)),                   # cannot be normalised
])
def test_the_semantic_step_fails_closed(path, vector) -> None:
    decision = _gate().semantic_decision("a bridge", path, vector)
    assert decision.blocked and decision.rule == RULE_SEMANTIC_UNAVAILABLE


def test_a_gate_without_prototypes_blocks() -> None:
    gate = ComplianceGate(["DE"], semantic_threshold=None)
    decision = gate.semantic_decision("a bridge", "english", np.ones(4, np.float32))
    assert decision.blocked and decision.rule == RULE_SEMANTIC_UNAVAILABLE
