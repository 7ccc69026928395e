"""Catalogue fingerprints: version 2 (float64 bytes) is as exact as version 1 (hex JSON), and a
catalogue written with version 1 still verifies, then is upgraded."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import numpy as np
from store_testdata import DIM, Dataset
from withsense.store import open_store
from withsense.store.catalogue import (
    CATALOGUE_FILE,
    FINGERPRINT_V2,
    fingerprint,
    fingerprint_v1,
    same_point,
)

PAYLOAD = {"uri": "a.jpg", "minor": False, "flag_reasons": [], "descriptions": [], "content_hash": "x"}


def test_a_flipped_bit_changes_the_fingerprint() -> None:
    vector = np.random.default_rng(0).random(DIM).astype(np.float32).tolist()
    recorded = fingerprint(PAYLOAD, {"image": vector})
    assert recorded.startswith(FINGERPRINT_V2)
    assert same_point(recorded, PAYLOAD, {"image": list(vector)})
    flipped = list(vector)
    flipped[3] = float(np.nextafter(np.float32(flipped[3]), np.float32(2)))
    assert not same_point(recorded, PAYLOAD, {"image": flipped})
    assert not same_point(recorded, {**PAYLOAD, "minor": True}, {"image": vector})
    assert not same_point(recorded, PAYLOAD, {"image": vector, "descriptions": [vector]})
    assert same_point(fingerprint_v1(PAYLOAD, {"image": vector}), PAYLOAD, {"image": vector})


def test_a_version_1_catalogue_verifies_and_is_upgraded(tmp_path: Path, dataset: Dataset) -> None:
    store = open_store(qdrant_url="", data_dir=tmp_path, dim=DIM)
    store.upsert(dataset.records[:40])
    points = store.inner.points()
    store.close()
    with sqlite3.connect(tmp_path / CATALOGUE_FILE) as db:  # as an older With Sense wrote it
        db.executemany("UPDATE images SET fingerprint = ? WHERE image_id = ?",
                       [(fingerprint_v1(p, v), i) for i, (p, v) in points.items()])
    store = open_store(qdrant_url="", data_dir=tmp_path, dim=DIM)
    try:
        assert store.require_intact().images == 40
        committed, pending = store.catalogue.entries()
        assert not pending and all(f.startswith(FINGERPRINT_V2) for f in committed.values())
        assert store.verify().ok
    finally:
        store.close()
