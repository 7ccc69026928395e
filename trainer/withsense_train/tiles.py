"""Tiles of a photo for the visual minor detector: children are often a small part of the frame.

The tower sees a photo shrunk to 260 pixels; a child of 40 pixels in a 500-pixel crowd shot is
then a few pixels of one feature-map cell. A tile, a part of the photo run through the tower's
own preprocessing (resize, centre crop), shows such a child at about twice the size.
``TILE_GRID`` x ``TILE_GRID`` tiles, each ``TILE_SPAN`` of the photo's width and height, overlap
by ``2 * TILE_SPAN - 1`` so that a figure on a tile border is whole in at least one tile.

It lives in the trainer: the tile routes were measured (docs/compliance.md, run 3) and not
shipped, so the worker does not make tiles.

Every photo gives exactly ``TILES`` tiles, whatever its shape: a tile is at least one pixel on
each side, so a 1 x 1 photo gives four copies of itself and a 4000 x 10 strip four strips.
"""

from __future__ import annotations

from PIL import Image

TILE_GRID = 2  # tiles per side
TILE_SPAN = 0.6  # each tile's share of the photo's width and height
TILES = TILE_GRID * TILE_GRID


def tile_boxes(width: int, height: int, grid: int = TILE_GRID,
               span: float = TILE_SPAN) -> list[tuple[int, int, int, int]]:
    """(left, top, right, bottom) of the grid x grid tiles of a width x height photo, row by
    row; each at least 1 pixel, inside the photo, the first at the top left corner and the last
    at the bottom right."""
    if width < 1 or height < 1:
        raise ValueError(f"a photo of {width} x {height} pixels has no tiles")
    if grid < 1 or not 0.0 < span <= 1.0:
        raise ValueError(f"tile grid {grid} and span {span} must be >= 1 and in (0, 1]")

    def spans(size: int) -> list[tuple[int, int]]:
        length = max(1, round(size * span))
        if grid == 1:
            start = (size - length) // 2
            return [(start, start + length)]
        starts = [round(i * (size - length) / (grid - 1)) for i in range(grid)]
        return [(start, start + length) for start in starts]

    return [(left, top, right, bottom) for top, bottom in spans(height)
            for left, right in spans(width)]


def tile_images(image: Image.Image, grid: int = TILE_GRID,
                span: float = TILE_SPAN) -> list[Image.Image]:
    """The photo's tiles (``tile_boxes``), in RGB."""
    image = image.convert("RGB")
    return [image.crop(box) for box in tile_boxes(image.width, image.height, grid, span)]
