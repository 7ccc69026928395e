"""Measuring the query policy on labelled queries: block rate on child queries, false-block rate
on innocent ones, and, for every error, the rule that decided it (or what the lexicon read).

The labelled sets live in ``tests/compliance/data/queries_<lang>.tsv`` (tab-separated
``label``, ``query``, ``note``; ``#`` lines are comments); ``scripts/query_policy_report.py``
prints the tables, and the tests assert on the same numbers.
"""

from __future__ import annotations

import csv
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from withsense.compliance.mentions import terms_as_written
from withsense.compliance.policy import PolicyDecision, QueryPolicy
from withsense.compliance.semantic import CHILD_PROTOTYPE_TEXTS, SemanticChildCheck

LABELS = ("child", "innocent")
Decide = Callable[[Sequence[str]], list[PolicyDecision]]


@dataclass(frozen=True)
class LabelledQuery:
    label: str
    query: str
    note: str = ""


@dataclass
class Outcome:
    query: LabelledQuery
    decision: PolicyDecision

    @property
    def error(self) -> bool:
        return self.decision.blocked != (self.query.label == "child")

    def explain(self) -> str:
        """Which rule blocked an innocent query, or what the lexicon saw in a missed one."""
        if self.decision.blocked:
            return f"{self.decision.rule} ({self.decision.matched})"
        return "missed: no lexicon term, below the semantic threshold"


@dataclass
class Report:
    outcomes: list[Outcome] = field(default_factory=list)

    def _of(self, label: str) -> list[Outcome]:
        return [o for o in self.outcomes if o.query.label == label]

    @property
    def n_child(self) -> int:
        return len(self._of("child"))

    @property
    def n_innocent(self) -> int:
        return len(self._of("innocent"))

    @property
    def block_rate(self) -> float:
        child = self._of("child")
        return sum(o.decision.blocked for o in child) / len(child) if child else float("nan")

    @property
    def false_block_rate(self) -> float:
        innocent = self._of("innocent")
        return sum(o.decision.blocked for o in innocent) / len(innocent) if innocent else float("nan")

    @property
    def errors(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error]


def load_labelled(path: Path) -> list[LabelledQuery]:
    """The queries of one labelled TSV; a clear error naming the file and line for a bad row."""
    rows = [line for line in Path(path).read_text(encoding="utf-8").splitlines()
            if line.strip() and not line.startswith("#")]
    reader = csv.DictReader(rows, delimiter="\t", quoting=csv.QUOTE_NONE)
    queries = []
    for number, row in enumerate(reader, start=2):
        label, query = (row.get("label") or "").strip(), row.get("query") or ""
        if label not in LABELS or not query.strip():
            raise ValueError(f"{path}, data row {number}: label must be one of {LABELS} and the "
                             f"query non-empty, got {label!r}, {query!r}")
        queries.append(LabelledQuery(label, query, (row.get("note") or "").strip()))
    return queries


def evaluate(queries: Sequence[LabelledQuery], decide: Decide) -> Report:
    decisions = decide([q.query for q in queries])
    return Report([Outcome(q, d) for q, d in zip(queries, decisions, strict=True)])


def lexicon_as_written(texts: Sequence[str]) -> list[PolicyDecision]:
    """Baseline: the lexicon on the text as written, no disguise undone."""
    out = []
    for text in texts:
        plain = terms_as_written(text)
        out.append(PolicyDecision(True, "lexicon:child", plain[0]) if plain
                   else PolicyDecision(False, "allowed"))
    return out


def lexicon_policy(texts: Sequence[str]) -> list[PolicyDecision]:
    """The lexicon with disguises undone (the gateway's first check)."""
    policy = QueryPolicy()
    return [policy.check(text) for text in texts]


def semantic_policy(embed: Callable[[list[str]], np.ndarray], threshold: float, *,
                    prototypes: Sequence[str] = CHILD_PROTOTYPE_TEXTS,
                    judge_semantic_text: bool = True) -> Decide:
    """The gateway's whole query policy: the lexicon, then the semantic check in ``embed``'s space
    with the child prototypes and ``threshold`` (judging ``semantic_text`` of each query, as the
    gateway does, unless ``judge_semantic_text`` is off: the earlier behaviour)."""
    check = SemanticChildCheck(embed(list(prototypes)), threshold, labels=list(prototypes))
    policy = QueryPolicy(semantic=check)

    def decide(texts: Sequence[str]) -> list[PolicyDecision]:
        judged = [policy.semantic_text(t) if judge_semantic_text else t for t in texts]
        vectors = embed(judged)
        return [policy.check(text, vector) for text, vector in zip(texts, vectors, strict=True)]

    return decide
