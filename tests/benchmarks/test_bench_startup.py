"""bench_startup.py end to end on a small store: the real `withsense serve all` started with the
full verification, stopped with SIGINT (which seals the store), then started again and checked
by the seal. Minutes on 2 busy cores (three model loads)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from withsense.store import ImageRecord, open_store, point_id_for

BENCHMARKS = Path(__file__).resolve().parents[2] / "benchmarks"
DATA = Path(os.environ.get("WITHSENSE_CUSTOMER_DATA", "/work/shared/data/withsense"))


def _prefilled(data: Path, n: int = 60, dim: int = 384) -> None:
    """A catalogued store of n random photos, written through the store API, not sealed."""
    rng = np.random.default_rng(5)
    store = open_store(qdrant_url="", data_dir=data, dim=dim)
    store.upsert([ImageRecord(point_id_for(f"photo {i}".encode()),
                              rng.normal(size=dim).astype(np.float32),
                              {"uri": f"p{i}.jpg", "minor": False, "flag_reasons": [],
                               "descriptions": [], "content_hash": f"h{i}"}) for i in range(n)])
    store.close()


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.skipif(not (DATA / "extra" / "captions.txt").exists(),
                    reason="the customer's data set is not here")
def test_a_cleanly_stopped_server_starts_on_the_seal(tmp_path: Path) -> None:
    data = tmp_path / "data"
    _prefilled(data)
    env = dict(os.environ)
    if Path("/work/cache").is_dir():
        env.setdefault("WITHSENSE_FEATURE_CACHE", "/work/cache")
    done = subprocess.run(
        [sys.executable, "bench_startup.py", "--data-dir", str(data), "--ways", "full,sealed",
         "--searches", "5", "--json"],
        cwd=BENCHMARKS, env=env, capture_output=True, text=True, timeout=1500, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    full, sealed = result["ways"]
    assert "60 images; full: every point, because asked for" in full["verified"]
    assert "60 images; sealed: counts and 60 sampled points" in sealed["verified"]
    for way in (full, sealed):
        assert way["search"]["requests"] == 5 and way["search"]["errors"] == 0
        assert way["idle"]["VmRSS"] > 0 and way["server_cpu_ms"] > 0
    assert result["shares"]["store"]["mode"] == "sealed"  # the sealed server's stop sealed it
    assert result["shares"]["models"]["after"]["VmRSS"] > result["shares"]["models"]["before"]["VmRSS"]
