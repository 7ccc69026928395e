"""What draft (DCT-scaled) JPEG decoding does to the vectors and to retrieval, and what it saves.

The customer's photos are about 500x375: no DCT scale keeps them at the tower's input size, so
draft decoding never applies to them and their vectors are bit-for-bit those of a full decode.
Photos straight from a camera are 10-50 MP. As stand-ins, each customer photo is upscaled 4x
(2000x1500, bicubic, JPEG quality 92) and decoded three ways: in full, at the worker's draft
rule (both sides >= twice the tower's resize side, `protocol.draft_size_for`), and at a tighter
rule (both sides >= the resize side). For each way: decode + preprocess time per photo, the
cosine of its vectors to the full decode's, and caption -> photo retrieval R@1/5/10 over the
photos with their own captions (5 per photo) as queries.

    nice -n 15 .venv/bin/python benchmarks/bench_draft.py --photos 200
"""

from __future__ import annotations

import argparse
import io
import time
from pathlib import Path

import numpy as np
import torch
from bench_utils import load_note, markdown_table
from PIL import Image
from withsense.config import WorkerSettings
from withsense.descriptions import read_descriptions
from withsense.model.runtime import ModelRuntime
from withsense.worker import protocol

CUSTOMER = Path("/work/shared/data/withsense")
UPSCALE = 4


def camera_sized(path: Path) -> bytes:
    with Image.open(path) as image:
        big = image.convert("RGB").resize((image.width * UPSCALE, image.height * UPSCALE),
                                          Image.Resampling.BICUBIC)
    buffer = io.BytesIO()
    big.save(buffer, "JPEG", quality=92)
    return buffer.getvalue()


def recall_at(image_vectors: np.ndarray, text_vectors: np.ndarray, owners: np.ndarray,
              ks: tuple[int, ...] = (1, 5, 10)) -> list[float]:
    """Share of captions whose own photo is among the top k photos by cosine."""
    scores = text_vectors @ image_vectors.T
    own = scores[np.arange(len(owners)), owners]
    rank = (scores > own[:, None]).sum(axis=1)
    return [float((rank < k).mean()) for k in ks]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--photos", type=int, default=200)
    parser.add_argument("--batch", type=int, default=16)
    args = parser.parse_args()
    torch.set_num_threads(1)
    paths = sorted((CUSTOMER / "train_images").glob("*.jpg"))[:args.photos]
    if not paths:
        raise SystemExit(f"needs the customer's photos in {CUSTOMER}")
    captions = read_descriptions(CUSTOMER / "extra" / "captions.txt")
    runtime = ModelRuntime(image_backend=WorkerSettings().image_backend)
    tower = runtime.image_tower
    resize_side = protocol.draft_size_for(tower.image_size,
                                          float(tower.data_config.get("crop_pct") or 0.875)) // 2
    print(f"# Draft decoding: {len(paths)} customer photos upscaled {UPSCALE}x to camera size, "
          f"tower {tower.timm_name} at {tower.image_size} px, {load_note()}")
    originals = [p.read_bytes() for p in paths]
    photos = [camera_sized(p) for p in paths]
    ways = {"full decode (baseline)": (photos, None),
            f"draft, sides >= {2 * resize_side} (worker default)": (photos, 2 * resize_side),
            f"draft, sides >= {resize_side}": (photos, resize_side),
            "the original small photo (reference)": (originals, None)}
    texts = [(i, text) for i, p in enumerate(paths) for text in captions.get(p.name, [])]
    text_vectors = runtime.embed_texts([t for _, t in texts])
    owners = np.array([i for i, _ in texts])
    settings = WorkerSettings(jpeg_draft=True)
    vectors, seconds = {}, {}
    for name, (blobs, draft) in ways.items():
        started = time.perf_counter()
        pixels = torch.stack([runtime.preprocess_image(
            protocol.decode_image(b, 0, settings, draft_size=draft)) for b in blobs])
        seconds[name] = (time.perf_counter() - started) / len(blobs)
        vectors[name] = np.concatenate([runtime.embed_pixels(pixels[i:i + args.batch])
                                        for i in range(0, len(blobs), args.batch)])
    base = vectors["full decode (baseline)"]
    rows = []
    for name, v in vectors.items():
        cosine = (v * base).sum(axis=1)
        r1, r5, r10 = recall_at(v, text_vectors, owners)
        rows.append([name, f"{1000 * seconds[name]:.1f}", f"{cosine.min():.4f}",
                     f"{np.median(cosine):.4f}", f"{r1:.3f}", f"{r5:.3f}", f"{r10:.3f}"])
    print(f"\n{len(texts)} caption queries, {load_note()}\n")
    print(markdown_table(["decode", "decode + preprocess, ms / photo", "min cosine to full",
                          "median cosine", "R@1", "R@5", "R@10"], rows))


if __name__ == "__main__":
    main()
