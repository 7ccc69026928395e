"""The image tower in int8 on ONNX Runtime: static QDQ quantization from a calibration table.

The table holds the range of every activation of the exported fp32 graph over calibration
photos (ONNX Runtime's calibration-cache JSON). The trainer makes it from the customer's allowed
photos and ships it in the artifact (``CALIBRATION_FILE``); the trainer and the worker both
quantize the fp32 graph with it at load (a few seconds), so the features the heads were trained
on are the features the worker computes. Nothing but the table is stored: the int8 graph always
matches the installed weights.

The recipe (``RECIPE``): weights int8 per output channel in a 7-bit range, activations uint8 per
tensor, MinMax ranges; the global pool and the classifier stay fp32, and so does the arithmetic of
the padding (``shape_arithmetic``; docs/model.md, "int8 image tower").

Why 7-bit weights: on x86 without VNNI, ONNX Runtime multiplies uint8 activations by int8
weights with VPMADDUBSW, whose pairwise int16 sums saturate at full 8-bit range (its quantization
docs name the remedy: weights of a reduced range). With weights in [-64, 64] a pair sums to at
most 2 x 255 x 64 = 32,640 < 32,767, so no CPU saturates: the integer sums are exact on every
machine the trainer or the worker runs on (the float steps around them may round differently;
not compared across machines). Measured (bench_image_int8.py, the customer's photos, an AVX2 CPU
without VNNI): full-range weights gave pooled cosines to fp32 down to 0.69 there.
"""

from __future__ import annotations

import hashlib
import json
import logging
import tempfile
import warnings
from collections.abc import Iterable
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from withsense.model.catalog import IMAGE_PRECISIONS

__all__ = ["IMAGE_PRECISIONS", "CALIBRATION_FILE", "CONFIG_KEY", "RECIPE", "Int8Error", "calibrate",
           "quantize", "table_sha256", "graph_key", "read_table", "trained_on", "artifact_table"]
CALIBRATION_FILE = "image_int8_calibration.json"
# Config key of the artifact: which tower variant the heads were trained on, and the table.
CONFIG_KEY = "image_precision"
# The pooled features are small averages: at uint8 after the pool they would lose much of their
# precision, so the pool and what follows run in fp32 on int8 inputs. Keeping the stem and head
# convolutions fp32 as well measured worse (the first recipe's tables in docs/model.md).
FP32_NODES = ("/global_pool/pool/GlobalAveragePool", "/global_pool/flatten/Flatten", "/classifier/Gemm")
RECIPE = {
    "format": "QDQ", "weights": "int8 per channel, 7-bit range", "activations": "uint8 per tensor",
    "calibration": "MinMax", "fp32_nodes": list(FP32_NODES),
}
SIGNIFICANT_DIGITS = 6  # ranges are rounded so that a rerun on other threads gives the same table


class Int8Error(RuntimeError):
    """The int8 tower cannot be built as asked (no table, a table of another graph, an artifact
    of another recipe)."""


@contextmanager
def quiet_onnx_tools() -> Any:
    """ONNX Runtime's quantizers and graph optimizer advise on the root logger, log every node
    they touch at INFO under loggers of their own module names and warn per tensor: not the
    service's log (the image tower's int8 graph, the text tower's fused and quantized ones)."""
    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            yield
    finally:
        root.setLevel(level)


def _round(value: float) -> float:
    return float(f"{value:.{SIGNIFICANT_DIGITS}g}")


def calibrate(fp32_graph: bytes, batches: Iterable[np.ndarray]) -> dict[str, Any]:
    """The calibration table (ONNX Runtime's calibration-cache JSON, as a dict) of a graph over
    batches of pixels [N, 3, H, W]: the min and max of every activation, rounded to
    SIGNIFICANT_DIGITS."""
    from onnxruntime.quantization.calibrate import (
        CalibrationDataReader,
        CalibrationMethod,
        create_calibrator,
        save_tensors_data,
    )

    class OneBatch(CalibrationDataReader):
        def __init__(self, pixels: np.ndarray) -> None:
            self.items = iter([{"pixels": np.ascontiguousarray(pixels, dtype=np.float32)}])

        def get_next(self) -> dict[str, np.ndarray] | None:
            return next(self.items, None)

    with tempfile.TemporaryDirectory() as folder, quiet_onnx_tools():
        model = Path(folder) / "fp32.onnx"
        model.write_bytes(fp32_graph)
        calibrator = create_calibrator(model, augmented_model_path=str(Path(folder) / "aug.onnx"),
                                       calibrate_method=CalibrationMethod.MinMax)
        seen = 0
        for pixels in batches:  # one batch at a time: its ranges merge, its activations go
            calibrator.collect_data(OneBatch(pixels))
            seen += len(pixels)
        if not seen:
            raise Int8Error("int8 calibration needs at least one photo")
        save_tensors_data(calibrator.compute_data(), Path(folder) / "table.json")
        table = json.loads((Path(folder) / "table.json").read_text())
    for entry in table["data"].values():
        for bound in ("lowest", "highest"):
            entry[bound]["data"] = [_round(v) for v in np.ravel(entry[bound]["data"])]
    return table


