"""The demo's built-in gallery: real photos that scikit-image ships, with descriptions we wrote.

One description mentions a child on purpose ("my daughter"), so the demo shows a flagged photo
withheld behind the disclaimer in a restricted region.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image

GALLERY: dict[str, list[str]] = {
    "astronaut": [
        "Astronaut Eileen Collins in her orange flight suit in front of the US flag",
        "NASA portrait of the STS-93 commander, Johnson Space Center, 1998",
    ],
    "camera": [
        "A man in a coat with a camera on a tripod, in a park",
        "The cameraman, a classic black and white test photo from MIT",
    ],
    "chelsea": ["Our tabby cat Chelsea, photographed by my daughter"],
    "coffee": [
        "A cup of coffee with latte art on a saucer, on a wooden table",
        "Cappuccino at a cafe in Lisbon, shot on a Fujifilm X100V",
    ],
    "rocket": [
        "A rocket on the launch pad at sunrise, ready for lift-off",
        "Falcon 9 at Cape Canaveral before launch",
    ],
    "hubble_deep_field": [
        "The night sky full of distant galaxies and stars",
        "Hubble eXtreme Deep Field, thousands of galaxies in one exposure",
    ],
    "coins": [
        "Old coins laid out on a dark surface",
        "Greek coins from Pompeii, numismatic collection",
    ],
    "moon": ["The surface of the moon with craters"],
    "colorwheel": ["A color wheel with the full spectrum of hues"],
    "brick": ["A brick wall, close up", "Red brick texture, macro lens"],
    "grass": ["A lawn of green grass, close up"],
    "gravel": ["Grey gravel on a path"],
    "clock": ["A wall clock", "Kitchen clock, shot with a Nikon D750 and a 50mm lens"],
    "horse": ["The silhouette of a horse", "Black horse silhouette, Muybridge style"],
}


def gallery_photos() -> dict[str, bytes]:
    """Name -> JPEG bytes of each gallery photo."""
    from skimage import data

    photos = {}
    for name in GALLERY:
        array = np.asarray(getattr(data, name)())
        if array.dtype == bool:
            array = array.astype(np.uint8) * 255
        image = Image.fromarray(array).convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=92)
        photos[name] = buffer.getvalue()
    return photos


def write_gallery(folder: Path) -> dict[str, list[str]]:
    """Writes the gallery as JPEG files; returns file name -> descriptions."""
    folder.mkdir(parents=True, exist_ok=True)
    descriptions = {}
    for name, data in gallery_photos().items():
        (folder / f"{name}.jpg").write_bytes(data)
        descriptions[f"{name}.jpg"] = GALLERY[name]
    return descriptions
