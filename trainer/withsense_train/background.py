"""Out-of-domain negatives for the visual minor detector: photos without people that installed
packages ship (scikit-image's and scikit-learn's sample images, none of the demo gallery's).

The customer's photos are nearly all people and dogs, so a detector trained on them alone has
never seen a product shot, a document or a landscape, and gives such a photo about the base rate
of children (measured: 7 of the 14 demo-gallery photos, coins and a clock among them, above the
threshold). A few such photos, each with seeded random crops, as "no child" rows teach it that
"nothing like a person" means "no child" (docs/compliance.md measures the trade).
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
from PIL import Image

# scikit-image data files that are not in the demo gallery (withsense.gallery), and
# scikit-learn's two sample photos.
SKIMAGE_FILES = ("cell.png", "text.png", "page.png", "retina.jpg", "ihc.png", "phantom.png",
                 "microaneurysms.png", "motorcycle_left.png", "clock_motion.png", "color.png",
                 "chessboard_RGB.png")
SKLEARN_FILES = ("china.jpg", "flower.jpg")
CROPS = 7  # seeded random crops per photo, besides the whole photo


def background_files() -> list[Path]:
    import skimage
    import sklearn

    skimage_dir = Path(skimage.__file__).parent / "data"
    sklearn_dir = Path(sklearn.__file__).parent / "datasets" / "images"
    files = [skimage_dir / name for name in SKIMAGE_FILES] + [sklearn_dir / n for n in SKLEARN_FILES]
    return [path for path in files if path.is_file()]


def background_images(seed: int = 0) -> list[Image.Image]:
    """Each photo and CROPS random crops of it (35-80% of each side), seeded."""
    rng = random.Random(seed)
    images = []
    for path in background_files():
        with Image.open(path) as opened:
            image = opened.convert("RGB")
        width, height = image.size
        images.append(image)
        for _ in range(CROPS):
            scale = rng.uniform(0.35, 0.8)
            w, h = int(width * scale), int(height * scale)
            left, top = rng.randint(0, width - w), rng.randint(0, height - h)
            images.append(image.crop((left, top, left + w, top + h)))
    return images


def background_features(image_tower, tta: str, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """(pooled, logits) of the background images with the heads' test-time augmentation."""
    from withsense.model.runtime import pixel_features

    images = background_images(seed)
    pooled, logits = [], []
    for start in range(0, len(images), 16):
        features = pixel_features(image_tower, image_tower.preprocess(images[start:start + 16]), tta)
        pooled.append(features.pooled.float().numpy())
        logits.append(features.logits.float().numpy())
    return np.concatenate(pooled), np.concatenate(logits)
