"""`withsense store verify|snapshot|restore` on a real embedded store."""

from __future__ import annotations

import json

import numpy as np
from withsense.cli.main import main
from withsense.store import ImageRecord, open_store, point_id_for


def _store_cli(capsys, *argv: str) -> tuple[int, dict]:
    code = main(["store", *argv, "--json"])
    out = capsys.readouterr().out
    return code, (json.loads(out) if out.strip() else {})


def test_verify_snapshot_damage_restore(tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("WITHSENSE_QDRANT_URL", raising=False)
    data = tmp_path / "data"
    store = open_store(qdrant_url="", data_dir=data, dim=8)
    rng = np.random.default_rng(1)
    for batch in range(2):  # two writes, so the first is no longer in the write-ahead log
        store.upsert([ImageRecord(point_id_for(f"{batch}-{i}".encode()),
                                  rng.normal(size=8).astype(np.float32),
                                  {"uri": f"{batch}-{i}.jpg", "minor": False, "flag_reasons": [],
                                   "descriptions": [], "content_hash": f"{batch}-{i}"})
                      for i in range(10)])
        store.optimize()
    store.close()
    code, out = _store_cli(capsys, "verify", "--data-dir", str(data))
    assert code == 0 and out["mode"] == "full" and out["full_because"].startswith("the store has no seal")
    assert {k: out[k] for k in ("ok", "images", "missing", "changed", "unknown", "index_problems",
                                "settled")} == {"ok": True, "images": 20, "missing": 0, "changed": 0,
                                                "unknown": 0, "index_problems": [], "settled": 0}
    code, out = _store_cli(capsys, "verify", "--data-dir", str(data))  # sealed by the last one
    assert (code, out["mode"], out["images"], out["sampled"]) == (0, "sealed", 20, 20)
    code, out = _store_cli(capsys, "verify", "--full", "--data-dir", str(data))
    assert (code, out["mode"], out["full_because"]) == (0, "full", "asked for")
    archive = tmp_path / "snap.tar.gz"
    code, out = _store_cli(capsys, "snapshot", str(archive), "--data-dir", str(data))
    assert code == 0 and out["images"] == 20 and archive.exists()

    for tracker in (data / "store").rglob("mutable_id_tracker.mappings"):
        tracker.write_bytes(b"")
    code, out = _store_cli(capsys, "verify", "--data-dir", str(data))
    assert code == 1 and out["missing"] > 0 and "withsense store restore" in out["what_to_do"]

    code, out = _store_cli(capsys, "restore", str(archive), "--data-dir", str(data))
    assert code == 0 and out["ok"] and out["replaced_store_kept_in"]
    assert _store_cli(capsys, "verify", "--data-dir", str(data))[0] == 0
