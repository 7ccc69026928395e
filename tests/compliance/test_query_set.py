"""The labelled English and Russian query sets: every child query is blocked by the lexicon and
at most 2% of innocent queries are (scripts/query_policy_report.py prints the same numbers)."""

from __future__ import annotations

from pathlib import Path

import pytest
from withsense.compliance.query_eval import (
    evaluate,
    lexicon_as_written,
    lexicon_policy,
    load_labelled,
)

DATA = Path(__file__).parent / "data"
MAX_FALSE_BLOCK_RATE = 0.02


@pytest.fixture(scope="module", params=["en", "ru"])
def queries(request):
    return load_labelled(DATA / f"queries_{request.param}.tsv")


def test_the_sets_are_large_enough_and_balanced() -> None:
    sets = [load_labelled(DATA / f"queries_{lang}.tsv") for lang in ("en", "ru")]
    assert sum(len(s) for s in sets) >= 300
    for labelled in sets:
        assert {q.label for q in labelled} == {"child", "innocent"}
        assert len({q.query for q in labelled}) == len(labelled), "duplicate queries"


def test_every_child_query_is_blocked_and_few_innocent_ones(queries) -> None:
    report = evaluate(queries, lexicon_policy)
    missed = [o.query.query for o in report.errors if o.query.label == "child"]
    assert not missed
    assert report.false_block_rate <= MAX_FALSE_BLOCK_RATE, [o.explain() for o in report.errors]


def test_the_disguise_rules_are_what_catches_the_disguised_queries(queries) -> None:
    # The baseline (text as written) misses the disguised ones, so the set really tests the rules.
    baseline = evaluate(queries, lexicon_as_written)
    assert baseline.block_rate < evaluate(queries, lexicon_policy).block_rate


def test_a_bad_row_is_named(tmp_path: Path) -> None:
    bad = tmp_path / "q.tsv"
    bad.write_text("# comment\nlabel\tquery\tnote\nchild\tkids\t\nmaybe\ta dog\t\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"q\.tsv, data row 3: label must be one of"):
        load_labelled(bad)
