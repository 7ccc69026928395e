"""An independent record of what the store holds: one SQLite row per image.

Qdrant Edge can lose points silently: truncate a segment's id tracker and the shard still
loads, reports fewer points, and serves them without an error. So the gateway keeps its own
catalogue beside the store (`image_id`, a fingerprint of the point as the engine returned it
after the write) and checks the store against it at start-up (`withsense.store.verify`).

A write is recorded in two steps so that a crash in between is recognised, not mistaken for
damage: the ids are marked *pending* before the store is touched, and made *committed* (with
the fingerprint the engine gives back) or removed after the store has flushed. A pending row
may be found either way at start-up; a committed row must be found exactly.

The fingerprint covers the payload and every vector the engine returns, whatever their names
and kinds, so it does not depend on the store's vector layout. Version 2 (prefixed "2:") hashes
the vectors' float64 bytes: about 100 times faster than version 1 (a JSON text of every float in
hex, 1.7 ms a photo, which made start-up take half an hour at 1M photos) and as exact. Entries of
version 1 are still checked with version 1 (`same_point`) and upgraded once found intact.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from .base import StoreError

CATALOGUE_FILE = "store-catalogue.sqlite"
#: Prefix of a version-2 fingerprint (version 1 has none).
FINGERPRINT_V2 = "2:"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS images (
    image_id TEXT PRIMARY KEY,
    fingerprint TEXT,          -- NULL while pending
    pending INTEGER NOT NULL   -- 1: a write or delete of this id may or may not have happened
);
CREATE TABLE IF NOT EXISTS seal (
    one INTEGER PRIMARY KEY CHECK (one = 0),
    body TEXT NOT NULL         -- withsense.store.seal.Seal as JSON; no row: not sealed
)
"""


def _plain(value: Any) -> Any:
    """JSON-able form of a payload or vector value (dense lists, sparse vectors, nested dicts)."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in sorted(value.items(), key=lambda kv: str(kv[0]))}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if hasattr(value, "indices") and hasattr(value, "values"):  # a sparse vector
        return {"indices": _plain(list(value.indices)), "values": _plain(list(value.values))}
    if isinstance(value, float):
        return value.hex()  # exact, so a single flipped bit changes the fingerprint
    if value is None or isinstance(value, bool | int | str):
        return value
    return repr(value)


def fingerprint_v1(payload: Mapping[str, Any] | None, vectors: Any) -> str:
    """Version 1: sha256 of the payload and vectors as JSON, every float in hex."""
    text = json.dumps([_plain(payload or {}), _plain(vectors)], separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()


def fingerprint(payload: Mapping[str, Any] | None, vectors: Any) -> str:
    """sha256 of the point's payload and vectors exactly as the engine returned them: the
    payload as JSON (floats in hex), each vector's values as float64 bytes, by name."""
    digest = hashlib.sha256(json.dumps(_plain(payload or {}), separators=(",", ":")).encode())
    _hash_vectors(digest, vectors)
    return FINGERPRINT_V2 + digest.hexdigest()


def _hash_vectors(digest: Any, value: Any) -> None:
    if isinstance(value, Mapping):
        for key in sorted(value, key=str):
            digest.update(b"\0name:" + str(key).encode())
            _hash_vectors(digest, value[key])
        return
    if hasattr(value, "indices") and hasattr(value, "values"):  # a sparse vector
        digest.update(b"\0sparse")
        digest.update(np.asarray(list(value.indices), dtype=np.int64).tobytes())
        digest.update(np.asarray(list(value.values), dtype=np.float64).tobytes())
        return
    try:  # a dense vector or the rows of a multivector
        array = np.asarray(value, dtype=np.float64)
    except (TypeError, ValueError):
        array = None
    if array is not None and array.dtype == np.float64 and array.ndim in (1, 2):
        digest.update(b"\0dense" + repr(array.shape).encode())
        digest.update(array.tobytes())
    else:
        digest.update(b"\0json" + json.dumps(_plain(value), separators=(",", ":")).encode())


def same_point(recorded: str, payload: Mapping[str, Any] | None, vectors: Any) -> bool:
    """Whether a catalogued fingerprint (of either version) matches the point."""
    if recorded.startswith(FINGERPRINT_V2):
        return recorded == fingerprint(payload, vectors)
    return recorded == fingerprint_v1(payload, vectors)


