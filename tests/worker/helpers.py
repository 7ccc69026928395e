"""Helpers of the worker tests (plain functions; fixtures live in conftest.py)."""

from __future__ import annotations

import io
import struct
import zlib

import grpc
import numpy as np
from PIL import Image

# scikit-image's photos that the zero-shot model ranks right, with a query for each.
PHOTO_QUERIES = {
    "chelsea": "a cat",
    "coffee": "a cup of coffee",
    "rocket": "a rocket",
}
# Distractors in the same gallery.
OTHER_PHOTOS = ("astronaut", "camera", "hubble_deep_field")


def jpeg_bytes(image: Image.Image | np.ndarray, quality: int = 90) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.convert("RGB").save(buffer, "JPEG", quality=quality)
    return buffer.getvalue()


def vectors_of(response) -> np.ndarray:
    return np.array([list(vector.values) for vector in response.vectors], dtype=np.float32)


def png_bomb(width: int, height: int) -> bytes:
    """A valid 1-bit grayscale PNG of width x height black pixels, written chunk by chunk, so a
    10000 x 10000 image (100 megapixels) is ~12 KB and costs nothing to build."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        body = kind + payload
        return struct.pack(">I", len(payload)) + body + struct.pack(">I", zlib.crc32(body))

    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte + packed bits
    compressor = zlib.compressobj(9)
    data = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    header = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", data) + chunk(b"IEND", b"")


async def rpc_error(call) -> grpc.aio.AioRpcError:
    """Awaits a call that must fail; returns its error."""
    try:
        await call
    except grpc.aio.AioRpcError as error:
        return error
    raise AssertionError("the call succeeded but should have failed")
