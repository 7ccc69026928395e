"""The seal: what the engine's files looked like when a verified store was last closed cleanly.

A full verification reads every point (at 1M photos: 200 s, and 3 GB of memory-mapped vectors
faulted into the process). Most start-ups follow a clean stop of a store that was verified
and then written only through its catalogue, so `CataloguedStore.close()` records a seal in
the catalogue: the engine's version, the fingerprint version, the counts of points and of
`minor` photos, and for every file under the shard folder its size, mtime, ctime and inode.

At the next open, before the engine touches its files (loading rewrites some of them), the
seal is compared with the files and removed: while the store is open it is unsealed, so a crash
or a kill leaves no seal and the next start-up verifies every point again.

What a matching seal proves: no file was written, truncated, replaced, copied in or renamed
since the clean close. Any write through the file system sets the ctime to the current time,
and neither `touch` nor `utime` can set it back; a copy or restore gives new inodes. What it
cannot see: a change below the file system (bit rot on the medium, a raw write to the block
device) that leaves the metadata alone. The quick check therefore also fingerprints a random
sample of points against the catalogue, and `withsense store verify --full` reads them all.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any

from .catalogue import FINGERPRINT_V2

#: The installed engine: a new version may read the same files differently.
ENGINE = "qdrant-edge-py " + metadata.version("qdrant-edge-py")


def file_states(folder: Path) -> dict[str, list[int]]:
    """Every regular file under `folder` (relative path) -> [size, mtime_ns, ctime_ns, inode]."""
    states: dict[str, list[int]] = {}
    for root, _dirs, files in os.walk(folder):
        for name in files:
            path = Path(root) / name
            try:
                st = path.stat()
            except OSError:
                continue  # vanished while we looked: it cannot match a recorded file either
            states[str(path.relative_to(folder))] = [st.st_size, st.st_mtime_ns, st.st_ctime_ns,
                                                     st.st_ino]
    return states


@dataclass(frozen=True)
class Seal:
    """The state of a verified store at a clean close."""

    points: int
    minors: int
    files: dict[str, list[int]]
    engine: str = ENGINE
    fingerprint: str = FINGERPRINT_V2

    @classmethod
    def take(cls, folder: Path, points: int, minors: int) -> Seal:
        return cls(points=points, minors=minors, files=file_states(folder))

    def to_json(self) -> str:
        return json.dumps({"points": self.points, "minors": self.minors, "files": self.files,
                           "engine": self.engine, "fingerprint": self.fingerprint})

    @classmethod
    def from_json(cls, text: str) -> Seal | None:
        """The seal in `text`, or None when it is not a readable seal."""
        try:
            data: dict[str, Any] = json.loads(text)
            return cls(points=int(data["points"]), minors=int(data["minors"]),
                       files={str(k): [int(x) for x in v] for k, v in data["files"].items()},
                       engine=str(data["engine"]), fingerprint=str(data["fingerprint"]))
        except (ValueError, TypeError, KeyError, AttributeError):
            return None

    def broken_by(self, folder: Path) -> str | None:
        """Why the store in `folder` no longer matches this seal (None: it matches)."""
        if self.engine != ENGINE:
            return f"the engine changed ({self.engine} -> {ENGINE})"
        if self.fingerprint != FINGERPRINT_V2:
            return "the catalogue's fingerprints are of another version"
        now = file_states(folder)
        changed = sorted((set(now) ^ set(self.files)) | {f for f in now if now[f] != self.files.get(f)})
        if changed:
            return f"{len(changed)} of the store's files changed since it was sealed (e.g. {changed[0]})"
        return None
