"""The pipelined IndexImages path through the real gateway and worker: a stream of three chunks
mixing formats (JPEG with EXIF rotation, CMYK, grayscale, PNG with alpha, WebP, a 24 MP JPEG
decoded in draft), a corrupt JPEG and an over-limit photo mid-chunk, the same bytes in two
chunks and one uri given new content in a later chunk. The pipeline (chunks prepared ahead)
must give what one chunk at a time gives: the same reply and the same store."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image
from withsense.gateway.indexing import INDEX_CHUNK
from withsense.v1 import search_pb2 as pb

from tests.helpers import search_stub

pytestmark = pytest.mark.slow


def _photo(seed: int, size: tuple[int, int] = (160, 120), mode: str = "RGB") -> Image.Image:
    """A smooth random photo (distinct per seed) in `mode`."""
    rng = np.random.default_rng(seed)
    small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
    image = Image.fromarray(small).resize(size, Image.Resampling.BICUBIC)
    return image.convert(mode) if mode != "RGB" else image


def _encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, fmt, **options)
    return buffer.getvalue()


def _rotated_jpeg(seed: int) -> bytes:
    """A landscape 2400x1300 JPEG whose EXIF says: show it rotated 90° (orientation 6)."""
    exif = Image.Exif()
    exif[0x0112] = 6
    return _encode(_photo(seed, (2400, 1300)), "JPEG", quality=90, exif=exif)


def _stream() -> list[tuple[str, bytes]]:
    """40 items: 3 chunks of INDEX_CHUNK (16)."""
    assert INDEX_CHUNK == 16
    items = [(f"plain{i}.jpg", _encode(_photo(i), "JPEG", quality=90)) for i in range(40)]
    good = items[7][1]
    special = {
        1: ("rotated.jpg", _rotated_jpeg(100)),
        2: ("cmyk.jpg", _encode(_photo(101, mode="CMYK"), "JPEG")),
        4: ("gray.jpg", _encode(_photo(102, mode="L"), "JPEG")),
        5: ("corrupt.jpg", good[: len(good) // 3]),  # truncated mid-chunk
        6: ("alpha.png", _encode(_photo(103, mode="RGBA"), "PNG")),
        8: ("gray-alpha.png", _encode(_photo(104, mode="LA"), "PNG")),
        9: ("photo.webp", _encode(_photo(105), "WEBP", quality=85)),
        10: ("huge.jpg", _encode(_photo(106, (6000, 4000)), "JPEG", quality=85)),
        11: ("too-many-pixels.png", _encode(Image.new("1", (7200, 7200)), "PNG")),
        12: ("moved.jpg", _encode(_photo(107), "JPEG")),
        20: ("again.jpg", good),  # the bytes of plain7.jpg, in the next chunk
        33: ("moved.jpg", _encode(_photo(108), "JPEG")),  # new content under the uri
    }
    for index, item in special.items():
        items[index] = item
    return items


def _index(gateway, items):
    stub = search_stub(gateway.address)
    return stub.IndexImages(iter([pb.IndexImagesRequest(image=data, uri=uri) for uri, data in items]),
                            timeout=600)


def _store_state(background_loop, gateway, ids):
    store = gateway.engine.store
    payloads = store.get(sorted(set(ids)))
    return {i: {k: v for k, v in p.items() if k != "minor_p"} for i, p in payloads.items()}, \
        {i: p.get("minor_p") for i, p in payloads.items()}, store.count()


def test_pipelined_indexing_matches_one_chunk_at_a_time(start_gateway, background_loop, tmp_path):
    items = _stream()
    replies, states = {}, {}
    for depth in (1, 2):
        gateway = start_gateway(index_pipeline_depth=depth, data_dir=tmp_path / f"depth{depth}")
        replies[depth] = _index(gateway, items)
        states[depth] = _store_state(background_loop, gateway, replies[depth].image_ids)

    reply = replies[2]
    # every item is counted once: the duplicate is "unchanged" (a uri added), two failed
    assert reply.indexed + reply.unchanged + reply.failed == len(items)
    assert (reply.indexed, reply.unchanged, reply.failed) == (37, 1, 2)
    reasons = {f.uri: f.reason for f in reply.failures}
    assert set(reasons) == {"corrupt.jpg", "too-many-pixels.png"}
    assert "truncated" in reasons["corrupt.jpg"]
    assert "pixels" in reasons["too-many-pixels.png"]

    for field in ("indexed", "unchanged", "failed", "flagged"):
        assert getattr(replies[1], field) == getattr(reply, field), field
    assert list(replies[1].image_ids) == list(reply.image_ids)
    assert sorted((f.uri, f.reason) for f in replies[1].failures) == sorted(
        (f.uri, f.reason) for f in reply.failures)
    (payloads_1, minor_1, count_1), (payloads_2, minor_2, count_2) = states[1], states[2]
    assert payloads_1 == payloads_2 and count_1 == count_2
    assert {i: round(p, 4) for i, p in minor_1.items()} == {i: round(p, 4) for i, p in minor_2.items()}

    # the same bytes in two chunks: one photo with both uris; "moved.jpg" names the new photo
    # only, and the old one went with its last uri: 40 items - 2 failed - 1 duplicate - 1 gone
    by_uri = {u: i for i, p in payloads_2.items() for u in p["uris"]}
    assert by_uri["plain7.jpg"] == by_uri["again.jpg"]
    assert count_2 == 36
    moved = payloads_2[by_uri["moved.jpg"]]
    assert moved["uris"] == ["moved.jpg"]


def test_thumbnails_after_draft_decoding_keep_the_exif_rotation(start_gateway, background_loop,
                                                                tmp_path):
    gateway = start_gateway(data_dir=tmp_path / "data", restricted_regions=["DE"])
    items = [("rotated.jpg", _rotated_jpeg(100)), ("cmyk.jpg", _encode(_photo(101, mode="CMYK"), "JPEG"))]
    reply = _index(gateway, items)
    assert (reply.indexed, reply.failed) == (2, 0)
    rotated = background_loop.run(gateway.engine.thumbnail(reply.image_ids[0], "US"))
    with Image.open(io.BytesIO(rotated)) as thumbnail:
        assert thumbnail.format == "WEBP"
        assert thumbnail.size[1] == 256 and thumbnail.size[0] < 256  # portrait, as EXIF says
