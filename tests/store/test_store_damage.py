"""A damaged embedded store is never served in part: it is refused (or found whole).

Every file of a real Qdrant Edge shard is damaged in turn (truncated to zero, truncated by half,
one byte flipped in its data), then the store is opened as the gateway opens it
(`open_catalogued` + `require_intact`). Either that refuses with StoreError, or everything the
store then serves is exactly what was written: every point, payload and vector, and the same
answer from the `minor` filter. The one outcome that fails is a store that opens and serves less
or other than what was written, which is what Qdrant Edge alone does.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import numpy as np
import pytest
from withsense.config.store import StoreSettings
from withsense.store import ImageRecord, StoreDamaged, StoreError, open_store, point_id_for
from withsense.store.catalogue import CATALOGUE_FILE
from withsense.store.verified import open_catalogued

DIM = 8


def _records(n: int) -> list[ImageRecord]:
    rng = np.random.default_rng(7)
    return [ImageRecord(point_id_for(f"photo {i}".encode()), rng.normal(size=DIM).astype(np.float32),
                        {"uri": f"p{i}.jpg", "minor": i % 3 == 0, "flag_reasons": [],
                         "descriptions": [f"photo {i}"], "content_hash": f"h{i}"})
            for i in range(n)]


@pytest.fixture(scope="module")
def written(tmp_path_factory) -> tuple[Path, dict, set[str]]:
    """A data folder written through the gateway's store, closed; and what it must serve."""
    data = tmp_path_factory.mktemp("written")
    records = _records(40)
    store = open_store(qdrant_url="", data_dir=data, dim=DIM)
    store.upsert(records[:30])
    store.optimize()  # as the gateway does after each stream
    store.upsert(records[30:])
    store.delete([records[0].image_id])
    truth = store.inner.points()
    minors = set(store.inner.points(minor=True))
    store.close()
    return data, truth, minors


def _store_files(data: Path) -> list[Path]:
    """One file of each kind in each segment: the same index layout repeats under other field
    names, so one field's files stand for all."""
    seen: dict[str, Path] = {}
    for path in sorted((data / "store").rglob("*")):
        if path.is_file():
            parts = path.relative_to(data / "store").parts
            kind = "/".join([*parts[:2], *(part.split("-", 1)[-1] for part in parts[2:])])
            seen.setdefault(kind, path)
    return list(seen.values())


