"""The seal: a store closed cleanly after a verification is checked by counts and a sample at
its next open, and anything that touched it since is verified point by point again.

Each test fails if the start-up check is skipped (a damaged store would then be served) or
fooled (a damaged file with its mtime put back, a changed point the seal cannot see, a store
left open by a crash).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from withsense.config.store import StoreSettings
from withsense.store import ImageRecord, StoreDamaged, open_store, point_id_for
from withsense.store.catalogue import CATALOGUE_FILE
from withsense.store.verified import open_catalogued

DIM = 8
N = 40
SAMPLE = StoreSettings(store_verify_sample=5)
SEAL_ONLY = StoreSettings(store_verify_sample=0)  # no sample: only the seal can catch it


def _records(n: int, salt: str = "") -> list[ImageRecord]:
    rng = np.random.default_rng(11)
    return [ImageRecord(point_id_for(f"{salt}photo {i}".encode()), rng.normal(size=DIM).astype(np.float32),
                        {"uri": f"{salt}p{i}.jpg", "minor": i % 3 == 0, "flag_reasons": [],
                         "descriptions": [], "content_hash": f"{salt}h{i}"})
            for i in range(n)]


@pytest.fixture
def sealed(tmp_path: Path) -> Path:
    """A data folder with N photos, verified and closed cleanly (so sealed)."""
    data = tmp_path / "data"
    store = open_store(qdrant_url="", data_dir=data, dim=DIM)
    store.upsert(_records(N)[:30])
    store.optimize()
    store.upsert(_records(N)[30:])
    assert store.require_intact().mode == "full"  # no seal yet
    store.close()
    return data


def _check(data: Path, settings: StoreSettings = SAMPLE):
    """The report of the gateway's start-up check, or the StoreDamaged it raised."""
    store = open_catalogued(data, DIM, settings)
    try:
        return store.require_intact()
    except StoreDamaged as e:
        return e
    finally:
        store.close()


def _vector_file(data: Path) -> Path:
    return max((p for p in (data / "store").rglob("*") if p.is_file() and "vector_storage-image" in str(p)),
               key=lambda p: p.stat().st_size)


def _flip_keeping_mtime(path: Path) -> None:
    """Flips a data byte in place, then puts the file's atime and mtime back as they were."""
    before = path.stat()
    data = bytearray(path.read_bytes())
    nonzero = np.flatnonzero(np.frombuffer(bytes(data), dtype=np.uint8))
    data[int(nonzero[len(nonzero) // 2])] ^= 0xFF
    path.write_bytes(bytes(data))
    os.utime(path, ns=(before.st_atime_ns, before.st_mtime_ns))
    assert path.stat().st_mtime_ns == before.st_mtime_ns and path.stat().st_size == before.st_size


def test_a_sealed_store_is_checked_by_a_sample_not_read_whole(sealed):
    report = _check(sealed)
    assert (report.ok, report.mode, report.images, report.sampled) == (True, "sealed", N, 5)
    assert report.seed is not None
    again = _check(sealed)  # the sealed check's close sealed it again
    assert again.mode == "sealed"
    full = _check(sealed, StoreSettings(store_verify_full=True))
    assert (full.ok, full.mode, full.full_because) == (True, "full", "asked for")


def test_a_file_changed_in_place_with_its_mtime_put_back_is_refused(sealed):
    _flip_keeping_mtime(_vector_file(sealed))
    refused = _check(sealed, SEAL_ONLY)
    assert isinstance(refused, StoreDamaged) and "images changed" in str(refused)


def test_a_truncated_id_tracker_is_refused_after_a_seal(sealed):
    for tracker in (sealed / "store").rglob("*id_tracker.mappings"):
        tracker.write_bytes(tracker.read_bytes()[: tracker.stat().st_size // 2])
    refused = _check(sealed, SEAL_ONLY)
    assert isinstance(refused, StoreDamaged)


def test_a_change_the_seal_cannot_see_is_caught_by_the_sample(sealed):
    """A point whose content no longer matches the catalogue, with every file untouched (as
    bit rot below the file system would leave it): the sample covers it, so the full check
    runs and refuses the store."""
    store = open_store(qdrant_url="", data_dir=sealed, dim=DIM)
    victim = store.catalogue.sample(1, np.random.default_rng(0))
    store.close()
    with sqlite3.connect(sealed / CATALOGUE_FILE) as db:
        db.execute("UPDATE images SET fingerprint = '2:0' WHERE image_id = ?", list(victim))
    refused = _check(sealed, StoreSettings(store_verify_sample=N))
    assert isinstance(refused, StoreDamaged) and "1 images changed" in str(refused)


def test_counts_that_disagree_with_the_seal_mean_the_full_check(sealed):
    with sqlite3.connect(sealed / CATALOGUE_FILE) as db:
        db.execute("DELETE FROM images WHERE rowid = (SELECT MAX(rowid) FROM images)")
    refused = _check(sealed)
    assert isinstance(refused, StoreDamaged) and "never catalogued" in str(refused)


def test_a_seal_of_another_engine_version_means_the_full_check(sealed):
    with sqlite3.connect(sealed / CATALOGUE_FILE) as db:
        db.execute("UPDATE seal SET body = json_set(body, '$.engine', 'qdrant-edge-py 0.0.1')")
    report = _check(sealed)
    assert report.ok and report.mode == "full" and "engine changed" in report.full_because


def test_a_store_left_open_by_a_crash_is_read_whole(sealed):
    crash = ("import os, sys; from withsense.store.verified import open_catalogued; "
             "s = open_catalogued(sys.argv[1], 8); s.require_intact(); os._exit(9)")
    done = subprocess.run([sys.executable, "-c", crash, str(sealed)], env=os.environ.copy())
    assert done.returncode == 9
    report = _check(sealed)
    assert report.ok and report.mode == "full" and "no seal" in report.full_because


def test_no_seal_without_a_verification_or_with_a_write_pending(sealed):
    store = open_catalogued(sealed, DIM, SAMPLE)  # opened (seal taken) but never verified
    store.upsert(_records(3, salt="new "))
    store.close()
    report = _check(sealed)
    assert report.ok and report.mode == "full" and report.images == N + 3
    store = open_catalogued(sealed, DIM, SAMPLE)
    store.require_intact()
    store.catalogue.mark_pending([_records(1, salt="gone ")[0].image_id])  # a crash mid-write
    store.close()
    report = _check(sealed)
    assert report.ok and report.mode == "full" and report.settled == 1


def test_writes_after_a_sealed_check_are_sealed_with_it(sealed):
    store = open_catalogued(sealed, DIM, SAMPLE)
    assert store.require_intact().mode == "sealed"
    extra = _records(4, salt="more ")
    store.upsert(extra)
    store.delete([extra[0].image_id])
    store.close()
    report = _check(sealed, StoreSettings(store_verify_sample=N + 10))
    assert (report.ok, report.mode, report.images, report.sampled) == (True, "sealed", N + 3, N + 3)


def test_after_a_full_check_the_reopened_engine_serves(sealed):
    store = open_catalogued(sealed, DIM, StoreSettings(store_verify_full=True))
    first = store.inner
    first.hnsw_ef = 77
    assert store.require_intact().mode == "full"
    assert store.inner is not first and store.inner.hnsw_ef == 77
    record = _records(N)[5]
    hits = store.search(record.vector, 1, exclude_minor=False)
    assert hits[0].image_id == record.image_id
    store.close()
