"""Photo vectors at scale that look like ours, for the store and scale benchmarks.

Random unit vectors in 384 dimensions are HNSW's worst case: every point is about equally far
from every other, so graph search has nothing to follow. Our photo embeddings are not like
that: they crowd into a few directions (a low intrinsic dimension) and into topics. So the
generator starts from the real thing, the shipped model's image vectors of the customer's 1,000
photos, and makes new photos around them:

    centre  = normalise((1 - w) * photo_i + w * photo_j)    i, j real photos, w ~ U(0, 0.5)
    vector  = normalise(centre + s * z),   z ~ N(0, C)

* Mixtures of two real photos give new scenes between real ones (a dog on a beach between a dog
  photo and a beach photo), so the set is not 1,000 tight clusters.
* The noise has the covariance C of the real photo vectors (their real spread, anisotropic: a
  few directions carry most of the variance), not an isotropic ball.
* Its scale s is fitted so that a generated photo lies as far from its centre as a real photo
  from its nearest real neighbour (the medians of the two cosines agree).

A generated photo inherits the `minor` flag of its main real photo (i), so flagged photos sit
together as they do for real, which is what the `minor` filter's cost depends on.

Queries are the real caption embeddings (5 per photo, through the model's text head): text
vectors of the other modality, as a search sends them.

Generation is deterministic and blockwise (block b is drawn from the seed and b alone), so the
first 100k vectors of the 1M set are the 100k set, and any slice can be made on its own.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

#: Vectors per generated block (the unit of determinism).
BLOCK = 8192
#: Where the scale sets, their ground truth and prefilled stores are kept (outside the
#: repository: 1.5 GB of vectors and about 7 GB of store at 1M photos).
SCRATCH = Path(os.environ.get("WITHSENSE_SCALE_DIR", "/work/scratch/scale"))


@dataclass(frozen=True)
class RealVectors:
    """The model's vectors of the customer's photos and captions."""

    image: np.ndarray  # float32 [photos, dim], unit length
    captions: np.ndarray  # float32 [captions, dim], unit length
    caption_owner: np.ndarray  # int [captions]: index of the captioned photo
    minor: np.ndarray  # bool [photos]: a caption mentions a child
    version: str = ""  # the model version that made them


@dataclass(frozen=True)
class NoiseModel:
    """z = standard normal @ basis has the real vectors' covariance; scale fitted (see top)."""

    basis: np.ndarray  # float32 [dim, dim]
    scale: float


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def real_vectors(data_dir: Path, cache_dir: Path) -> RealVectors:
    """The shipped artifact's vectors of the photos and captions in `data_dir` (the customer's
    format), from the tower-feature cache (`cache_dir`; computed there when missing)."""
    import torch
    from withsense.compliance import mentions_child
    from withsense.model.artifact import load_artifact
    from withsense.model.runtime import resolve_artifact_dir
    from withsense_train.evaluate import model_config_for
    from withsense_train.features import FeatureCache

    artifact = load_artifact(resolve_artifact_dir(None))
    model = artifact.model.eval()
    cache = FeatureCache(model_config_for(artifact.config), cache_dir, progress=False)
    photos = sorted((data_dir / "train_images").glob("*.jpg"))
    pooled, logits = cache.image(photos, tta=model.config.tta)
    index = {p.name: i for i, p in enumerate(photos)}
    texts, owner = [], []
    for line in (data_dir / "extra" / "captions.txt").read_text().splitlines():
        key, text = line.split("\t", 1)
        texts.append(text.strip())
        owner.append(index[key.split("#")[0]])
    with torch.inference_mode():
        image = model.embed_image(torch.from_numpy(pooled), torch.from_numpy(logits))
        captions = model.embed_text(torch.from_numpy(cache.text(texts)))
    minor = np.zeros(len(photos), bool)
    for text, i in zip(texts, owner, strict=True):
        minor[i] |= bool(mentions_child(text))
    return RealVectors(unit(image.float().numpy()), unit(captions.float().numpy()),
                       np.asarray(owner), minor, artifact.version)


