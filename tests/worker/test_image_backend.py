"""The fast image path (ONNX Runtime) against eager timm, and JPEG draft decoding."""

from __future__ import annotations

import io

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data
from withsense.config import WorkerSettings
from withsense.v1 import inference_pb2 as pb
from withsense.worker import protocol

from tests.worker.helpers import jpeg_bytes, vectors_of


@pytest.fixture(scope="module")
def pixels(worker_runtime, photos) -> torch.Tensor:
    return worker_runtime.image_tower.preprocess([Image.open(io.BytesIO(b)) for b in photos.values()])


def test_onnx_runtime_path_matches_eager_timm(worker_runtime, pixels):
    pytest.importorskip("onnxruntime")
    tower = worker_runtime.image_tower
    onnx = tower if tower.backend == "onnx" else tower.with_backend("onnx")
    eager = onnx.torch_features(pixels)
    fast = onnx.features_from_pixels(pixels)
    assert torch.allclose(fast.pooled, eager.pooled, atol=1e-4), (fast.pooled - eager.pooled).abs().max()
    assert torch.allclose(fast.logits, eager.logits, atol=1e-3), (fast.logits - eager.logits).abs().max()
    model = worker_runtime.model
    with torch.inference_mode():
        fast_vectors = model.embed_image(fast.pooled, fast.logits)
        eager_vectors = model.embed_image(eager.pooled, eager.logits)
    assert torch.allclose(fast_vectors, eager_vectors, atol=1e-5)


def test_torch_backend_is_still_available(worker_runtime, pixels):
    eager = worker_runtime.with_image_backend("torch")
    assert eager.image_tower.backend == "torch"
    np.testing.assert_allclose(
        eager.embed_pixels(pixels), worker_runtime.embed_pixels(pixels), atol=1e-5
    )
    with pytest.raises(ValueError, match="unknown image backend"):
        worker_runtime.image_tower.with_backend("tensorrt")


def big_cat_jpeg() -> bytes:
    """A 2400 x 1600 photo, the size of what photographers upload (scaled up from the cat)."""
    return jpeg_bytes(Image.fromarray(data.chelsea()).resize((2400, 1600), Image.BICUBIC), 92)


def test_jpeg_draft_decodes_large_photos_at_a_reduced_scale():
    settings = WorkerSettings()
    draft = protocol.draft_size_for(224, 0.875)
    assert draft == 512
    image = protocol.decode_image(big_cat_jpeg(), 0, settings, draft_size=draft)
    assert image.size == (1200, 800) and image.mode == "RGB"  # 1/2 scale keeps both sides >= 512
    full = protocol.decode_image(big_cat_jpeg(), 0, WorkerSettings(jpeg_draft=False), draft_size=draft)
    assert full.size == (2400, 1600)
    small = protocol.decode_image(jpeg_bytes(data.chelsea()), 0, settings, draft_size=draft)
    assert small.size == (451, 300)  # small photos decode at full size


@pytest.mark.parametrize("mode", ["RGB", "L", "CMYK"])
def test_jpeg_draft_keeps_the_exif_rotation_and_gives_rgb(mode):
    """A 2400 x 1300 JPEG shown rotated (EXIF orientation 6), in colour, grey or CMYK: decoded
    at 1/2 scale, then turned upright; the pixels agree with the full decode's, scaled down."""
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(data.chelsea()).resize((2400, 1300), Image.BICUBIC).convert(mode).save(
        buffer, "JPEG", quality=92, exif=exif)
    draft = protocol.decode_image(buffer.getvalue(), 0, WorkerSettings(), draft_size=512)
    full = protocol.decode_image(buffer.getvalue(), 0, WorkerSettings(jpeg_draft=False), draft_size=512)
    assert draft.mode == full.mode == "RGB"
    assert full.size == (1300, 2400) and draft.size == (650, 1200)  # upright: portrait
    scaled = np.asarray(full.resize(draft.size, Image.BICUBIC), dtype=np.float32)
    assert np.abs(np.asarray(draft, dtype=np.float32) - scaled).mean() < 4


async def test_jpeg_draft_keeps_the_vector(stub, worker_runtime):
    photo = big_cat_jpeg()
    reply = await stub.EmbedImages(pb.EmbedImagesRequest(images=[photo]), timeout=60)
    full_decode = worker_runtime.embed_images([Image.open(io.BytesIO(photo))])
    cosine = float(vectors_of(reply)[0] @ full_decode[0])
    assert cosine > 0.99, cosine


def test_numpy_preprocessing_is_bitwise_timms(worker_runtime, photos):
    tower = worker_runtime.image_tower
    for data_ in photos.values():
        image = Image.open(io.BytesIO(data_))
        assert torch.equal(tower.transform_image(image), tower.transform(image.convert("RGB")))
    grey = Image.fromarray(data.camera())  # mode L
    assert torch.equal(tower.transform_image(grey), tower.transform(grey.convert("RGB")))
