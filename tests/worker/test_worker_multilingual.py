"""Russian queries through a real worker: the multilingual path of the shipped artifact."""

from __future__ import annotations

import grpc
import numpy as np
import pytest
from withsense.v1 import inference_pb2 as pb

from tests.worker.helpers import vectors_of

pytestmark = pytest.mark.slow

# (Russian, its English counterpart): each Russian query must land nearer its own counterpart
# than any other English sentence here.
PAIRS = [
    ("чёрная собака бежит по пляжу", "a black dog runs on the beach"),
    ("чашка кофе на столе", "a cup of coffee on a table"),
    ("мужчина едет на велосипеде по горной дороге", "a man rides a bicycle on a mountain road"),
    ("сёрфер на большой волне", "a surfer riding a big wave"),
]


@pytest.fixture
def multilingual(worker_runtime):
    if not worker_runtime.multilingual:
        pytest.skip("the shipped artifact has no multilingual map (withsense train adds it)")
    return worker_runtime


async def test_russian_query_lands_next_to_its_english_counterpart(stub, multilingual):
    russian = [ru for ru, _ in PAIRS]
    english = [en for _, en in PAIRS]
    reply = await stub.EmbedText(pb.EmbedTextRequest(texts=russian + english), timeout=60)
    assert list(reply.paths) == [pb.TEXT_PATH_MULTILINGUAL] * len(russian) + \
        [pb.TEXT_PATH_ENGLISH] * len(english)
    vectors = vectors_of(reply)
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    similarity = vectors[: len(russian)] @ vectors[len(russian):].T
    assert list(similarity.argmax(axis=1)) == list(range(len(PAIRS))), similarity.round(2)
    assert similarity.diagonal().min() > 0.4, similarity.round(2)
    # The worker gives what the model gives in process.
    np.testing.assert_allclose(vectors, multilingual.embed_texts(russian + english), atol=1e-5)


async def test_path_can_be_forced(stub, multilingual):
    text = "a black dog runs on the beach"
    english = await stub.EmbedText(pb.EmbedTextRequest(texts=[text]), timeout=60)
    forced = await stub.EmbedText(
        pb.EmbedTextRequest(texts=[text], path=pb.TEXT_PATH_MULTILINGUAL), timeout=60)
    assert list(english.paths) == [pb.TEXT_PATH_ENGLISH]
    assert list(forced.paths) == [pb.TEXT_PATH_MULTILINGUAL]
    # Two towers, one space: the same sentence lands close, but not on the same point.
    cosine = float(vectors_of(english)[0] @ vectors_of(forced)[0])
    assert 0.5 < cosine < 0.9999


async def test_model_info_names_the_multilingual_path(stub, multilingual):
    info = await stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30)
    entry = multilingual.artifact.config["multilingual"]
    assert info.multilingual
    assert "multilingual-e5-small" in info.multilingual_text_tower
    assert info.HasField("multilingual_semantic_child_threshold")
    assert info.multilingual_semantic_child_threshold == pytest.approx(entry["semantic_child_threshold"])


async def test_a_model_without_the_map_refuses_the_multilingual_path(start_test_worker, multilingual):
    import copy

    english_only = copy.copy(multilingual)
    english_only.text_map = None
    english_only.multilingual_tower = None
    worker = await start_test_worker(runtime=english_only)
    async with grpc.aio.insecure_channel(f"127.0.0.1:{worker.port}") as channel:
        from withsense.v1 import inference_pb2_grpc

        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        with pytest.raises(grpc.aio.AioRpcError) as caught:
            await stub.EmbedText(pb.EmbedTextRequest(texts=["собака"], path=pb.TEXT_PATH_MULTILINGUAL),
                                 timeout=30)
        assert caught.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        assert "no multilingual text path" in caught.value.details()
        # Auto routing without the map: everything on the English path, as before.
        reply = await stub.EmbedText(pb.EmbedTextRequest(texts=["собака"]), timeout=30)
        assert list(reply.paths) == [pb.TEXT_PATH_ENGLISH]
        info = await stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30)
        assert not info.multilingual and not info.HasField("multilingual_semantic_child_threshold")