def cached_real_vectors(data_dir: Path, cache_dir: Path, path: Path) -> RealVectors:
    """`real_vectors`, kept in `path` (.npz) after the first call."""
    if path.exists():
        with np.load(path) as f:
            return RealVectors(f["image"], f["captions"], f["caption_owner"], f["minor"],
                               str(f["version"]))
    real = real_vectors(data_dir, cache_dir)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, image=real.image, captions=real.captions, caption_owner=real.caption_owner,
             minor=real.minor, version=real.version)
    return real


def nearest_neighbour_cosines(vectors: np.ndarray) -> np.ndarray:
    """Each vector's cosine to its nearest other vector."""
    sims = vectors @ vectors.T
    np.fill_diagonal(sims, -np.inf)
    return sims.max(axis=1)


def fit_noise(image: np.ndarray, seed: int = 0) -> NoiseModel:
    """The real vectors' covariance, and the scale at which a generated vector's cosine to its
    centre has the median of the real nearest-neighbour cosines (bisection)."""
    eigenvalues, eigenvectors = np.linalg.eigh(np.cov(image, rowvar=False).astype(np.float64))
    basis = (eigenvectors * np.sqrt(np.clip(eigenvalues, 0, None))).T.astype(np.float32)
    target = float(np.median(nearest_neighbour_cosines(image)))
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((2000, image.shape[1])).astype(np.float32) @ basis
    centres = image[rng.integers(0, len(image), len(z))]
    low, high = 0.0, 10.0
    for _ in range(40):
        scale = (low + high) / 2
        cosine = float(np.median(np.sum(unit(centres + scale * z) * centres, axis=1)))
        low, high = (scale, high) if cosine > target else (low, scale)
    return NoiseModel(basis, (low + high) / 2)


def generate_block(real: RealVectors, noise: NoiseModel, block: int, seed: int
                   ) -> tuple[np.ndarray, np.ndarray]:
    """(unit vectors [BLOCK, dim], minor flags [BLOCK]) of block number `block`."""
    rng = np.random.default_rng([seed, block])
    photos = len(real.image)
    main = rng.integers(0, photos, BLOCK)
    other = rng.integers(0, photos, BLOCK)
    weight = rng.uniform(0.0, 0.5, (BLOCK, 1)).astype(np.float32)
    centres = unit((1 - weight) * real.image[main] + weight * real.image[other])
    z = rng.standard_normal((BLOCK, real.image.shape[1])).astype(np.float32) @ noise.basis
    return unit(centres + noise.scale * z), real.minor[main]


def realistic_vectors(real: RealVectors, n: int, *, seed: int = 0, start: int = 0,
                      noise: NoiseModel | None = None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Vectors `start` .. `start + n` of the endless generated set, in chunks of at most BLOCK:
    (unit vectors float32 [k, dim], minor flags [k])."""
    if n < 0 or start < 0:
        raise ValueError(f"n and start must be >= 0, got n={n}, start={start}")
    noise = noise or fit_noise(real.image, seed)
    position, end = start, start + n
    while position < end:
        block, offset = divmod(position, BLOCK)
        vectors, minor = generate_block(real, noise, block, seed)
        take = min(BLOCK - offset, end - position)
        yield vectors[offset:offset + take], minor[offset:offset + take]
        position += take


def generated_set(real: RealVectors, n: int, path: Path, *, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """The first n generated vectors and flags, kept in `path` (.npy memory map, and a .minor.npy
    beside it) so that a 1M set is made once."""
    flags_path = path.with_suffix(".minor.npy")
    if path.exists() and flags_path.exists():
        vectors = np.load(path, mmap_mode="r")
        if len(vectors) >= n:
            return vectors[:n], np.load(flags_path)[:n]
    path.parent.mkdir(parents=True, exist_ok=True)
    vectors = np.lib.format.open_memmap(path, mode="w+", dtype=np.float32,
                                        shape=(n, real.image.shape[1]))
    flags = np.zeros(n, bool)
    position = 0
    for chunk, minor in realistic_vectors(real, n, seed=seed):
        vectors[position:position + len(chunk)] = chunk
        flags[position:position + len(chunk)] = minor
        position += len(chunk)
    vectors.flush()
    np.save(flags_path, flags)
    return np.load(path, mmap_mode="r"), flags
