"""Query policy, semantic check and threshold choice, on small synthetic unit vectors."""

import numpy as np
import pytest
from withsense.compliance import (
    ALLOWED,
    CHILD_PROTOTYPE_TEXTS,
    DISCLAIMER,
    PolicyDecision,
    QueryPolicy,
    SemanticChildCheck,
    choose_threshold,
    threshold_report,
)


def unit(*values: float) -> np.ndarray:
    v = np.asarray(values, dtype=np.float32)
    return v / np.linalg.norm(v)


PROTOTYPES = np.stack([unit(1, 0, 0), unit(0, 1, 0)])


def test_disclaimer_is_re_exported() -> None:
    assert DISCLAIMER == "This image is unavailable in your country in compliance with local laws."


def test_prototype_texts_describe_children_in_english_and_russian() -> None:
    assert 15 <= len(CHILD_PROTOTYPE_TEXTS) <= 25
    assert len(set(CHILD_PROTOTYPE_TEXTS)) == len(CHILD_PROTOTYPE_TEXTS)
    assert any("ребёнок" in text for text in CHILD_PROTOTYPE_TEXTS)


def test_similarity_is_max_cosine() -> None:
    check = SemanticChildCheck(PROTOTYPES, threshold=0.55)
    assert check.similarity(unit(1, 0, 0)) == pytest.approx(1.0)
    assert check.similarity(unit(0, 0, 1)) == pytest.approx(0.0)
    assert check.similarity(np.array([3.0, 4.0, 0.0])) == pytest.approx(0.8)  # re-normalised
    assert check.is_child(unit(1, 1, 0))  # cos 0.707
    assert not check.is_child(unit(1, 0, 2))  # cos 0.447


def test_semantic_check_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="dimension"):
        SemanticChildCheck(PROTOTYPES, 0.5).similarity(unit(1, 0))
    with pytest.raises(ValueError, match="threshold"):
        SemanticChildCheck(PROTOTYPES, 1.5)
    with pytest.raises(ValueError, match="labels"):
        SemanticChildCheck(PROTOTYPES, 0.5, labels=["a child"])


def test_lexicon_blocks_without_embedding() -> None:
    decision = QueryPolicy().check("Мальчик играет с собакой")
    assert decision == PolicyDecision(blocked=True, rule="lexicon:child", matched="мальчик")


def test_lexicon_runs_before_the_semantic_check() -> None:
    policy = QueryPolicy(SemanticChildCheck(PROTOTYPES, 0.55))
    decision = policy.check("a toddler in a pool", unit(0, 0, 1))
    assert decision.rule == "lexicon:child"


def test_semantic_check_blocks_paraphrases_and_explains() -> None:
    policy = QueryPolicy(SemanticChildCheck(PROTOTYPES, 0.55, labels=["a child", "an infant"]))
    decision = policy.check("a person of five years", unit(0.2, 1, 0))
    assert decision.blocked
    assert decision.rule == "semantic:child-concept(sim=0.98>=0.55)"
    assert decision.matched == "an infant"
    assert policy.check("a man on a bridge", unit(0, 0.3, 1)) == ALLOWED


def test_semantic_check_needs_an_embedding_and_a_checker() -> None:
    assert QueryPolicy().check("a person of five years", unit(1, 0, 0)) == ALLOWED
    assert QueryPolicy(SemanticChildCheck(PROTOTYPES, 0.5)).check("a person") == ALLOWED


def test_decision_is_frozen() -> None:
    with pytest.raises(AttributeError):
        ALLOWED.blocked = True  # type: ignore[misc]


def test_choose_threshold_bounds_the_false_block_rate() -> None:
    rng = np.random.default_rng(0)
    adult = rng.uniform(0.0, 0.6, size=1000)
    child = rng.uniform(0.4, 1.0, size=200)
    t = choose_threshold(child, adult, max_false_block_rate=0.02)
    assert np.mean(adult >= t) <= 0.02
    # the smallest such threshold: any lower one blocks one adult query more than allowed
    assert np.mean(adult >= np.sort(adult)[::-1][20]) > 0.02
    assert t == pytest.approx(np.sort(adult)[::-1][20])
    report = threshold_report(child, adult, t)
    assert report["false_block_rate"] <= 0.02 and report["child_recall"] > 0.6


def test_choose_threshold_small_cases() -> None:
    adult = np.array([0.1, 0.2, 0.3, 0.5])
    child = np.array([0.6, 0.9])
    assert 0.5 < choose_threshold(child, adult, 0.0) < 0.5001  # blocks no adult query
    assert 0.3 < choose_threshold(child, adult, 0.25) < 0.3001  # one of four may be blocked
    assert choose_threshold(child, adult, 1.0) == -1.0  # every adult may be blocked
    ties = np.array([0.4, 0.4, 0.4, 0.1])
    t = choose_threshold(child, ties, 0.5)
    assert np.mean(ties >= t) <= 0.5 and t > 0.4
    with pytest.raises(ValueError):
        choose_threshold(child, np.array([]), 0.02)
    with pytest.raises(ValueError):
        choose_threshold(child, adult, 1.5)
