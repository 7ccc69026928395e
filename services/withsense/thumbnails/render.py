"""Making a thumbnail: the photo scaled to fit 256 x 256 px, as WebP."""

from __future__ import annotations

import io

from PIL import Image, ImageOps

THUMBNAIL_PX = 256
THUMBNAIL_MEDIA_TYPE = "image/webp"
# WebP quality 80: the demo gallery's 256 px thumbnails average 9 KB, light enough for a phone.
WEBP_QUALITY = 80
# Encoder effort 2, not Pillow's default 4: half the encoding time (2.75 against 5.74 ms a
# thumbnail) for 2% more bytes and 0.2 dB PSNR (benchmarks/bench_thumbnails.py).
WEBP_METHOD = 2
# A JPEG is decoded at the DCT scale (1/2, 1/4, 1/8) that keeps both sides at least this many
# times the thumbnail's: Pillow's own `thumbnail()` rule (reducing_gap 2), which the EXIF
# rotation (it decodes the photo) would otherwise defeat. A 24 MP photo decodes ~6x faster.
_DRAFT_GAP = 2


def make_thumbnail(image: bytes, size: int = THUMBNAIL_PX) -> bytes:
    """WebP bytes of `image` (JPEG, PNG or WebP) scaled to fit size x size, EXIF rotation applied.

    Raises ValueError when the bytes are not a photo Pillow can decode.
    """
    try:
        with Image.open(io.BytesIO(image)) as opened:
            if opened.format == "JPEG":
                opened.draft(None, (_DRAFT_GAP * size, _DRAFT_GAP * size))
            upright = ImageOps.exif_transpose(opened)
            photo = upright.convert("RGBA" if upright.mode in ("RGBA", "LA", "PA") else "RGB")
            photo.thumbnail((size, size), Image.Resampling.LANCZOS)
            buffer = io.BytesIO()
            photo.save(buffer, format="WEBP", quality=WEBP_QUALITY, method=WEBP_METHOD)
    except (OSError, Image.DecompressionBombError, SyntaxError) as exc:
        raise ValueError(f"cannot make a thumbnail: {exc}") from None
    return buffer.getvalue()
