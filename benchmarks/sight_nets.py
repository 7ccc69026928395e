"""MediaPipe's BlazePose / BlazeFace networks on plain numpy: the person and face detectors, the
body-landmark model and their decoding (SSD anchors, boxes, keypoints, non-maximum suppression).

The ``.tflite`` files come from the ``mediapipe`` wheel on PyPI (Apache-2.0; see
``sight_weights``) and run under ``ai-edge-litert`` (the LiteRT interpreter);
mediapipe itself is not installed (its protobuf<5 pin does not fit ours). The anchor and decoder
settings are those of mediapipe's own graphs (``pose_detection_cpu.pbtxt``,
``face_detection_full_range.pbtxt``, ``pose_landmark_by_roi_cpu.pbtxt``).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass(frozen=True)
class SsdSpec:
    """An SSD detector's input size, anchor layout and decoding (mediapipe's options)."""

    size: int
    strides: tuple[int, ...]
    interpolated: bool  # a second anchor per cell and layer (interpolated_scale_aspect_ratio)
    keypoints: int
    min_score: float
    iou: float = 0.3


POSE_DETECTOR = SsdSpec(224, (8, 16, 32, 32, 32), True, 4, 0.5)
FACE_DETECTOR = SsdSpec(192, (4,), False, 6, 0.6)
LANDMARK_SIZE = 256
BODY_LANDMARKS = 33  # of the landmark model's 39 (the last 6 are its own ROI helpers)


@dataclass
class Detection:
    """A box [x0, y0, x1, y1] and keypoints [K, 2] in image pixels, with the detector's score."""

    box: np.ndarray
    keypoints: np.ndarray
    score: float


def ssd_anchors(spec: SsdSpec) -> np.ndarray:
    """[A, 2] anchor centres in [0, 1] (fixed anchor size: only centres matter)."""
    centres = []
    layer = 0
    while layer < len(spec.strides):
        same = layer
        while same < len(spec.strides) and spec.strides[same] == spec.strides[layer]:
            same += 1
        per_cell = (same - layer) * (2 if spec.interpolated else 1)
        cells = math.ceil(spec.size / spec.strides[layer])
        grid = (np.arange(cells) + 0.5) / cells
        ys, xs = np.meshgrid(grid, grid, indexing="ij")
        cell_centres = np.stack([xs.ravel(), ys.ravel()], 1)
        centres.append(np.repeat(cell_centres, per_cell, axis=0))
        layer = same
    return np.concatenate(centres).astype(np.float32)


def letterbox(image: Image.Image, size: int) -> tuple[np.ndarray, float, float, float]:
    """The image scaled to fit ``size`` x ``size``, centred on black, as [-1, 1] float; and the
    scale and offsets that map letterbox pixels back to the image's."""
    scale = size / max(image.size)
    width, height = max(1, round(image.width * scale)), max(1, round(image.height * scale))
    canvas = Image.new("RGB", (size, size))
    left, top = (size - width) // 2, (size - height) // 2
    canvas.paste(image.resize((width, height), Image.BILINEAR), (left, top))
    pixels = np.asarray(canvas, dtype=np.float32) / 127.5 - 1.0
    return pixels[None], scale, float(left), float(top)


def decode(raw_boxes: np.ndarray, raw_scores: np.ndarray, anchors: np.ndarray, spec: SsdSpec,
           scale: float, left: float, top: float) -> list[Detection]:
    """Boxes and keypoints above the score threshold, in image pixels, after greedy NMS."""
    scores = 1.0 / (1.0 + np.exp(-np.clip(raw_scores.reshape(-1).astype(np.float64), -100, 100)))
    keep = np.flatnonzero(scores >= spec.min_score)
    if keep.size == 0:
        return []
    raw = raw_boxes.reshape(len(anchors), -1)[keep] / spec.size
    centre = raw[:, 0:2] + anchors[keep]
    half = raw[:, 2:4] / 2
    boxes = np.concatenate([centre - half, centre + half], 1)
    points = raw[:, 4:4 + 2 * spec.keypoints].reshape(-1, spec.keypoints, 2) + anchors[keep][:, None]
    to_image = np.array([left, top], dtype=np.float32)
    boxes = (boxes * spec.size - np.tile(to_image, 2)) / scale
    points = (points * spec.size - to_image) / scale
    return weighted_nms([Detection(b, p, float(q)) for b, p, q in
                         zip(boxes, points, scores[keep], strict=True)], spec.iou)


def weighted_nms(found: list[Detection], iou: float) -> list[Detection]:
    """mediapipe's weighted non-maximum suppression: each kept detection (best score first) is
    the score-weighted mean of the boxes and keypoints that overlap it, which steadies them."""
    order = sorted(found, key=lambda d: -d.score)
    kept: list[Detection] = []
    while order:
        best = order[0]
        group = [d for d in order if _iou(best.box, d.box) >= iou]
        order = [d for d in order if _iou(best.box, d.box) < iou]
        weights = np.array([d.score for d in group])[:, None]
        kept.append(Detection(
            (np.stack([d.box for d in group]) * weights).sum(0) / weights.sum(),
            (np.stack([d.keypoints for d in group]) * weights[:, :, None]).sum(0) / weights.sum(),
            best.score))
    return kept


