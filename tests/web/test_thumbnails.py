"""Thumbnails: 256 px WebP from any photo the worker accepts, in a content-addressed folder."""

from __future__ import annotations

import hashlib
import io

import pytest
from PIL import Image
from withsense.thumbnails import THUMBNAIL_PX, FileThumbnailStore, make_thumbnail


def _photo(size: tuple[int, int], mode: str = "RGB", fmt: str = "JPEG", exif_rotation: int = 0) -> bytes:
    image = Image.new(mode, size, (200, 30, 30) if mode == "RGB" else (200, 30, 30, 128))
    buffer = io.BytesIO()
    if exif_rotation:
        exif = Image.Exif()
        exif[0x0112] = exif_rotation  # Orientation
        image.save(buffer, format=fmt, exif=exif)
    else:
        image.save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize(("size", "mode", "fmt", "expected"), [
    ((1024, 512), "RGB", "JPEG", (256, 128)),
    ((300, 900), "RGBA", "PNG", (85, 256)),
    ((100, 60), "RGB", "WEBP", (100, 60)),  # never enlarged
])
def test_thumbnail_fits_256_px_as_webp(size, mode, fmt, expected):
    thumbnail = Image.open(io.BytesIO(make_thumbnail(_photo(size, mode, fmt))))
    assert thumbnail.format == "WEBP" and thumbnail.size == expected
    assert max(thumbnail.size) <= THUMBNAIL_PX


def test_thumbnail_applies_the_exif_rotation():
    rotated = Image.open(io.BytesIO(make_thumbnail(_photo((400, 200), exif_rotation=6))))
    assert rotated.size == (128, 256)


@pytest.mark.parametrize("data", [b"", b"not a photo", _photo((64, 64))[:100]])
def test_undecodable_bytes_are_a_value_error(data):
    with pytest.raises(ValueError, match="thumbnail"):
        make_thumbnail(data)


def test_file_store_is_content_addressed_and_atomic(tmp_path):
    store = FileThumbnailStore(tmp_path / "thumbnails")
    key = hashlib.sha256(b"original photo").hexdigest()
    assert store.get(key) is None and not store.has(key)
    store.put(key, b"webp bytes")
    assert store.get(key) == b"webp bytes" and store.has(key)
    assert (tmp_path / "thumbnails" / key[:2] / key[2:4] / f"{key}.webp").is_file()
    assert not [p for p in tmp_path.rglob(".tmp-*")]  # no temporary file left behind
    store.delete(key)
    store.delete(key)  # deleting twice is fine
    assert store.get(key) is None


@pytest.mark.parametrize("key", ["../../etc/passwd", "abc", "G" * 64, ""])
def test_file_store_refuses_keys_that_are_not_digests(tmp_path, key):
    store = FileThumbnailStore(tmp_path)
    with pytest.raises(ValueError, match="SHA-256"):
        store.get(key)
