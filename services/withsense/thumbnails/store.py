"""Where thumbnails live: a small interface, and a content-addressed folder that implements it.

A thumbnail is stored under the SHA-256 of the original photo's bytes (the `content_hash` the
gateway already records with each photo), so the same photo indexed twice is stored once and a
key never names two different photos. To keep thumbnails in object storage instead (S3, GCS,
Azure Blob), implement `ThumbnailStore` over the bucket with the same keys, e.g. as objects
`thumbnails/ab/cd/<key>.webp`, and return it from `open_thumbnail_store`. Several gateway
replicas must share one store: the folder below suits one gateway, or a volume all of them mount.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Protocol

_KEY = re.compile(r"^[0-9a-f]{64}$")


class ThumbnailStore(Protocol):
    """Bytes by key; keys are lowercase hex SHA-256 digests of the original photo."""

    def put(self, key: str, data: bytes) -> None: ...

    def get(self, key: str) -> bytes | None: ...

    def has(self, key: str) -> bool: ...

    def delete(self, key: str) -> None: ...


def _check_key(key: str) -> str:
    if not _KEY.match(key):
        raise ValueError(f"thumbnail key {key!r} is not a SHA-256 hex digest")
    return key


class FileThumbnailStore:
    """`root/ab/cd/<key>.webp`; writes are atomic (a reader never sees half a file)."""

    def __init__(self, root: Path) -> None:
        self.root = Path(root)

    def _path(self, key: str) -> Path:
        _check_key(key)
        return self.root / key[:2] / key[2:4] / f"{key}.webp"

    def put(self, key: str, data: bytes) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=".tmp-")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
            os.replace(temporary, path)
        except BaseException:
            Path(temporary).unlink(missing_ok=True)
            raise

    def get(self, key: str) -> bytes | None:
        try:
            return self._path(key).read_bytes()
        except FileNotFoundError:
            return None

    def has(self, key: str) -> bool:
        return self._path(key).is_file()

    def delete(self, key: str) -> None:
        self._path(key).unlink(missing_ok=True)


def open_thumbnail_store(data_dir: Path) -> ThumbnailStore:
    """The deployment's thumbnail store: today a folder `thumbnails/` in the data folder."""
    return FileThumbnailStore(Path(data_dir) / "thumbnails")
