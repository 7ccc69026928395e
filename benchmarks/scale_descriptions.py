"""Descriptions for the generated photos of scale_vectors.py, so that a store at scale pays for
them as a described gallery does.

The service's photos carry what people wrote about them, and a search of a described store does
more work: the descriptions' prefetch (a MaxSim multivector graph), their keywords, the
evidence of each candidate. A generated photo is described by the captions of the **real photo
nearest to it** (usually the one it was generated around):

* the texts as the customer wrote them (its first `count` captions), in the payload and as its
  keyword vector, as `withsense index` stores them;
* their vectors (the model's caption embeddings) plus search_gallery's description noise, so
  no two generated photos share a description vector (a caption's cosine to its noisy copy is
  about 0.93);
* a photo whose captions mention a child is flagged `minor`, whatever its generator's flag said.

Deterministic: photo i's noise is drawn from the seed and i's block of `UPSERT` photos alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scale_vectors import RealVectors
from search_gallery import DESCRIPTION_NOISE, noisy

#: The most captions a real photo has (the customer's data: five).
MAX_DESCRIPTIONS = 5


@dataclass(frozen=True)
class Described:
    """Descriptions of a run of generated photos, one entry each."""

    texts: list[list[str]]
    vectors: list[np.ndarray]  # float32 [count, dim] each, unit length
    keywords: list  # withsense.keywords.SparseVector each
    minor: np.ndarray  # bool: the nearest real photo's captions mention a child


class Describer:
    """`describe(vectors, start)`: descriptions of generated photos start, start + 1, ..."""

    def __init__(self, real: RealVectors, texts: list[str], count: int, seed: int = 0) -> None:
        if not 1 <= count <= MAX_DESCRIPTIONS:
            raise ValueError(f"descriptions a photo must be 1 to {MAX_DESCRIPTIONS}, got {count}")
        from withsense.keywords import document_vector

        self.real, self.seed = real, seed
        # Each real photo's first `count` captions, their texts and the keywords of those texts.
        order = np.argsort(real.caption_owner, kind="stable")
        starts = np.searchsorted(real.caption_owner[order], np.arange(len(real.image)))
        self.captions = [order[s:s + count] for s in starts]
        self.texts = [[texts[c] for c in picked] for picked in self.captions]
        self.keywords = [document_vector(t) for t in self.texts]

    def describe(self, vectors: np.ndarray, start: int) -> Described:
        owners = np.argmax(np.asarray(vectors) @ self.real.image.T, axis=1)
        rng = np.random.default_rng([self.seed, start])
        rows = [noisy(rng, self.real.captions[self.captions[o]], DESCRIPTION_NOISE) for o in owners]
        return Described([self.texts[o] for o in owners], rows, [self.keywords[o] for o in owners],
                         self.real.minor[owners])
