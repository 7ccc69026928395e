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


def _smooth_photo(size: tuple[int, int], mode: str = "RGB", exif_rotation: int = 0) -> bytes:
    """A large JPEG with some detail (so that decoding at another scale could show)."""
    import numpy as np

    rng = np.random.default_rng(7)
    image = Image.fromarray(rng.integers(0, 256, (6, 8, 3), dtype=np.uint8)).resize(size, Image.BICUBIC)
    buffer = io.BytesIO()
    exif = Image.Exif()
    if exif_rotation:
        exif[0x0112] = exif_rotation
    image.convert(mode).save(buffer, format="JPEG", quality=92, exif=exif)
    return buffer.getvalue()


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
@pytest.mark.parametrize("rotation", [0, 6])
def test_large_jpegs_decoded_in_draft_give_the_full_decodes_thumbnail(mode, rotation):
    """A 2400 x 1200 JPEG is decoded at 1/2 scale (sides >= 512): same size and orientation as
    the full decode's thumbnail, pixels within a few levels."""
    import numpy as np
    from PIL import ImageOps

    data = _smooth_photo((2400, 1200), mode, rotation)
    with Image.open(io.BytesIO(data)) as full:  # the reference: full decode, then the same steps
        reference = ImageOps.exif_transpose(full).convert("RGB")
        reference.thumbnail((THUMBNAIL_PX, THUMBNAIL_PX), Image.Resampling.LANCZOS)
    thumbnail = Image.open(io.BytesIO(make_thumbnail(data)))
    assert thumbnail.size == reference.size == ((128, 256) if rotation == 6 else (256, 128))
    difference = np.abs(np.asarray(thumbnail.convert("RGB"), dtype=np.float32)
                        - np.asarray(reference, dtype=np.float32))
    assert difference.mean() < 4, difference.mean()  # WebP at quality 80 alone moves ~2 levels
