"""bench_scale.py end to end at its smallest: 1k realistic photos prefilled and adopted, the real
`withsense serve all`, one open-loop rate, the floors. Minutes on 2 busy cores (two model loads).
Then bench_single_client.py on the same prefilled store: two real stacks side by side."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
DATA = Path(os.environ.get("WITHSENSE_CUSTOMER_DATA", "/work/shared/data/withsense"))


@pytest.fixture(scope="module")
def scale_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """The benchmarks' environment, with one folder of prefilled stores for this module."""
    env = {**os.environ, "WITHSENSE_SCALE_DIR": str(tmp_path_factory.mktemp("scale"))}
    if Path("/work/cache").is_dir():
        env.setdefault("WITHSENSE_FEATURE_CACHE", "/work/cache")
    return env


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(not (DATA / "extra" / "captions.txt").exists(),
                    reason="the customer's data set is not here")
def test_bench_scale_smallest_run(scale_env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    done = subprocess.run(
        [sys.executable, "bench_scale.py", "--sizes", "1k", "--rates", "5", "--duration", "2", "--json"],
        cwd=BENCHMARKS, env=scale_env, capture_output=True, text=True, timeout=1500, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    [result] = json.loads(done.stdout)
    assert result["photos"] == 1000 and result["built"]["count"] == 1000
    [row] = result["rows"]
    assert row["offered_qps"] == 5 and row["requests"] >= 10
    assert row["ok"] + row["shed"] + row["errors"] == row["requests"]
    floor = result["floors"]
    assert all(ms > 0 for ms in floor["tower_ms"] + floor["store_ms"])
    assert floor["tower_cpu_ms"] > 0 and floor["store_cpu_ms"] >= 0
    monkeypatch.syspath_prepend(str(BENCHMARKS))
    import bench_scale  # the rendering of the report just made

    assert "searches a second on" in bench_scale.render(result, 2)
    scale_dir = Path(scale_env["WITHSENSE_SCALE_DIR"])
    assert (scale_dir / "store-1000-m16-efc128-int8-disk" / "store-catalogue.sqlite").exists()


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(not (DATA / "extra" / "captions.txt").exists(),
                    reason="the customer's data set is not here")
def test_bench_single_client_two_stacks(scale_env: dict[str, str]) -> None:
    """This checkout against itself searching the graph instead of exactly (1k photos are
    below exact_up_to): both stacks answer every search."""
    done = subprocess.run(
        [sys.executable, "bench_single_client.py", "--size", "1k", "--queries", "6", "--repeats", "1",
         "--variant", "graph=WITHSENSE_STORE_EXACT_UP_TO=0", "--json"],
        cwd=BENCHMARKS, env=scale_env, capture_output=True, text=True, timeout=1500, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert result["photos"] == 1000 and set(result["results"]) == {"this checkout", "graph"}
    for repeats in result["results"].values():
        assert len(repeats) == 2  # 1 repeat in each of 2 passes (one per stack)
        assert all(0 < p50 <= p90 <= p99 and cpu > 0 for p50, p90, p99, cpu in repeats)
    bad = subprocess.run([sys.executable, "bench_single_client.py", "--variant", "no-equals-sign"],
                         cwd=BENCHMARKS, env=scale_env, capture_output=True, text=True, timeout=120)
    assert bad.returncode != 0 and "--variant 'no-equals-sign'" in bad.stderr