def table_sha256(table: dict[str, Any]) -> str:
    """Content hash of a table (the artifact's record)."""
    return hashlib.sha256(json.dumps(table, sort_keys=True).encode()).hexdigest()


def graph_key(table: dict[str, Any]) -> str:
    """Names the int8 graph a table makes with this RECIPE (the trainer's feature-cache key)."""
    return hashlib.sha256(json.dumps({"table": table, "recipe": RECIPE}, sort_keys=True).encode()).hexdigest()


def quantize(fp32_graph: bytes, table: dict[str, Any], *, reduce_range: bool = True) -> bytes:
    """The int8 graph of an fp32 graph with a calibration table (RECIPE; full-range weights,
    ``reduce_range=False``, for bench_image_int8's comparison: exact only with VNNI on x86)."""
    import onnx
    from onnxruntime.quantization import QuantFormat, QuantType, quantize_static

    graph = onnx.load_from_string(fp32_graph)
    names = {out for node in graph.graph.node for out in node.output} | {i.name for i in graph.graph.input}
    exclude = [*FP32_NODES, *shape_arithmetic(graph)]
    unknown = sorted(set(table["data"]) - names)
    if unknown:
        raise Int8Error(f"the int8 calibration table names {len(unknown)} tensors this tower's "
                        f"graph lacks (e.g. {unknown[0]!r}): it was made for another graph; retrain")
    with tempfile.TemporaryDirectory() as folder, quiet_onnx_tools():
        source, target, cache = (Path(folder) / name for name in ("fp32.onnx", "int8.onnx", "table.json"))
        source.write_bytes(fp32_graph)
        cache.write_text(json.dumps(table))
        quantize_static(
            source, target, None, calibration_cache_path=cache, quant_format=QuantFormat.QDQ,
            per_channel=True, reduce_range=reduce_range, activation_type=QuantType.QUInt8,
            weight_type=QuantType.QInt8,
            nodes_to_exclude=exclude,
        )
        return target.read_bytes()


def shape_arithmetic(graph: Any) -> list[str]:
    """Nodes that compute from tensor shapes, not from pixels: TensorFlow "same" padding is
    exported as Shape -> Cast -> Div -> Ceil -> Mul -> Sub ... -> Pad. Quantizing that float
    arithmetic rounds the padding itself (wrong geometry, pooled cosine ~0.87): it stays fp32."""
    constants = {i.name for i in graph.graph.initializer}
    derived: set[str] = set()
    nodes = []
    for node in graph.graph.node:  # topological order
        if node.op_type == "Constant":
            constants.update(node.output)
            continue
        inputs = [name for name in node.input if name]
        from_shapes = node.op_type == "Shape" or (
            any(name in derived for name in inputs)
            and all(name in derived or name in constants for name in inputs))
        if from_shapes:
            derived.update(node.output)
            nodes.append(node.name)
    return nodes


def read_table(path: Path) -> dict[str, Any]:
    try:
        table = json.loads(Path(path).read_text())
    except (OSError, ValueError) as exc:
        raise Int8Error(f"{path}: cannot read the int8 calibration table ({exc})") from exc
    if not isinstance(table, dict) or not isinstance(table.get("data"), dict):
        raise Int8Error(f"{path}: not an int8 calibration table (no 'data' ranges)")
    return table


def trained_on(config: dict[str, Any]) -> str:
    """The tower variant an artifact's heads were trained on ("fp32" unless it says int8)."""
    return str(config.get(CONFIG_KEY, {}).get("heads_trained_on", "fp32"))


def artifact_table(artifact_dir: Path | None, config: dict[str, Any]) -> dict[str, Any] | None:
    """The calibration table an artifact ships, or None. Int8Error when the artifact records
    another recipe than this build's, or none (the first recipe's artifacts did not): this build
    cannot make the graph its heads and minor detector learnt from, and its own graph's features
    would move the detector's operating point, so that is refused, not guessed."""
    section = config.get(CONFIG_KEY, {})
    if artifact_dir is None or not section.get("file"):
        return None
    recorded = section.get("recipe")
    if recorded != RECIPE:
        made_by = f"another recipe ({recorded})" if recorded else "a recipe it does not record"
        raise Int8Error(f"model {config.get('version')} was trained on an int8 image graph of "
                        f"{made_by}, not the one this build makes ({RECIPE}): retrain it with "
                        "this build (the worker can serve it on the fp32 tower, logged as a "
                        "model mismatch: WITHSENSE_WORKER_IMAGE_PRECISION=fp32)")
    return read_table(Path(artifact_dir) / section["file"])
