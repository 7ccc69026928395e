"""The English text path on ONNX Runtime against the eager torch reference."""

from __future__ import annotations

import numpy as np
import pytest
from withsense.model.text_onnx import OnnxTextSession, _export
from withsense.v1 import inference_pb2 as pb

from tests.worker.helpers import vectors_of

pytest.importorskip("onnxruntime")

ODD_TEXTS = [
    "",                                                   # empty: [CLS] [SEP] only
    "a dog runs on the beach",
    "Ünïcödé café — 東京の夜景, crème brûlée 🍮",             # non-ASCII, emoji
    "a red cat on a mat " * 90,  # ~540 tokens, past max_seq_length, within 2,000 characters
    "   ",
    "A",
]


@pytest.fixture(scope="module")
def onnx_runtime(worker_runtime):
    return worker_runtime.with_text_backend("onnx")


def test_the_onnx_text_path_matches_eager_torch(onnx_runtime):
    assert onnx_runtime.text_backend == "onnx-fp32"
    fast = onnx_runtime.embed_texts(ODD_TEXTS)
    reference = onnx_runtime.torch_text_vectors(ODD_TEXTS)
    assert fast.shape == reference.shape == (len(ODD_TEXTS), onnx_runtime.dim)
    assert np.abs(fast - reference).max() < 1e-5
    assert np.allclose(np.linalg.norm(fast, axis=1), 1.0, atol=1e-5)


def test_the_graph_is_fused(onnx_runtime):
    """ONNX Runtime's BERT fusions took: one Attention and two SkipLayerNormalization nodes per
    layer, embeddings with their LayerNorm in one node, and no bare Softmax left over; else the
    export fell back to a pattern the optimizer does not know (the graph still works, ~10% slower)."""
    ops = onnx_runtime.text_onnx.graph_ops
    layers = onnx_runtime.text_tower.transformer.config.num_hidden_layers
    assert ops.get("Attention") == layers
    assert ops.get("SkipLayerNormalization") == 2 * layers
    assert ops.get("EmbedLayerNormalization") == 1
    assert "Softmax" not in ops
    assert sum(ops.values()) < 150


def test_the_export_puts_the_module_s_own_attention_back(onnx_runtime):
    """The export switches MiniLM to its classic attention (what the optimizer fuses); the loaded
    module, which the eager reference path keeps using, gets its own implementation back."""
    transformer = onnx_runtime.text_tower.transformer
    before = transformer.config._attn_implementation
    assert _export(transformer, onnx_runtime.model)
    assert transformer.config._attn_implementation == before


def test_a_text_longer_than_the_tokenizer_limit_is_truncated_like_torch(onnx_runtime):
    session = onnx_runtime.text_onnx
    long_text = ODD_TEXTS[3]
    ids, mask = session.tokenize([long_text])
    assert ids.shape[1] == session.max_tokens == onnx_runtime.text_tower.max_seq_length
    # Truncated: a longer text with the same first 256 tokens has the same vector.
    longer = session([long_text + " and then some more words at the end"])
    assert np.abs(longer - session([long_text])).max() < 1e-6


def test_a_batch_equals_its_texts_one_by_one(onnx_runtime):
    session = onnx_runtime.text_onnx
    batch = session(ODD_TEXTS)
    alone = np.concatenate([session([text]) for text in ODD_TEXTS])
    assert np.abs(batch - alone).max() < 1e-5
    assert session([]).shape == (0, onnx_runtime.dim)
    # Batches of similar length: small batches over texts of mixed lengths keep the order.
    mixed = ODD_TEXTS * 3
    assert np.abs(session(mixed, batch_size=4) - np.concatenate([alone] * 3)).max() < 1e-5


def test_int8_blocks_stays_within_the_cosine_bar(onnx_runtime):
    """int8-blocks: 8-bit MatMulNBits for the MatMuls, the fused Attention left in fp32, and every
    vector within cosine 0.995 of fp32 on odd texts and single words."""
    blocks = onnx_runtime.with_text_backend("onnx", "int8-blocks")
    assert blocks.text_backend == "onnx-int8-blocks"
    layers = onnx_runtime.text_tower.transformer.config.num_hidden_layers
    ops = blocks.text_onnx.graph_ops
    assert ops.get("MatMulNBits") == 3 * layers
    assert ops.get("Attention") == layers and "MatMul" not in ops
    texts = [*ODD_TEXTS, "dog", "bridge", "кот", "two people crossing a metal bridge in the mountains"]
    cosines = np.sum(blocks.embed_texts(texts) * onnx_runtime.embed_texts(texts), axis=1)
    assert cosines.min() >= 0.995, cosines


def test_an_unknown_precision_or_backend_is_refused(worker_runtime):
    with pytest.raises(ValueError, match="text precision"):
        OnnxTextSession(worker_runtime.text_tower, worker_runtime.model, precision="int4")
    with pytest.raises(ValueError, match="text backend"):
        worker_runtime.with_text_backend("tensorrt")


def test_the_torch_backend_stays_available(onnx_runtime):
    eager = onnx_runtime.with_text_backend("torch")
    assert eager.text_backend == "torch" and eager.text_onnx is None
    assert np.abs(eager.embed_texts(["a red car"]) - onnx_runtime.embed_texts(["a red car"])).max() < 1e-5


async def test_the_worker_serves_the_onnx_path_over_grpc(start_test_worker, onnx_runtime):
    import grpc
    from withsense.v1 import inference_pb2_grpc

    worker = await start_test_worker(runtime=onnx_runtime)
    texts = ODD_TEXTS[1:4]  # plain, non-ASCII, past the tokenizer's limit
    async with grpc.aio.insecure_channel(worker.address) as channel:
        stub = inference_pb2_grpc.InferenceServiceStub(channel)
        reply = await stub.EmbedText(pb.EmbedTextRequest(texts=texts), timeout=60)
        with pytest.raises(grpc.aio.AioRpcError) as empty:
            await stub.EmbedText(pb.EmbedTextRequest(texts=[""]), timeout=60)
    assert np.abs(vectors_of(reply) - onnx_runtime.torch_text_vectors(texts)).max() < 1e-5
    assert empty.value.code() == grpc.StatusCode.INVALID_ARGUMENT
