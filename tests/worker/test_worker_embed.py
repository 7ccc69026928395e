"""EmbedText, EmbedImages, Score and GetModelInfo over real gRPC with the real model."""

from __future__ import annotations

import asyncio
import io
import json

import numpy as np
import torch
from PIL import Image
from withsense.kernels.reference import cosine_sigmoid_reference
from withsense.v1 import inference_pb2 as pb

from tests.worker.helpers import OTHER_PHOTOS, PHOTO_QUERIES, vectors_of


async def test_model_info_is_complete(stub, worker, worker_runtime):
    info = await stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30)
    assert info.model_version == worker_runtime.version
    assert info.dim == worker_runtime.dim == 384
    assert worker_runtime.image_tower.timm_name in info.image_tower
    assert info.image_tower.startswith("tf_efficientnet_lite")
    assert "all-MiniLM-L6-v2" in info.text_tower
    assert info.scale == worker_runtime.scale and info.bias == worker_runtime.bias
    assert info.zero_shot == worker_runtime.artifact.zero_shot
    assert info.score_backend == worker_runtime.backend
    assert json.loads(info.model_card_json) == worker_runtime.artifact.card
    # No server path leaves the worker: the artifact folder's name only.
    assert info.artifact_dir == worker_runtime.artifact.path.name and "/" not in info.artifact_dir
    assert str(worker_runtime.artifact.path.parent) not in str(info)
    limits = worker.settings
    assert (info.max_texts, info.max_text_chars) == (limits.max_texts, limits.max_text_chars)
    assert (info.max_images, info.max_image_bytes, info.max_image_pixels) == (
        limits.max_images, limits.max_image_bytes, limits.max_image_pixels)
    assert (info.max_score_queries, info.max_score_candidates) == (
        limits.max_score_queries, limits.max_score_candidates)
    assert info.max_message_bytes == limits.max_message_mb * 2**20
    assert info.image_size == worker_runtime.image_tower.image_size
    assert info.image_backend in ("onnx", "onnx-int8", "torch")
    # The artifact's fusion model, which the gateway applies to its candidates.
    assert worker_runtime.fusion is not None
    assert json.loads(info.fusion_json) == json.loads(json.dumps(worker_runtime.fusion.to_json()))


async def test_text_embeddings_are_unit_vectors_of_the_model_dim(stub, worker_runtime):
    texts = ["a cat", "A man is crossing a mountain pass on a metal bridge", "кошка", "x" * 2000]
    reply = await stub.EmbedText(pb.EmbedTextRequest(texts=texts), timeout=30)
    vectors = vectors_of(reply)
    assert vectors.shape == (len(texts), worker_runtime.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(vectors, worker_runtime.embed_texts(texts), atol=1e-5)
    assert reply.model_version == worker_runtime.version and reply.batch_size == len(texts)


async def test_image_embeddings_equal_the_model_in_process(stub, worker_runtime, photos):
    names = list(photos)
    reply = await stub.EmbedImages(pb.EmbedImagesRequest(images=list(photos.values())), timeout=60)
    vectors = vectors_of(reply)
    assert vectors.shape == (len(names), worker_runtime.dim)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    local = worker_runtime.embed_images([Image.open(io.BytesIO(photos[n])) for n in names])
    np.testing.assert_allclose(vectors, local, atol=1e-5)


async def test_zero_shot_finds_the_right_photo(stub, photos):
    """Real photos (scikit-image's) through EmbedImages, queries through EmbedText."""
    names = [*PHOTO_QUERIES, *OTHER_PHOTOS]
    images, texts = await asyncio.gather(
        stub.EmbedImages(pb.EmbedImagesRequest(images=[photos[n] for n in names]), timeout=60),
        stub.EmbedText(pb.EmbedTextRequest(texts=list(PHOTO_QUERIES.values())), timeout=30),
    )
    similarity = vectors_of(texts) @ vectors_of(images).T
    for row, (photo, query) in enumerate(PHOTO_QUERIES.items()):
        ranked = [names[i] for i in np.argsort(-similarity[row])]
        assert ranked[0] == photo, f"{query!r} ranked {ranked}"


def score_request(queries: np.ndarray, segments: list[np.ndarray]) -> pb.ScoreRequest:
    return pb.ScoreRequest(queries=[
        pb.ScoreQuery(query=pb.Vector(values=q.tolist()),
                      candidates=[pb.Vector(values=c.tolist()) for c in segment])
        for q, segment in zip(queries, segments, strict=True)
    ])


async def test_score_equals_the_float64_reference(stub, worker_runtime):
    rng = np.random.default_rng(7)
    dim = worker_runtime.dim
    lengths = [5, 0, 17, 1]
    queries = rng.standard_normal((len(lengths), dim)).astype(np.float32)
    segments = [rng.standard_normal((n, dim)).astype(np.float32) for n in lengths]
    segments[2][:3] = queries[2] * np.array([[1.0], [0.3], [-2.0]], dtype=np.float32)  # cos ±1
    reply = await stub.Score(score_request(queries, segments), timeout=30)
    assert reply.backend == worker_runtime.backend and reply.model_version == worker_runtime.version
    assert [len(r.probabilities) for r in reply.results] == lengths
    offsets = torch.tensor([0, *np.cumsum(lengths)])
    expected = cosine_sigmoid_reference(
        torch.from_numpy(queries), torch.from_numpy(np.concatenate(segments)), offsets,
        worker_runtime.scale, worker_runtime.bias, dtype=torch.float64,
    ).numpy()
    got = np.concatenate([np.array(r.probabilities) for r in reply.results])
    np.testing.assert_allclose(got, expected, atol=1e-6, rtol=1e-5)
    assert got[5 + 0] > 0.4  # cos = 1 with t = 10, b = -10: sigmoid(0) = 0.5


async def test_score_requests_are_batched_and_split_back(start_test_worker, worker_runtime):
    import grpc
    from withsense.v1 import inference_pb2_grpc

    worker = await start_test_worker(max_wait_ms=30)
    rng = np.random.default_rng(3)
    dim = worker_runtime.dim
    cases = []
    for n in range(4):
        lengths = [n + 1, 2 * n]
        queries = rng.standard_normal((2, dim)).astype(np.float32)
        cases.append((queries, [rng.standard_normal((k, dim)).astype(np.float32) for k in lengths]))
    async with grpc.aio.insecure_channel(f"127.0.0.1:{worker.port}") as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        replies = await asyncio.gather(
            *(stub.Score(score_request(q, s), timeout=30) for q, s in cases)
        )
    assert max(reply.batch_size for reply in replies) > 2  # some were scored together
    for (queries, segments), reply in zip(cases, replies, strict=True):
        for query, segment, result in zip(queries, segments, reply.results, strict=True):
            expected = cosine_sigmoid_reference(
                torch.from_numpy(query[None]), torch.from_numpy(segment),
                torch.tensor([0, len(segment)]), worker_runtime.scale, worker_runtime.bias,
                dtype=torch.float64,
            ).numpy()
            np.testing.assert_allclose(np.array(result.probabilities), expected, atol=1e-6)
