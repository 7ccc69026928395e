"""The semantic child check's vectors: the text tower's own on the English path, one pass."""

from __future__ import annotations

import numpy as np
import pytest
from withsense.compliance import tower_threshold
from withsense.v1 import inference_pb2 as pb

TEXTS = ["a first grader with a backpack", "a man climbing a rock", "ребёнок на качелях"]


def test_the_onnx_graph_returns_the_tower_vector_beside_the_joint_one(worker_runtime):
    pytest.importorskip("onnxruntime")
    runtime = worker_runtime.with_text_backend("onnx")
    english = TEXTS[:2]
    joint, tower = runtime.text_onnx.with_tower(english)
    frozen = runtime.text_tower.encode(english).numpy()  # MiniLM, no trained head
    assert np.abs(tower - frozen).max() < 1e-5
    assert np.abs(joint - runtime.torch_text_vectors(english)).max() < 1e-5
    # The head moves the vector: the two outputs are not the same space.
    assert np.abs(joint - tower).max() > 1e-2


def test_check_vectors_per_path(worker_runtime):
    vectors, check, paths = worker_runtime.embed_texts_checked(TEXTS)
    assert paths == ["english", "english", "multilingual"]
    frozen = worker_runtime.text_tower.encode(TEXTS[:2]).numpy()
    np.testing.assert_allclose(np.stack(check[:2]), frozen, atol=1e-5)
    np.testing.assert_allclose(check[2], vectors[2], atol=1e-6)  # multilingual: the joint one
    np.testing.assert_allclose(vectors, worker_runtime.embed_texts(TEXTS), atol=1e-6)


async def test_embed_text_sends_check_vectors_only_when_asked(stub, worker_runtime):
    plain = await stub.EmbedText(pb.EmbedTextRequest(texts=TEXTS), timeout=30)
    assert len(plain.check_vectors) == 0
    asked = await stub.EmbedText(pb.EmbedTextRequest(texts=TEXTS, check_vectors=True), timeout=30)
    check = [np.asarray(v.values, dtype=np.float32) for v in asked.check_vectors]
    _, expected, _ = worker_runtime.embed_texts_checked(TEXTS)
    assert len(check) == len(TEXTS)
    for got, want in zip(check, expected, strict=True):
        np.testing.assert_allclose(got, want, atol=1e-5)


async def test_model_info_gives_the_threshold_of_the_tower_space_only(stub, worker_runtime):
    info = await stub.GetModelInfo(pb.GetModelInfoRequest(), timeout=30)
    expected = tower_threshold(worker_runtime.artifact.config)
    if expected is None:
        assert not info.HasField("semantic_child_threshold")
    else:
        assert info.semantic_child_threshold == pytest.approx(expected)
