"""The English text path on ONNX Runtime: MiniLM, mean pooling and the artifact's text head.

One ONNX graph takes token ids and the attention mask and returns the joint-space unit vectors
(MiniLM -> masked mean -> L2 -> text head -> L2) and, as a second output, the tower's own unit
vectors before the head (what the semantic child check compares: the graph computes them anyway,
so asking for both costs one session run), so a query costs one session run instead of
sentence-transformers' Python pipeline and eager torch. The tokenizer is the Rust `tokenizers`
one, loaded from the same `tokenizer.json`, truncating at the tower's max_seq_length as
sentence-transformers does. ONNX Runtime's BERT fusions run on the exported graph (727 nodes ->
79: per-node overhead is a large share of a 10-20 token query).

Precisions (measured in benchmarks/bench_text_tower.py, docs/benchmarks.md): ``fp32`` matches
the eager path to ~1e-6; ``int8`` (dynamic quantization, each activation tensor quantized as a
whole) is the fastest but falls to cosine 0.955-0.99 of fp32; ``int8-blocks`` (8-bit weights and
activations in blocks of 128 values, attention in fp32) stays within 0.997. A precision is kept
as the default only where the benchmark shows it within cosine 0.995 of fp32 and R@K not lower.

The graph is exported at load, in memory (a few seconds), like the image tower's: nothing
is cached on disk, so it always matches the loaded weights. Intra-op threads default to one: a
query is ~10-20 tokens, too small to split, and the gateway and the worker's other threads share
the cores (busy-waiting is off for the same reason).
"""

from __future__ import annotations

import io
import tempfile
import warnings
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F

from withsense.model.image_int8 import quiet_onnx_tools

TEXT_BACKENDS = ("torch", "onnx", "auto")
TEXT_PRECISIONS = ("fp32", "int8", "int8-blocks")
# int8-blocks: weights quantized in blocks of this many input values (of 32 / 64 / 128 the
# fastest, and still cosine >= 0.997 to fp32; docs/benchmarks.md, "The text tower's graph").
BLOCK = 128
# Texts per ONNX Runtime call, after sorting by length: the gateway sends descriptions 64 at a
# time; 64 in one batch cost 3.97 CPU-ms a text, sorted in batches of 16 2.31, of 8 2.16
# (benchmarks/bench_descriptions.py, docs/benchmarks.md, Indexing).
SORTED_BATCH = 16


class _JointText(torch.nn.Module):
    """Token ids -> joint-space unit vectors: what TextTower.encode + FusedModel.embed_text do."""

    def __init__(self, transformer: torch.nn.Module, head: Any) -> None:
        super().__init__()
        self.transformer = transformer
        self.head = head

    def forward(self, input_ids: torch.Tensor,
                attention_mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        tokens = self.transformer(input_ids=input_ids, attention_mask=attention_mask)[0]
        mask = attention_mask.unsqueeze(-1).to(tokens.dtype)
        pooled = F.normalize((tokens * mask).sum(1) / mask.sum(1).clamp(min=1e-9), dim=-1)
        return self.head.embed_text(pooled), pooled


def _export(transformer: Any, head: Any, *, classic_attention: bool = True) -> bytes:
    """The joint graph in ONNX, with BERT's attention in its classic ("eager") form: the pattern
    ONNX Runtime's transformer optimizer fuses (``_fused``). The loaded module keeps its own
    attention implementation afterwards. ``classic_attention=False``: the module's own form, as
    the worker exported it before the fusions (the benchmark's baseline)."""
    module = _JointText(transformer, head).eval()
    example = (torch.ones(1, 8, dtype=torch.int64), torch.ones(1, 8, dtype=torch.int64))
    buffer = io.BytesIO()
    # Releases of transformers without set_attn_implementation fix the attention class when the
    # model is built: there the graph is exported as loaded (it works; fewer nodes fuse).
    switch = classic_attention and hasattr(transformer, "set_attn_implementation")
    previous = transformer.config._attn_implementation if switch else None
    if switch:
        transformer.set_attn_implementation("eager")
    try:
        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                module, example, buffer, input_names=["input_ids", "attention_mask"],
                output_names=["vectors", "tower"], opset_version=17, dynamo=False,
                dynamic_axes={"input_ids": {0: "n", 1: "tokens"}, "attention_mask": {0: "n", 1: "tokens"},
                              "vectors": {0: "n"}, "tower": {0: "n"}},
            )
    finally:
        if switch:
            transformer.set_attn_implementation(previous)
    return buffer.getvalue()


def _fused(model: bytes, config: Any) -> Any:
    """The graph after ONNX Runtime's BERT fusions: embeddings + LayerNorm, each layer's
    attention, bias + GELU and residual + LayerNorm become single contrib ops. The same
    arithmetic (within 1e-6 of eager torch), less per-node overhead. The ModelProto: the
    quantizers and the session take it as it is (each serialization of the ~90 MB graph costs
    a few hundred ms of start-up)."""
    import onnx
    from onnxruntime.transformers import optimizer

    with quiet_onnx_tools():
        optimized = optimizer.optimize_model(
            onnx.load_from_string(model), model_type="bert", num_heads=config.num_attention_heads,
            hidden_size=config.hidden_size, opt_level=1)
    return optimized.model


