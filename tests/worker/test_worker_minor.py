"""The worker returns p(photo shows a child) with every image embedding (real model, real gRPC)."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from withsense.v1 import inference_pb2 as pb

pytestmark = pytest.mark.slow


async def test_embed_images_returns_the_minor_probability(stub, worker_runtime, photos):
    names = ["coffee", "astronaut", "rocket"]
    reply = await stub.EmbedImages(pb.EmbedImagesRequest(images=[photos[n] for n in names]),
                                   timeout=120)
    assert worker_runtime.minor is not None, "the shipped artifact has a minor detector"
    p = np.asarray(reply.minor_probabilities)
    assert p.shape == (3,) and np.all((p >= 0) & (p <= 1))
    assert reply.minor_detector_version == worker_runtime.minor.version
    assert reply.minor_detector_version.startswith("minor-")
    # The same numbers as the runtime's own (the features the vectors are made from).
    pixels = torch.stack(
        [worker_runtime.preprocess_image(_decode(photos[n])) for n in names])
    _, expected = worker_runtime.embed_pixels_with_minor(pixels)
    np.testing.assert_allclose(p, expected, atol=1e-4)


async def test_model_info_describes_the_detector(stub, worker_runtime):
    info = await stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30)
    assert info.minor_detector_version == worker_runtime.minor.version
    assert info.HasField("minor_threshold")
    assert info.minor_threshold == pytest.approx(worker_runtime.minor.threshold, abs=1e-6)
    curve = json.loads(info.minor_curve_json)
    assert curve and {"recall", "threshold", "adults_withheld"} <= set(curve[0])


async def test_a_model_without_a_detector_says_so(start_test_worker, worker_runtime, photos):
    import copy

    import grpc
    from withsense.v1 import inference_pb2_grpc

    blind = copy.copy(worker_runtime)
    blind.minor = None
    server = await start_test_worker(runtime=blind)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{server.port}") as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        reply = await stub.EmbedImages(pb.EmbedImagesRequest(images=[photos["coffee"]]), timeout=60)
        info = await stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30)
    assert len(reply.vectors) == 1 and len(reply.minor_probabilities) == 0
    assert reply.minor_detector_version == "" and info.minor_detector_version == ""
    assert not info.HasField("minor_threshold")


def _decode(data: bytes):
    import io

    from PIL import Image

    return Image.open(io.BytesIO(data)).convert("RGB")
