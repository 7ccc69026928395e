"""Request validation: wire messages -> typed inputs, within the limits of WorkerSettings.

Every check raises `ValidationError(field, message)` whose message names the item
(`texts[3]`, `images[0]`, `queries[1].candidates[7]`) and, where there is one, the limit and the
setting that sets it, e.g. `texts[3] is 2301 characters; the limit is 2000
(WITHSENSE_WORKER_MAX_TEXT_CHARS)`. The servicer turns it into INVALID_ARGUMENT.

These functions are synchronous; the serving layer runs the heavy ones (image decoding, large
Score requests) in its decode threads, off the event loop.
"""

from __future__ import annotations

import contextlib
import io
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from withsense.config.worker import WorkerSettings
from withsense.model.language import MULTILINGUAL, PATH_FROM_WIRE
from withsense.v1 import inference_pb2 as pb

# Formats we decode; PIL is told to try no others (no exotic decoders on untrusted bytes).
IMAGE_FORMATS = ("JPEG", "PNG", "WEBP")
EXIF_ORIENTATION = 0x0112


class ValidationError(ValueError):
    """A request the worker will not process. `field` names the item, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message

    def __str__(self) -> str:
        return self.message


def env_name(setting: str) -> str:
    """The environment variable of a WorkerSettings field, e.g. WITHSENSE_WORKER_MAX_TEXTS."""
    prefix = WorkerSettings.model_config.get("env_prefix", "")
    return f"{prefix}{setting}".upper()


def limit_text(settings: WorkerSettings, setting: str) -> str:
    return f"the limit is {getattr(settings, setting)} ({env_name(setting)})"


def check_count(field: str, count: int, settings: WorkerSettings, setting: str, noun: str) -> None:
    limit = getattr(settings, setting)
    if count == 0:
        raise ValidationError(field, f"{field} is empty; send 1 to {limit} {noun}")
    if count > limit:
        raise ValidationError(
            field, f"{field} has {count} items; {limit_text(settings, setting)}"
        )


# ---------------------------------------------------------------------------------------------
# EmbedText


def parse_texts(texts: Sequence[str], settings: WorkerSettings) -> list[str]:
    check_count("texts", len(texts), settings, "max_texts", "texts")
    parsed = []
    for index, text in enumerate(texts):
        field = f"texts[{index}]"
        if not text.strip():
            raise ValidationError(
                field, f"{field} is empty or only whitespace; send some words to embed"
            )
        if len(text) > settings.max_text_chars:
            raise ValidationError(
                field,
                f"{field} is {len(text)} characters; {limit_text(settings, 'max_text_chars')}",
            )
        parsed.append(text)
    return parsed


@dataclass(frozen=True)
class TextInputs:
    """Texts of one EmbedText request, the path they are to take (None: by script) and whether
    the reply carries their check vectors."""

    texts: list[str]
    path: str | None = None
    check_vectors: bool = False


def parse_embed_text(request: pb.EmbedTextRequest, settings: WorkerSettings, *,
                     multilingual: bool = True) -> TextInputs:
    texts = parse_texts(list(request.texts), settings)
    if request.path not in PATH_FROM_WIRE:
        raise ValidationError("path", f"path {request.path} is not a known TextPath")
    path = PATH_FROM_WIRE[request.path]
    if path == MULTILINGUAL and not multilingual:
        raise ValidationError(
            "path", "path TEXT_PATH_MULTILINGUAL: this worker's model has no multilingual text "
            "path (its artifact has no multilingual map)"
        )
    return TextInputs(texts, path, bool(request.check_vectors))


# ---------------------------------------------------------------------------------------------
# EmbedImages


def check_image_count(count: int, settings: WorkerSettings) -> None:
    check_count("images", count, settings, "max_images", "photos")


def decode_image(
    data: bytes, index: int, settings: WorkerSettings, *, draft_size: int | None = None
) -> Image.Image:
    """Decodes one photo to RGB, checking size limits from the header before decoding pixels.

    draft_size: with settings.jpeg_draft, a large JPEG is decoded at the largest DCT scale
    (1/2, 1/4, 1/8) that keeps both sides >= draft_size.
    """
    field = f"images[{index}]"
    if not data:
        raise ValidationError(field, f"{field} is empty (0 bytes); send JPEG, PNG or WebP bytes")
    if len(data) > settings.max_image_bytes:
        raise ValidationError(
            field, f"{field} is {len(data)} bytes; {limit_text(settings, 'max_image_bytes')}"
        )
    try:
        # Lazy: reads the header only, so the size is known before any pixel is decoded.
        image = Image.open(io.BytesIO(data), formats=IMAGE_FORMATS)
    except Image.DecompressionBombError as exc:
        # PIL's own guard (above 2x Image.MAX_IMAGE_PIXELS) fires before ours can.
        found = re.search(r"\((\d+) pixels\)", str(exc))
        size = f"{found.group(1)} pixels" if found else "too many pixels"
        raise ValidationError(
            field, f"{field} is {size}; {limit_text(settings, 'max_image_pixels')}"
        ) from exc
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError) as exc:
        raise ValidationError(
            field,
            f"{field} is not a JPEG, PNG or WebP image (could not read a header from its "
            f"{len(data)} bytes)",
        ) from exc
    width, height = image.size
    pixels = width * height
    if pixels > settings.max_image_pixels:
        raise ValidationError(
            field,
            f"{field} is {width}x{height} = {pixels} pixels; "
            f"{limit_text(settings, 'max_image_pixels')}",
        )
    if width == 0 or height == 0:
        raise ValidationError(field, f"{field} is {width}x{height}: it has no pixels")
    aspect = max(width, height) / min(width, height)
    if aspect > settings.max_image_aspect_ratio:
        raise ValidationError(
            field,
            f"{field} is {width}x{height}, aspect ratio {aspect:.1f}; "
            f"{limit_text(settings, 'max_image_aspect_ratio')}",
        )
    if settings.jpeg_draft and draft_size and image.format == "JPEG":
        image.draft(None, (draft_size, draft_size))
    try:
        image.load()  # decodes now: truncated or corrupt data fails here, not later
    except (OSError, ValueError, SyntaxError, Image.DecompressionBombError) as exc:
        raise ValidationError(
            field, f"{field} is a truncated or corrupt {image.format} image: {exc}"
        ) from exc
    decoded: Image.Image = image
    with contextlib.suppress(Exception):  # a broken EXIF block must not reject a good photo
        if image.getexif().get(EXIF_ORIENTATION, 1) != 1:
            decoded = ImageOps.exif_transpose(image)
    if decoded.mode != "RGB":
        decoded = decoded.convert("RGB")
    return decoded


# ---------------------------------------------------------------------------------------------
# Score


@dataclass(frozen=True)
class ScoreInputs:
    """queries[B, D], candidates[N, D] (float32) and segment offsets[B + 1] (int64)."""

    queries: np.ndarray
    candidates: np.ndarray
    offsets: np.ndarray

    @property
    def num_queries(self) -> int:
        return int(self.queries.shape[0])

    @property
    def num_candidates(self) -> int:
        return int(self.candidates.shape[0])


def _check_dim(field: str, values: Sequence[float], dim: int) -> None:
    if len(values) != dim:
        raise ValidationError(
            field, f"{field} has {len(values)} values; the model's dim is {dim} (GetModelInfo.dim)"
        )


def _check_finite(array: np.ndarray, names: Callable[[int], str]) -> None:
    """Raises naming the first row with a NaN or infinity, or with norm 0."""
    finite = np.isfinite(array)
    if not finite.all():
        row, col = map(int, np.argwhere(~finite)[0])
        field = names(row)
        raise ValidationError(
            field,
            f"{field} has a non-finite value ({array[row, col]}) at index {col}; "
            "vectors must be finite",
        )
    zero = ~np.any(array != 0, axis=1)
    if zero.any():
        field = names(int(np.argmax(zero)))
        raise ValidationError(field, f"{field} is all zeros: a cosine needs a non-zero vector")


def parse_score(request: pb.ScoreRequest, settings: WorkerSettings, dim: int) -> ScoreInputs:
    queries = request.queries
    check_count("queries", len(queries), settings, "max_score_queries", "queries")
    lengths = [len(query.candidates) for query in queries]
    total = sum(lengths)
    if total > settings.max_score_candidates:
        raise ValidationError(
            "queries[*].candidates",
            f"the request has {total} candidates over all queries; "
            f"{limit_text(settings, 'max_score_candidates')}",
        )
    offsets = np.zeros(len(queries) + 1, dtype=np.int64)
    np.cumsum(lengths, out=offsets[1:])

    def candidate_name(row: int) -> str:
        qi = int(np.searchsorted(offsets, row, side="right")) - 1
        return f"queries[{qi}].candidates[{row - int(offsets[qi])}]"

    rows: list[np.ndarray] = []
    for qi, query in enumerate(queries):
        _check_dim(f"queries[{qi}].query", query.query.values, dim)
        for ci, candidate in enumerate(query.candidates):
            _check_dim(f"queries[{qi}].candidates[{ci}]", candidate.values, dim)
            rows.append(np.asarray(candidate.values, dtype=np.float32))
    query_array = np.array([query.query.values for query in queries], dtype=np.float32)
    query_array = query_array.reshape(len(queries), dim)
    _check_finite(query_array, lambda row: f"queries[{row}].query")
    if rows:
        candidate_array = np.stack(rows)
        _check_finite(candidate_array, candidate_name)
    else:
        candidate_array = np.zeros((0, dim), dtype=np.float32)
    return ScoreInputs(query_array, candidate_array, offsets)


def split_probabilities(probs: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    return [probs[int(offsets[i]):int(offsets[i + 1])] for i in range(len(offsets) - 1)]


def draft_size_for(image_size: int, crop_pct: float = 0.875) -> int:
    """The smallest side a JPEG is decoded at: twice the side the tower's preprocessing resizes
    to (224 / 0.875 = 256 -> 512), so the bicubic downscale that follows keeps its quality."""
    return 2 * math.floor(image_size / crop_pct)