def _quantize_int8(model: Any) -> Any:
    """Dynamic int8 quantization: per-channel weights, each activation tensor quantized as a
    whole at run time."""
    import onnx
    from onnxruntime.quantization import QuantType, quantize_dynamic

    with tempfile.TemporaryDirectory(prefix="withsense-text-onnx-") as tmp:
        source, target = Path(tmp) / "fp32.onnx", Path(tmp) / "int8.onnx"
        onnx.save(model, source)
        # The fused graph's contrib ops defeat the quantizer's shape inference: their outputs
        # are float32, as the default type says.
        with quiet_onnx_tools():
            quantize_dynamic(source, target, weight_type=QuantType.QInt8, per_channel=True,
                             extra_options={"DefaultTensorType": onnx.TensorProto.FLOAT})
        return onnx.load(target)


def _quantize_blocks(model: Any) -> Any:
    """``int8-blocks``: the feed-forward and attention-output MatMuls as MatMulNBits, 8-bit
    weights in blocks of BLOCK input values, each block with its own scale, activations
    quantized per block at run time (accuracy level 4: int8 products). Fine blocks keep what
    whole-tensor quantization (``int8``) loses to BERT's outlier dimensions. The fused Attention
    nodes stay fp32: quantized as well, one single-word query in 20 fell under cosine 0.995."""
    from onnxruntime.quantization.matmul_nbits_quantizer import (
        DefaultWeightOnlyQuantConfig,
        MatMulNBitsQuantizer,
    )

    quantizer = MatMulNBitsQuantizer(
        model,
        algo_config=DefaultWeightOnlyQuantConfig(block_size=BLOCK, is_symmetric=True,
                                                 accuracy_level=4, bits=8))
    with quiet_onnx_tools():
        quantizer.process()
    return quantizer.model.model


class OnnxTextSession:
    """MiniLM + the artifact's text head in one ONNX Runtime session, with the fast tokenizer."""

    def __init__(self, tower: Any, head: Any, *, precision: str = "fp32", threads: int = 1) -> None:
        """tower: a ``TextTower`` (its MiniLM weights and tokenizer); head: the ``FusedModel``."""
        import onnxruntime
        from tokenizers import Tokenizer

        if precision not in TEXT_PRECISIONS:
            raise ValueError(f"unknown text precision {precision!r}; choose one of {TEXT_PRECISIONS}")
        self.precision = precision
        self.threads = threads
        self.max_tokens = tower.max_seq_length
        self.tokenizer = Tokenizer.from_file(str(tower.tokenizer_file))
        self.tokenizer.enable_truncation(max_length=self.max_tokens)
        self.tokenizer.no_padding()
        model = _fused(_export(tower.transformer, head), tower.transformer.config)
        if precision == "int8":
            model = _quantize_int8(model)
        elif precision == "int8-blocks":
            model = _quantize_blocks(model)
        # How many nodes of each op type the graph has (what the fusions left: see ``_fused``).
        self.graph_ops = dict(Counter(node.op_type for node in model.graph.node))
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_ALL
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(model.SerializeToString(), options,
                                                    providers=["CPUExecutionProvider"])
        self.dim = int(self.session.get_outputs()[0].shape[-1] or head.config.dim)
        self.dims = {"vectors": self.dim, "tower": int(self.session.get_outputs()[1].shape[-1] or tower.dim)}

    def tokenize(self, texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """(input_ids, attention_mask) [n, longest], padded with 0 (BERT's [PAD])."""
        return _padded(self.tokenizer.encode_batch(texts))

    def __call__(self, texts: list[str], batch_size: int = SORTED_BATCH) -> np.ndarray:
        """Joint-space unit vectors [n, dim] of English texts."""
        return self.run(texts, ["vectors"], batch_size)[0]

    def with_tower(self, texts: list[str],
                   batch_size: int = SORTED_BATCH) -> tuple[np.ndarray, np.ndarray]:
        """(joint-space unit vectors, the tower's own unit vectors) of English texts, one run."""
        joint, tower = self.run(texts, ["vectors", "tower"], batch_size)
        return joint, tower

    def run(self, texts: list[str], outputs: list[str],
            batch_size: int = SORTED_BATCH) -> list[np.ndarray]:
        """The named graph outputs ("vectors", "tower"), each [n, dim] float32, in the texts'
        order. The texts run in small batches of similar length (sorted by token count), so a
        batch is padded to little more than its own texts: descriptions vary 2-3x in length
        (docs/benchmarks.md, Indexing)."""
        results = [np.zeros((len(texts), self.dims[name]), dtype=np.float32) for name in outputs]
        if not texts:
            return results
        encodings = self.tokenizer.encode_batch(texts)
        order = sorted(range(len(texts)), key=lambda i: len(encodings[i].ids))
        for start in range(0, len(texts), batch_size):
            rows = order[start:start + batch_size]
            ids, mask = _padded([encodings[i] for i in rows])
            for result, part in zip(results, self.session.run(
                    outputs, {"input_ids": ids, "attention_mask": mask}), strict=True):
                result[rows] = part
        return results


def _padded(encodings: list[Any]) -> tuple[np.ndarray, np.ndarray]:
    """(input_ids, attention_mask) [n, longest] of tokenizer encodings, padded with 0."""
    longest = max(len(e.ids) for e in encodings)
    ids = np.zeros((len(encodings), longest), dtype=np.int64)
    mask = np.zeros((len(encodings), longest), dtype=np.int64)
    for row, encoding in enumerate(encodings):
        ids[row, :len(encoding.ids)] = encoding.ids
        mask[row, :len(encoding.ids)] = 1
    return ids, mask


__all__ = ["TEXT_BACKENDS", "TEXT_PRECISIONS", "OnnxTextSession"]
