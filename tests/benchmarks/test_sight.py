"""The person/age cues route of the minor-detector benchmark (benchmarks/sight_*.py,
minor_stack.py): SSD anchors and decoding, weighted NMS, the face chip's alignment, body ratios,
the cue design, the stacked fitter; and the real networks when their files are here."""

from __future__ import annotations

import math
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image, ImageDraw

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

from minor_stack import cue_design, stacked_fitter  # noqa: E402
from sight_cues import (  # noqa: E402
    CHIP_EYES,
    body_cues,
    cue_columns,
    cue_vector,
    face_chip,
)
from sight_nets import (  # noqa: E402
    FACE_DETECTOR,
    POSE_DETECTOR,
    Detection,
    Pose,
    decode,
    letterbox,
    ssd_anchors,
    weighted_nms,
)

# the files of benchmarks/sight_weights.py (not part of the product: fetched by hand)
WEIGHTS = Path(os.environ.get("WITHSENSE_SIGHT_WEIGHTS", "/nonexistent"))


def test_anchor_counts_match_the_networks_outputs() -> None:
    # pose_detection.tflite outputs 2254 boxes, face_detection_full_range_sparse 2304
    assert ssd_anchors(POSE_DETECTOR).shape == (2254, 2)
    assert ssd_anchors(FACE_DETECTOR).shape == (2304, 2)
    assert ssd_anchors(FACE_DETECTOR).min() > 0 and ssd_anchors(FACE_DETECTOR).max() < 1


def test_decode_maps_a_letterboxed_box_back_to_image_pixels() -> None:
    image = Image.new("RGB", (400, 200))
    _, scale, left, top = letterbox(image, POSE_DETECTOR.size)
    assert (scale, left, top) == (0.56, 0.0, 56.0)
    anchors = ssd_anchors(POSE_DETECTOR)
    raw = np.zeros((len(anchors), 12), np.float32)
    scores = np.full(len(anchors), -10.0, np.float32)
    k = 100
    raw[k, 2:4] = 22.4  # 22.4 letterbox pixels wide and high: 40 image pixels
    raw[k, 4:6] = 11.2  # first keypoint 11.2 letterbox pixels right and down of the anchor
    scores[k] = 5.0
    [found] = decode(raw, scores, anchors, POSE_DETECTOR, scale, left, top)
    centre = (anchors[k] * 224 - [left, top]) / scale
    np.testing.assert_allclose(found.box, [*(centre - 20), *(centre + 20)], atol=1e-3)
    np.testing.assert_allclose(found.keypoints[0], centre + 20, atol=1e-3)
    assert found.score == pytest.approx(1 / (1 + math.exp(-5)))


def test_weighted_nms_averages_overlapping_detections_and_keeps_apart_ones() -> None:
    def det(x: float, score: float) -> Detection:
        return Detection(np.array([x, 0, x + 10, 10], np.float32),
                         np.array([[x, 5]], np.float32), score)

    kept = weighted_nms([det(0, 0.9), det(1, 0.9), det(50, 0.6)], iou=0.3)
    assert len(kept) == 2
    np.testing.assert_allclose(kept[0].box, [0.5, 0, 10.5, 10])
    assert kept[0].score == 0.9 and kept[1].box[0] == 50


def test_face_chip_puts_the_eyes_where_dlibs_template_does() -> None:
    image = Image.new("RGB", (300, 200))
    draw = ImageDraw.Draw(image)
    left, right = np.array([120.0, 90.0]), np.array([160.0, 100.0])  # a tilted face
    for x, y in (left, right):
        draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill="white")
    chip = np.asarray(face_chip(image, left, right), np.float32).mean(2)
    for eye in CHIP_EYES:
        x, y = (int(round(v)) for v in eye)
        assert chip[y - 1:y + 2, x - 1:x + 2].max() > 100, f"no eye near {eye}"
    assert chip[50:, :].max() < 10  # nothing else in the chip


def pose(points: dict[int, tuple[float, float]]) -> Pose:
    xy = np.zeros((33, 2), np.float32)
    visible = np.zeros(33, np.float32)
    for index, point in points.items():
        xy[index], visible[index] = point, 1.0
    return Pose(xy, visible, 1.0)


