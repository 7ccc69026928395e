"""bench_scale.py end to end at its smallest: 1k realistic photos prefilled and adopted, the real
`withsense serve all`, one open-loop rate, the floors. Minutes on 2 busy cores (two model loads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
DATA = Path(os.environ.get("WITHSENSE_CUSTOMER_DATA", "/work/shared/data/withsense"))


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(not (DATA / "extra" / "captions.txt").exists(),
                    reason="the customer's data set is not here")
def test_bench_scale_smallest_run(tmp_path: Path) -> None:
    env = {**os.environ, "WITHSENSE_SCALE_DIR": str(tmp_path)}
    if Path("/work/cache").is_dir():
        env.setdefault("WITHSENSE_FEATURE_CACHE", "/work/cache")
    done = subprocess.run(
        [sys.executable, "bench_scale.py", "--sizes", "1k", "--rates", "5", "--duration", "2", "--json"],
        cwd=BENCHMARKS, env=env, capture_output=True, text=True, timeout=1500, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    [result] = json.loads(done.stdout)
    assert result["photos"] == 1000 and result["built"]["count"] == 1000
    [row] = result["rows"]
    assert row["offered_qps"] == 5 and row["requests"] >= 10
    assert row["ok"] + row["shed"] + row["errors"] == row["requests"]
    assert all(ms > 0 for ms in result["floors"]["tower_ms"] + result["floors"]["store_ms"])
    assert (tmp_path / "store-1000-m16-efc128-int8-disk" / "store-catalogue.sqlite").exists()