def _iou(a: np.ndarray, b: np.ndarray) -> float:
    width = max(0.0, min(a[2], b[2]) - max(a[0], b[0]))
    height = max(0.0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = width * height
    union = (a[2] - a[0]) * (a[3] - a[1]) + (b[2] - b[0]) * (b[3] - b[1]) - inter
    return float(inter / union) if union > 0 else 0.0


class TfliteNet:
    """One ``.tflite`` network under the LiteRT interpreter, one thread."""

    def __init__(self, path: Path, threads: int = 1):
        from ai_edge_litert.interpreter import Interpreter

        self.interpreter = Interpreter(model_path=str(path), num_threads=threads)
        self.interpreter.allocate_tensors()
        self.input = self.interpreter.get_input_details()[0]["index"]
        self.outputs = [d["index"] for d in self.interpreter.get_output_details()]

    def __call__(self, pixels: np.ndarray) -> list[np.ndarray]:
        self.interpreter.set_tensor(self.input, np.ascontiguousarray(pixels, dtype=np.float32))
        self.interpreter.invoke()
        return [self.interpreter.get_tensor(i) for i in self.outputs]


class SsdDetector:
    """BlazePose's person detector or BlazeFace (full range) on the whole photo, letterboxed."""

    def __init__(self, path: Path, spec: SsdSpec, threads: int = 1):
        self.net, self.spec, self.anchors = TfliteNet(path, threads), spec, ssd_anchors(spec)

    def __call__(self, image: Image.Image, tiles: bool = False) -> list[Detection]:
        """Detections on the whole photo; with ``tiles`` also on 2 x 2 overlapping tiles (each
        60% of the photo's sides, so small people and faces get more pixels), merged by NMS."""
        found = self._detect(image, 0.0, 0.0)
        if tiles:
            for box in tile_boxes(image.width, image.height):
                found += self._detect(image.crop(box), float(box[0]), float(box[1]))
        return weighted_nms(found, self.spec.iou) if tiles else found

    def _detect(self, image: Image.Image, dx: float, dy: float) -> list[Detection]:
        pixels, scale, left, top = letterbox(image, self.spec.size)
        raw_boxes, raw_scores = self.net(pixels)[:2]
        shift = np.array([dx, dy], dtype=np.float32)
        return [Detection(d.box + np.tile(shift, 2), d.keypoints + shift, d.score)
                for d in decode(raw_boxes, raw_scores, self.anchors, self.spec, scale, left, top)]


def tile_boxes(width: int, height: int, share: float = 0.6) -> list[tuple[int, int, int, int]]:
    """2 x 2 overlapping tiles (left, top, right, bottom), each ``share`` of the sides."""
    tile_w, tile_h = round(width * share), round(height * share)
    return [(left, top, left + tile_w, top + tile_h)
            for top in (0, height - tile_h) for left in (0, width - tile_w)]


@dataclass
class Pose:
    """33 body landmarks [33, 2] in image pixels, their visibility [33] and the presence score."""

    points: np.ndarray
    visibility: np.ndarray
    presence: float


def body_roi(person: Detection) -> tuple[np.ndarray, float, float]:
    """The landmark model's square crop from a person detection (mediapipe's alignment): centre
    at the hip keypoint, side 2.5 x the hip-to-top distance, rotated so the body stands up."""
    hip, top = person.keypoints[0], person.keypoints[1]
    side = 2.0 * float(np.linalg.norm(top - hip)) * 1.25
    angle = math.pi / 2 - math.atan2(-(top[1] - hip[1]), top[0] - hip[0])
    return hip, max(side, 1.0), angle


class LandmarkNet:
    """BlazePose's full body-landmark model on a person's rotated crop."""

    def __init__(self, path: Path, threads: int = 1):
        self.net = TfliteNet(path, threads)

    def __call__(self, image: Image.Image, person: Detection) -> Pose:
        centre, side, angle = body_roi(person)
        step = side / LANDMARK_SIZE
        cos, sin = math.cos(angle) * step, math.sin(angle) * step
        half = LANDMARK_SIZE / 2
        crop = image.transform(
            (LANDMARK_SIZE, LANDMARK_SIZE), Image.AFFINE,
            (cos, -sin, centre[0] - half * (cos - sin), sin, cos, centre[1] - half * (sin + cos)),
            resample=Image.BILINEAR)
        outputs = self.net(np.asarray(crop, dtype=np.float32)[None] / 255.0)
        raw = outputs[0].reshape(-1, 5)[:BODY_LANDMARKS]
        local = raw[:, :2] - half
        rotation = np.array([[math.cos(angle), -math.sin(angle)],
                             [math.sin(angle), math.cos(angle)]], dtype=np.float32)
        points = centre + (local * step) @ rotation.T
        visibility = 1.0 / (1.0 + np.exp(-raw[:, 3]))
        return Pose(points.astype(np.float32), visibility.astype(np.float32),
                    float(np.asarray(outputs[1]).reshape(-1)[0]))