class Catalogue:
    """The SQLite catalogue at `path`; safe to call from several threads."""

    def __init__(self, path: Path | str) -> None:
        self.path = Path(path)
        self.existed = self.path.exists()
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.executescript(_SCHEMA)
        except sqlite3.Error as e:
            raise StoreError(f"cannot open the store catalogue {self.path}: {e}") from e

    def _write(self, sql: str, rows: Iterable[tuple[Any, ...]]) -> None:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.executemany(sql, rows)
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreError(f"cannot write the store catalogue {self.path}: {e}") from e

    def mark_pending(self, image_ids: Iterable[str]) -> None:
        """Before a write or delete: these ids may change in the store."""
        self._write(
            "INSERT INTO images (image_id, fingerprint, pending) VALUES (?, NULL, 1) "
            "ON CONFLICT(image_id) DO UPDATE SET pending = 1",
            ((i,) for i in image_ids),
        )

    def commit(self, fingerprints: Mapping[str, str]) -> None:
        """After a write: the store now holds these points exactly so."""
        self._write(
            "INSERT INTO images (image_id, fingerprint, pending) VALUES (?, ?, 0) "
            "ON CONFLICT(image_id) DO UPDATE SET fingerprint = excluded.fingerprint, pending = 0",
            fingerprints.items(),
        )

    def remove(self, image_ids: Iterable[str]) -> None:
        """After a delete: the store no longer holds these ids."""
        self._write("DELETE FROM images WHERE image_id = ?", ((i,) for i in image_ids))

    def replace_all(self, fingerprints: Mapping[str, str]) -> None:
        """Adopts a store as it is (after a restore or `withsense store verify --adopt`)."""
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                self._db.execute("DELETE FROM images")
                self._db.executemany("INSERT INTO images VALUES (?, ?, 0)", fingerprints.items())
                self._db.execute("COMMIT")
            except sqlite3.Error as e:
                if self._db.in_transaction:
                    self._db.execute("ROLLBACK")
                raise StoreError(f"cannot write the store catalogue {self.path}: {e}") from e

    def entries(self) -> tuple[dict[str, str], set[str]]:
        """(committed id -> fingerprint, pending ids)."""
        rows = self._read("SELECT image_id, fingerprint, pending FROM images")
        committed = {i: f for i, f, p in rows if not p}
        return committed, {i for i, _, p in rows if p}

    def counts(self) -> tuple[int, int]:
        """(committed ids, pending ids), counted by SQLite (no rows read into Python)."""
        row = self._read("SELECT COALESCE(SUM(pending = 0), 0), COALESCE(SUM(pending), 0) FROM images")
        return int(row[0][0]), int(row[0][1])

    def sample(self, k: int, rng: np.random.Generator) -> dict[str, str]:
        """Up to `k` committed entries (id -> fingerprint) drawn uniformly at random: by rowid
        (no scan of the table), or by a scan when deletes left too many gaps."""
        top = int(self._read("SELECT COALESCE(MAX(rowid), 0) FROM images")[0][0])
        if top <= k:
            return dict(self._read("SELECT image_id, fingerprint FROM images WHERE pending = 0"))
        found = self._sample_rowids(k, top, rng)
        if len(found) >= k // 2:
            return found
        return dict(self._read("SELECT image_id, fingerprint FROM images WHERE pending = 0 "
                               "ORDER BY random() LIMIT ?", (k,)))

    def _sample_rowids(self, k: int, top: int, rng: np.random.Generator) -> dict[str, str]:
        rows = (rng.choice(top, size=k, replace=False) + 1).tolist()
        out: dict[str, str] = {}
        for start in range(0, len(rows), 500):  # SQLite's limit on bound parameters
            chunk = rows[start:start + 500]
            out.update(self._read(
                f"SELECT image_id, fingerprint FROM images WHERE pending = 0 AND rowid IN "
                f"({','.join('?' * len(chunk))})", chunk))
        return out

    def seal(self, body: str) -> None:
        """Records the seal of a verified store at a clean close."""
        self._write("INSERT OR REPLACE INTO seal (one, body) VALUES (0, ?)", [(body,)])

    def take_seal(self) -> str | None:
        """The seal, removed: an open store is unsealed until it is closed cleanly again."""
        rows = self._read("SELECT body FROM seal")
        if rows:
            self._write("DELETE FROM seal", [()])
        return str(rows[0][0]) if rows else None

    def _read(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        with self._lock:
            try:
                return self._db.execute(sql, params).fetchall()
            except sqlite3.Error as e:
                raise StoreError(f"cannot read the store catalogue {self.path}: {e}") from e

    def close(self) -> None:
        with self._lock:
            self._db.close()
