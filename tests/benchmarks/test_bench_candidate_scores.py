"""bench_candidate_scores.py at its smallest: a described store and an undescribed one, the
candidates of each search scored one search at a time and as one batch (the script stops if
the two disagree)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_the_batch_and_the_searches_one_by_one_agree() -> None:
    done = subprocess.run(
        [sys.executable, "bench_candidate_scores.py", "--photos", "300", "--descriptions", "3,0",
         "--queries", "5", "--repeats", "1", "--json"],
        cwd=BENCHMARKS, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["photos"] == 300 and sorted(result["stores"]) == ["0", "3"]
    for store in result["stores"].values():
        assert store["candidates_p50"] > 0
        assert len(store["ms"]) == 2
        assert all(ms["wall_p50"] > 0 and ms["cpu_p50"] > 0 for ms in store["ms"].values())


def test_bad_arguments_are_refused() -> None:
    for bad, named in ((["--descriptions", "5,x"], "--descriptions"), (["--photos", "0"], "--photos")):
        done = subprocess.run([sys.executable, "bench_candidate_scores.py", *bad],
                              cwd=BENCHMARKS, capture_output=True, text=True, timeout=120, check=False)
        assert done.returncode != 0 and named in done.stderr, done.stderr
