"""Snapshots of the embedded store: `withsense store snapshot` and `withsense store restore`.

Qdrant Edge can unpack a server's snapshot but cannot make one, so a snapshot of the embedded
store is a tar.gz of the shard folder and its catalogue, taken while no gateway holds the store
(the engine locks its folder), and only of a store that passes verification. A restore unpacks
into a new folder beside the data folder, verifies it there, and only then swaps it in; the
replaced store is kept aside, never deleted.

A Qdrant server has real snapshots: `server_snapshot` and `server_restore` use them.
"""

from __future__ import annotations

import shutil
import tarfile
import time
from pathlib import Path

from .base import StoreError
from .catalogue import CATALOGUE_FILE
from .verified import VerifyReport, open_catalogued

STORE_FOLDER = "store"


def snapshot(data_dir: Path, dim: int, out_file: Path) -> VerifyReport:
    """Verifies the embedded store in `data_dir` and writes it to `out_file` (tar.gz)."""
    data_dir, out_file = Path(data_dir), Path(out_file)
    store = open_catalogued(data_dir, dim)
    try:
        report = store.require_intact()
        store.inner.optimize()  # flushes; the folder is quiet while we hold its lock
        partial = out_file.with_name(out_file.name + ".partial")
        try:
            with tarfile.open(partial, "w:gz") as tar:
                tar.add(data_dir / STORE_FOLDER, arcname=STORE_FOLDER)
                tar.add(data_dir / CATALOGUE_FILE, arcname=CATALOGUE_FILE)
            partial.replace(out_file)
        except OSError as e:
            partial.unlink(missing_ok=True)
            raise StoreError(f"cannot write the snapshot {out_file}: {e.strerror or e}") from e
    finally:
        store.close()
    return report


def restore(data_dir: Path, dim: int, snapshot_file: Path) -> tuple[VerifyReport, Path | None]:
    """Replaces the embedded store in `data_dir` by a verified snapshot; returns the report and
    where the replaced store was moved (None when there was none)."""
    data_dir, snapshot_file = Path(data_dir), Path(snapshot_file)
    staging = data_dir.with_name(f"{data_dir.name}.restoring")
    shutil.rmtree(staging, ignore_errors=True)
    try:
        _unpack(snapshot_file, staging)
        restored = open_catalogued(staging, dim)
        try:
            report = restored.require_intact()
        finally:
            restored.close()
        aside = _swap_in(staging, data_dir)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return report, aside


def _unpack(snapshot_file: Path, target: Path) -> None:
    try:
        with tarfile.open(snapshot_file, "r:gz") as tar:
            names = {m.name.split("/", 1)[0] for m in tar.getmembers()}
            if not {STORE_FOLDER, CATALOGUE_FILE} <= names:
                raise StoreError(f"{snapshot_file} is not a With Sense store snapshot "
                                 f"(it lacks {STORE_FOLDER}/ or {CATALOGUE_FILE})")
            tar.extractall(target, filter="data")
    except (OSError, tarfile.TarError) as e:
        raise StoreError(f"cannot read the snapshot {snapshot_file}: {e}") from e


def _swap_in(staging: Path, data_dir: Path) -> Path | None:
    """Moves the current store and catalogue aside (kept, never deleted), the restored in."""
    data_dir.mkdir(parents=True, exist_ok=True)
    present = [n for n in (STORE_FOLDER, CATALOGUE_FILE) if (data_dir / n).exists()]
    aside = data_dir / f"replaced-{time.strftime('%Y%m%d-%H%M%S')}" if present else None
    if aside is not None:
        aside.mkdir()
        for name in present:
            (data_dir / name).replace(aside / name)
    for name in (STORE_FOLDER, CATALOGUE_FILE):
        (staging / name).replace(data_dir / name)
    return aside


def server_snapshot(url: str, collection: str, api_key: str = "") -> str:
    """Asks a Qdrant server for a snapshot of the collection; returns its name on the server."""
    from qdrant_client import QdrantClient

    try:
        described = QdrantClient(url=url, api_key=api_key or None).create_snapshot(collection, wait=True)
    except Exception as e:
        raise StoreError(f"Qdrant at {url} could not snapshot {collection}: {e}") from e
    if described is None:
        raise StoreError(f"Qdrant at {url} did not report the snapshot of {collection}")
    return described.name


def server_restore(url: str, collection: str, location: str, api_key: str = "") -> None:
    """Recovers the collection on a Qdrant server from a snapshot URL or server-side path."""
    from qdrant_client import QdrantClient

    try:
        QdrantClient(url=url, api_key=api_key or None).recover_snapshot(collection, location, wait=True)
    except Exception as e:
        raise StoreError(f"Qdrant at {url} could not restore {collection} from {location}: {e}") from e
