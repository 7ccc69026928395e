"""bench_lexicon.py at its smallest, on synthetic captions in the customer's format: this
checkout against itself agrees; against a tree whose lexicon finds nothing, the run stops."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
CAPTIONS = ["A child plays on the beach.", "Two men cross a metal bridge.", "A k1d rides a bike.",
            "A dog runs in the park.", "Old women sell fruit at a market.", "A toddler in a red hat."]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    (tmp_path / "extra").mkdir()
    lines = [f"{i:04d}.jpg#{j}\t{text}" for i in range(5) for j, text in enumerate(CAPTIONS)]
    (tmp_path / "extra" / "captions.txt").write_text("\n".join(lines) + "\n")
    return tmp_path


def bench(data: Path, baseline: Path, *extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "bench_lexicon.py", "--baseline-src", str(baseline), "--warm", "6",
         "--queries", "8", "--repeats", "2", *extra],
        cwd=REPO / "benchmarks", env={**os.environ, "WITHSENSE_CUSTOMER_DATA": str(data)},
        capture_output=True, text=True, timeout=600, check=False)


def test_a_tree_against_itself_agrees(data: Path) -> None:
    done = bench(data, REPO, "--json")
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["queries"] == 8 and result["repeats"] == 2
    assert result["flagged"] > 0  # the children and the disguised kid were found
    assert all(c["p50"] > 0 for c in result["cpu_ms"].values()) and len(result["cpu_ms"]) == 2


def test_a_lexicon_that_finds_otherwise_stops_the_run(data: Path, tmp_path: Path) -> None:
    blind = tmp_path / "blind" / "services" / "withsense" / "compliance"
    blind.mkdir(parents=True)
    (blind.parent / "__init__.py").write_text("")
    (blind / "__init__.py").write_text("")
    (blind / "mentions.py").write_text("def child_mention_rules(text):\n    return ()\n")
    done = bench(data, tmp_path / "blind")
    assert done.returncode != 0 and "disagree" in done.stderr


def test_bad_arguments_are_refused(data: Path, tmp_path: Path) -> None:
    done = bench(data, tmp_path)
    assert done.returncode != 0 and "--baseline-src" in done.stderr