def body(head: float, legs: float) -> Pose:
    """An upright figure: shoulders 40 apart, torso 60, ears ``head`` apart, legs ``legs``."""
    return pose({0: (50, 20), 2: (45, 15), 5: (55, 15), 7: (50 - head / 2, 18),
                 8: (50 + head / 2, 18), 9: (47, 25), 10: (53, 25), 11: (30, 40), 12: (70, 40),
                 13: (28, 60), 14: (72, 60), 23: (38, 100), 24: (62, 100),
                 25: (38, 100 + legs / 2), 26: (62, 100 + legs / 2), 27: (38, 100 + legs),
                 28: (62, 100 + legs)})


def test_body_cues_are_ratios_that_tell_child_proportions() -> None:
    child, adult = body_cues(body(28, 60), 500.0), body_cues(body(20, 100), 500.0)
    assert child["head_shoulder"] == pytest.approx(0.7)
    assert child["head_shoulder"] > adult["head_shoulder"]
    assert child["legs_torso"] == pytest.approx(1.0) and adult["legs_torso"] == pytest.approx(5 / 3)
    hidden = body_cues(pose({11: (30, 40), 12: (70, 40)}), 500.0)
    assert math.isnan(hidden["legs_torso"]) and math.isnan(hidden["head_shoulder"])


def test_cue_vector_and_design_have_fixed_columns_and_missing_indicators() -> None:
    nothing = {"persons_detected": [0.0], "face_area": [], "face_age": [], "face_p_young": [],
               **{name: [] for name in ("head_shoulder", "eyes_shoulder", "face_shoulder",
                                        "torso_shoulder", "face_torso", "legs_torso", "arm_torso",
                                        "neck_shoulder", "size", "age", "p_young")}}
    one = {**nothing, "persons_detected": [1.0], "age": [7.0], "p_young": [0.9],
           **{k: [v] for k, v in body_cues(body(28, 60), 500.0).items()}}
    rows = np.stack([cue_vector(nothing), cue_vector(one)])
    assert rows.shape == (2, len(cue_columns()))
    design = cue_design(rows, cue_columns())
    assert cue_design(rows[:1], cue_columns()).shape[1] == design.shape[1]  # data-independent
    assert np.isfinite(design).all()
    age = cue_columns().index("age_child")
    assert rows[1, age] == 7.0 and math.isnan(rows[0, age])


def test_stacked_fitter_learns_from_both_parts() -> None:
    from withsense_train.minor import logistic_fitter

    rng = np.random.default_rng(0)
    y = np.repeat([0, 1], 100)
    tower = rng.normal(size=(200, 5)) + y[:, None] * 0.5
    cue = (y + rng.normal(scale=0.3, size=200))[:, None]
    x = np.concatenate([tower, cue], 1).astype(np.float32)
    predict = stacked_fitter(logistic_fitter(1.0), logistic_fitter(1.0), 5)(x, y, np.ones(200))
    p = predict(x)
    assert p.shape == (200,) and p[y == 1].mean() > p[y == 0].mean() + 0.5


@pytest.mark.skipif(not (WEIGHTS / "pose_detection.tflite").is_file(),
                    reason="WITHSENSE_SIGHT_WEIGHTS: no sight weights (benchmarks/sight_weights.py DIR)")
def test_real_networks_find_no_person_in_a_blank_photo_and_name_missing_files(tmp_path) -> None:
    pytest.importorskip("ai_edge_litert")
    from sight_cues import PersonCueNets

    nets = PersonCueNets(WEIGHTS)
    cues = nets.photo_cues(Image.new("RGB", (320, 240), "gray"))
    vector = cue_vector(cues)
    assert vector[:3].tolist() == [0.0, 0.0, 0.0]
    with pytest.raises(FileNotFoundError, match="pose_detection.tflite"):
        PersonCueNets(tmp_path)


def test_person_and_face_crops_are_squares_around_the_detections() -> None:
    from minor_sight_crops import CROPS, crops

    image = Image.new("RGB", (200, 100), "white")
    person = Detection(np.zeros(4, np.float32), np.array([[50, 50], [50, 20], [0, 0], [0, 0]],
                                                         np.float32), 0.9)
    face = Detection(np.array([10, 10, 30, 40], np.float32), np.zeros((6, 2), np.float32), 0.9)
    people, heads = crops(image, [person] * (CROPS + 1), [face])
    assert len(people) == CROPS and [p.size for p in people] == [(60, 60)] * CROPS
    assert len(heads) == 1 and heads[0].size == (54, 54)
    corner = np.asarray(heads[0])[0, 0]  # the face square reaches past the photo's top-left
    assert corner.tolist() == [0, 0, 0]
