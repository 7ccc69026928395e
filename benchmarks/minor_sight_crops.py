"""Tower features of the people and faces in each photo, for the minor-detector comparison
(docs/compliance.md, run 5, "person crops"): BlazePose's person detector and BlazeFace (full
range; both on the photo and 2 x 2 tiles, ``sight_nets``) find them, and each crop goes through
the same image tower (Lite2, ONNX Runtime, one thread) as the photo. A small child far away is
then seen at the tower's full resolution, like the fixed tiles of run 3 but aimed at people.

    nice -n 15 python benchmarks/minor_sight_crops.py DATA/train_images WEIGHTS CACHE crops.npz

Per photo, up to ``CROPS`` persons (the square around BlazePose's body circle) and ``CROPS``
faces (the face box widened 1.8x, hair and chin included), best scores first; ``detector_inputs``
of each crop. Each photo is kept in ``OUT.parts/`` as it comes (resumable). Writes ``names``,
``persons`` [N, CROPS, F] and ``faces`` [N, CROPS, F] (NaN where there is no such crop) and
``ms_per_photo`` (median CPU ms, detection and the crops' tower passes).
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

CROPS = 2
FACE_WIDEN = 1.8


def square(centre: np.ndarray, side: float, image: Image.Image) -> Image.Image:
    half = max(side, 8.0) / 2
    box = (centre[0] - half, centre[1] - half, centre[0] + half, centre[1] + half)
    return image.crop(tuple(int(round(v)) for v in box))  # outside the photo: black


def crops(image: Image.Image, persons, faces) -> tuple[list[Image.Image], list[Image.Image]]:
    people = [square(d.keypoints[0], 2.0 * float(np.linalg.norm(d.keypoints[1] - d.keypoints[0])),
                     image) for d in persons[:CROPS]]
    heads = [square((d.box[:2] + d.box[2:]) / 2, FACE_WIDEN * float(max(d.box[2:] - d.box[:2])),
                    image) for d in faces[:CROPS]]
    return people, heads


def main(folder: str, weights: str, cache: str, out: str) -> None:
    import torch
    from sight_nets import FACE_DETECTOR, POSE_DETECTOR, SsdDetector
    from tqdm import tqdm
    from withsense.model.catalog import model_config
    from withsense.model.minor import detector_inputs
    from withsense_train.features import FeatureCache

    torch.set_num_threads(1)
    tower = FeatureCache(model_config("lite2"), Path(cache), progress=False).image_tower
    serving = tower.with_backend("auto")
    person_net = SsdDetector(Path(weights) / "pose_detection.tflite", POSE_DETECTOR)
    face_net = SsdDetector(Path(weights) / "face_detection_full_range_sparse.tflite", FACE_DETECTOR)

    def embed(images: list[Image.Image]) -> np.ndarray:
        features = serving.features_from_pixels(serving.preprocess(images))
        return detector_inputs(features.pooled.float().numpy(), features.logits.float().numpy())

    width = embed([Image.new("RGB", (64, 64))]).shape[1]
    paths = sorted(Path(folder).glob("*.jpg"))
    random.Random(0).shuffle(paths)
    parts = Path(f"{out}.parts")
    parts.mkdir(exist_ok=True)
    for path in tqdm(paths, desc="person crops"):
        part = parts / f"{path.name}.npz"
        if part.exists():
            continue
        started = time.process_time()
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        people, heads = crops(image, person_net(image, tiles=True), face_net(image, tiles=True))
        found = embed(people + heads) if people or heads else np.zeros((0, width), np.float32)
        rows = {}
        for name, rows_found in (("persons", found[:len(people)]), ("faces", found[len(people):])):
            rows[name] = np.full((CROPS, width), np.nan, np.float32)
            rows[name][:len(rows_found)] = rows_found
        np.savez(part, ms=np.float32((time.process_time() - started) * 1000), **rows)
    collect(paths, parts, out)


def collect(paths: list[Path], parts: Path, out: str) -> None:
    done = [(p.name, np.load(parts / f"{p.name}.npz")) for p in paths
            if (parts / f"{p.name}.npz").exists()]
    ms = np.asarray([float(row["ms"]) for _, row in done])
    np.savez(out, names=np.asarray([name for name, _ in done]),
             persons=np.stack([row["persons"] for _, row in done]),
             faces=np.stack([row["faces"] for _, row in done]), ms_per_photo=np.float32(np.median(ms)))
    print(f"{len(done)} photos, median {np.median(ms):.0f} ms CPU per photo -> {out}")


if __name__ == "__main__":
    main(*sys.argv[1:5])
