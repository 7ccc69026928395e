"""A folder of photos as IndexImages requests: one request per photo, uri = its relative path.

An unreadable file is reported as a failure and skipped, never fatal; the gateway reports the
photos it cannot decode the same way.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

from withsense.v1 import search_pb2 as pb

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


def find_photos(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def folder_requests(folder: Path, photos: list[Path], descriptions: dict[str, list[str]],
                    failures: list[tuple[str, str]],
                    progress: Callable[[int], None] | None = None) -> Iterator[pb.IndexImagesRequest]:
    """Requests for `photos` under `folder`, each with its descriptions (matched by the path
    relative to the folder, or by file name); read errors go to `failures`."""
    folder = Path(folder)
    for path in photos:
        uri = path.relative_to(folder).as_posix()
        try:
            data = path.read_bytes()
        except OSError as exc:
            failures.append((uri, f"cannot read: {exc.strerror}"))
            continue
        finally:
            if progress:
                progress(1)
        texts = descriptions.get(uri) or descriptions.get(path.name) or []
        yield pb.IndexImagesRequest(image=data, uri=uri, descriptions=texts)