def _damage(path: Path, how: str) -> None:
    data = bytearray(path.read_bytes())
    if how == "zero":
        data = bytearray()
    elif how == "half":
        data = data[: len(data) // 2]
    else:  # flip a byte that holds data: the middle non-zero byte (or the first of an empty file)
        nonzero = np.flatnonzero(np.frombuffer(bytes(data), dtype=np.uint8)) if data else []
        at = int(nonzero[len(nonzero) // 2]) if len(nonzero) else 0
        if data:
            data[at] ^= 0xFF
        else:
            data = bytearray(b"\xff")
    path.write_bytes(bytes(data))


def _outcome(data: Path, truth: dict, minors: set[str], settings: StoreSettings | None = None) -> str:
    """'refused', 'whole', or what was served wrong."""
    try:
        store = open_catalogued(data, DIM, settings)
    except StoreError:
        return "refused"
    try:
        store.require_intact()
    except StoreError:
        return "refused"
    finally:
        served = _served(store)
        store.close()
    if served == (truth, minors):
        return "whole"
    return f"served {len(served[0])} of {len(truth)} points, or other content, without an error"


def _served(store) -> tuple[dict, set[str]]:
    try:
        return store.inner.points(), set(store.inner.points(minor=True))
    except BaseException as e:  # noqa: BLE001 - a panic here still counts as not serving
        return {"error": repr(e)}, set()


@pytest.mark.parametrize("how", ["zero", "half", "flip"])
def test_every_damaged_file_is_refused_or_harmless(written, tmp_path, how):
    source, truth, minors = written
    files = _store_files(source)
    assert any(f.name == "mutable_id_tracker.mappings" for f in files)
    wrong = {}
    for original in files:
        case = tmp_path / f"case-{len(wrong)}-{original.name}"
        subprocess.run(["cp", "-r", "--sparse=always", str(source), str(case)], check=True)
        _damage(case / original.relative_to(source), how)
        outcome = _outcome(case, truth, minors)
        if outcome not in ("refused", "whole"):
            wrong[str(original.relative_to(source))] = outcome
        subprocess.run(["rm", "-rf", str(case)], check=True)
    assert not wrong, wrong


def _sealed_copy(source: Path, case: Path) -> None:
    """A copy of `source`, verified and closed cleanly (sealed with the copy's own files)."""
    subprocess.run(["cp", "-r", "--sparse=always", str(source), str(case)], check=True)
    store = open_catalogued(case, DIM)
    store.require_intact()
    store.close()


def test_every_file_flipped_in_place_after_a_seal_is_refused_or_harmless(written, tmp_path):
    """The same sweep on a sealed store, each file changed in place with its mtime put back and
    no sample drawn: only the seal stands between the damage and the gateway."""
    source, truth, minors = written
    template = tmp_path / "template"
    _sealed_copy(source, template)  # a clean open and close settle which files exist
    wrong = {}
    for original in _store_files(template):
        case = tmp_path / f"case-{len(wrong)}-{original.name}"
        _sealed_copy(template, case)
        target = case / original.relative_to(template)
        before = target.stat()
        _damage(target, "flip")
        os.utime(target, ns=(before.st_atime_ns, before.st_mtime_ns))
        outcome = _outcome(case, truth, minors, StoreSettings(store_verify_sample=0))
        if outcome not in ("refused", "whole"):
            wrong[str(original.relative_to(template))] = outcome
        subprocess.run(["rm", "-rf", str(case)], check=True)
    assert not wrong, wrong


def test_truncated_id_tracker_is_refused_with_what_to_do(written, tmp_path):
    source, _, _ = written
    case = tmp_path / "case"
    subprocess.run(["cp", "-r", "--sparse=always", str(source), str(case)], check=True)
    tracker = next((case / "store").rglob("mutable_id_tracker.mappings"))
    _damage(tracker, "half")
    store = open_catalogued(case, DIM)
    with pytest.raises(StoreDamaged) as refused:
        store.require_intact()
    store.close()
    message = str(refused.value)
    assert "catalogued images missing" in message and "withsense store restore" in message


def test_a_store_without_its_catalogue_is_refused_until_adopted(written, tmp_path):
    source, truth, _ = written
    case = tmp_path / "case"
    subprocess.run(["cp", "-r", "--sparse=always", str(source), str(case)], check=True)
    (case / CATALOGUE_FILE).unlink()
    store = open_catalogued(case, DIM)
    with pytest.raises(StoreDamaged, match="never catalogued"):
        store.require_intact()
    assert store.verify(adopt=True).ok
    store.close()
    reopened = open_catalogued(case, DIM)
    assert reopened.require_intact().images == len(truth)
    reopened.close()


def test_an_interrupted_write_is_settled_not_refused(written, tmp_path):
    """A crash between the store's write and the catalogue's commit leaves pending rows."""
    source, truth, _ = written
    case = tmp_path / "case"
    subprocess.run(["cp", "-r", "--sparse=always", str(source), str(case)], check=True)
    extra = _records(45)[40:]
    store = open_catalogued(case, DIM)
    store.catalogue.mark_pending([r.image_id for r in extra])  # as upsert does first
    store.inner.upsert(extra[:2])  # the crash came after two were written
    store.close()
    reopened = open_catalogued(case, DIM)
    report = reopened.require_intact()
    assert report.settled == 5 and report.images == len(truth) + 2
    assert reopened.catalogue.entries()[1] == set()
    reopened.close()


def test_snapshot_then_restore_replaces_a_damaged_store(written, tmp_path):
    from withsense.store.snapshots import restore, snapshot

    source, truth, minors = written
    case = tmp_path / "data"
    subprocess.run(["cp", "-r", "--sparse=always", str(source), str(case)], check=True)
    archive = tmp_path / "store.tar.gz"
    assert snapshot(case, DIM, archive).images == len(truth)
    _damage(next((case / "store").rglob("mutable_id_tracker.versions")), "zero")
    assert _outcome(case, truth, minors) == "refused"
    with pytest.raises(StoreDamaged):  # a damaged store is not snapshotted either
        snapshot(case, DIM, tmp_path / "bad.tar.gz")
    assert not (tmp_path / "bad.tar.gz").exists()
    report, aside = restore(case, DIM, archive)
    assert report.ok and aside is not None and (aside / "store").is_dir()
    assert _outcome(case, truth, minors) == "whole"


def test_restore_refuses_what_is_not_a_snapshot(tmp_path):
    from withsense.store.snapshots import restore

    junk = tmp_path / "junk.tar.gz"
    junk.write_bytes(b"not a tar")
    with pytest.raises(StoreError, match="cannot read the snapshot"):
        restore(tmp_path / "data", DIM, junk)
