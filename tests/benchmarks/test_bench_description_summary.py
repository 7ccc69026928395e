"""bench_description_summary.py at its smallest: both store layouts filled with the same
described photos, searched alternately, their description evidence compared (the script stops
if they disagree)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"


def test_both_layouts_give_the_same_evidence() -> None:
    done = subprocess.run(
        [sys.executable, "bench_description_summary.py", "--photos", "300", "--descriptions", "3",
         "--queries", "5", "--repeats", "1", "--json"],
        cwd=BENCHMARKS, capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["photos"] == 300 and result["descriptions"] == 3 and result["samples"] == 5
    assert result["shared_candidates"] == 1.0  # 300 photos are searched exactly: the same lists
    assert len(result["ms"]) == 2
    assert all(ms["wall_p50"] > 0 and ms["cpu_p50"] > 0 for ms in result["ms"].values())


def test_bad_arguments_are_refused() -> None:
    done = subprocess.run([sys.executable, "bench_description_summary.py", "--photos", "0"],
                          cwd=BENCHMARKS, capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode != 0 and "--photos" in done.stderr
