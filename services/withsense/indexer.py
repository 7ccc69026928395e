"""Indexing a folder of photos through the gateway's IndexImages stream.

Idempotent and resumable: point ids derive from the photo's content, the gateway skips photos it
already holds unchanged, and it commits every few photos, so a rerun after an interruption only
embeds what is missing. An unreadable or corrupt file is reported and skipped, never fatal.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from pathlib import Path

from withsense.v1 import search_pb2 as pb
from withsense.v1 import search_pb2_grpc as pb_grpc

IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp"}


@dataclass
class IndexReport:
    indexed: int = 0
    unchanged: int = 0
    flagged: int = 0
    failures: list[tuple[str, str]] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {"indexed": self.indexed, "unchanged": self.unchanged, "flagged": self.flagged,
                "failed": len(self.failures),
                "failures": [{"uri": u, "reason": r} for u, r in self.failures]}


def find_photos(folder: Path) -> list[Path]:
    folder = Path(folder)
    if not folder.is_dir():
        raise FileNotFoundError(f"{folder} is not a folder")
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


async def index_folder(
    stub: pb_grpc.SearchServiceStub, folder: Path, descriptions: dict[str, list[str]] | None = None,
    *, metadata: tuple = (), timeout_s: float = 3600.0,
    progress: Callable[[int], None] | None = None, photos: list[Path] | None = None,
) -> IndexReport:
    """Streams every photo under `folder` (or the given `photos` found in it) with its
    descriptions (matched by file name or by the path relative to the folder); `progress(n)` is
    called as photos are sent."""
    folder = Path(folder)
    photos = find_photos(folder) if photos is None else photos
    descriptions = descriptions or {}
    report = IndexReport()

    async def requests() -> AsyncIterator[pb.IndexImagesRequest]:
        for path in photos:
            uri = path.relative_to(folder).as_posix()
            try:
                data = path.read_bytes()
            except OSError as exc:
                report.failures.append((uri, f"cannot read: {exc.strerror}"))
                continue
            finally:
                if progress:
                    progress(1)
            texts = descriptions.get(uri) or descriptions.get(path.name) or []
            yield pb.IndexImagesRequest(image=data, uri=uri, descriptions=texts)

    reply = await stub.IndexImages(requests(), metadata=metadata, timeout=timeout_s)
    report.indexed, report.unchanged, report.flagged = reply.indexed, reply.unchanged, reply.flagged
    report.failures += [(f.uri, f.reason) for f in reply.failures]
    return report
