"""Tiles of a photo (odd shapes included) and the tile-pooling fitters of the minor detector."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image
from withsense_train.minor_tiles import (
    full_then_max,
    instance_fitter,
    lse_fitter,
    pool,
    smooth_max,
)
from withsense_train.tiles import TILES, tile_boxes, tile_images


@pytest.mark.parametrize("size", [(1, 1), (2, 3), (7, 5), (4000, 10), (10, 4000), (500, 375)])
def test_every_photo_gives_the_same_number_of_tiles_inside_it(size):
    width, height = size
    boxes = tile_boxes(width, height)
    assert len(boxes) == TILES
    for left, top, right, bottom in boxes:
        assert 0 <= left < right <= width and 0 <= top < bottom <= height
    assert boxes[0][:2] == (0, 0) and boxes[-1][2:] == (width, height)
    tiles = tile_images(Image.new("L", size, 128))
    assert len(tiles) == TILES and all(t.mode == "RGB" and min(t.size) >= 1 for t in tiles)


def test_tiles_overlap_and_cover_the_photo():
    boxes = tile_boxes(500, 375)
    assert boxes[0] == (0, 0, 300, 225) and boxes[1] == (200, 0, 500, 225)
    assert boxes[2] == (0, 150, 300, 375)
    covered = np.zeros((375, 500), bool)
    for left, top, right, bottom in boxes:
        covered[top:bottom, left:right] = True
    assert covered.all()


def test_tile_content_is_the_crop():
    photo = Image.fromarray(np.arange(12 * 10 * 3, dtype=np.uint8).reshape(10, 12, 3) % 251)
    for box, tile in zip(tile_boxes(12, 10), tile_images(photo), strict=True):
        assert np.array_equal(np.asarray(tile), np.asarray(photo)[box[1]:box[3], box[0]:box[2]])


def test_bad_tile_requests_are_clear_errors():
    with pytest.raises(ValueError, match="no tiles"):
        tile_boxes(0, 5)
    with pytest.raises(ValueError, match="span"):
        tile_boxes(5, 5, span=1.5)


def test_smooth_max_lies_between_mean_and_max():
    import torch

    scores = torch.tensor([[0.0, 0.0, 3.0], [1.0, 1.0, 1.0]], dtype=torch.float64)
    sharp, soft = smooth_max(scores, 50.0), smooth_max(scores, 1e-3)
    assert sharp[0] == pytest.approx(3.0 - np.log(3) / 50) and soft[0] == pytest.approx(1.0, abs=1e-2)
    assert smooth_max(scores, 4.0)[1] == pytest.approx(1.0)
    assert pool(np.array([[0.1, 0.9]]), "max")[0] == 0.9
    with pytest.raises(ValueError, match="pool"):
        pool(np.zeros((1, 2)), "median")


def bags(n: int = 200, views: int = 5, features: int = 6, seed: int = 0):
    """Photos as bags of views; a child photo has the child signal in ONE random tile only."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, (n, views, features)).astype(np.float32)
    y = (rng.random(n) < 0.5).astype(np.int64)
    where = rng.integers(1, views, n)
    x[np.flatnonzero(y), where[y == 1], 0] += 4.0
    return x, y, np.ones(n)


@pytest.mark.parametrize("fitter", [full_then_max(1.0), instance_fitter(1.0, "max"),
                                    instance_fitter(1.0, "mean"), lse_fitter(1.0, 4.0)])
def test_tile_fitters_find_a_child_in_one_tile(fitter):
    x, y, w = bags()
    test_x, test_y, _ = bags(seed=1)
    p = fitter(x, y, w)(test_x)
    assert p.shape == (len(test_x),) and np.all((p >= 0) & (p <= 1))
    if fitter.__qualname__.startswith("full_then_max"):
        return  # the full frame (view 0) carries no signal here: nothing to learn from it
    from sklearn.metrics import roc_auc_score

    assert roc_auc_score(test_y, p) > 0.8  # mean pooling dilutes one tile of five most


def test_lse_fitter_is_deterministic_and_checks_its_input():
    x, y, w = bags()
    first, second = lse_fitter(1.0)(x, y, w)(x), lse_fitter(1.0)(x, y, w)(x)
    assert np.array_equal(first, second)
    with pytest.raises(ValueError, match="views"):
        lse_fitter(1.0)(x[:, 0], y, w)


def test_tile_features_of_odd_photos_through_the_real_tower(tmp_path):
    """Tiny photos and extreme aspect ratios go through the tower's preprocessing as tiles; the
    cache keeps them (a second call computes nothing) and knows only its variants."""
    from withsense.model.catalog import model_config
    from withsense_train.features import FeatureCache

    sizes = [(1, 1), (3, 700), (700, 3), (64, 48)]
    paths = []
    for i, size in enumerate(sizes):
        path = tmp_path / f"odd{i}.png"
        Image.fromarray((np.random.default_rng(i).random((size[1], size[0], 3)) * 255)
                        .astype(np.uint8)).save(path)
        paths.append(path)
    cache = FeatureCache(model_config("lite0"), tmp_path / "cache", progress=False)
    pooled, logits = cache.tiles(paths)
    assert pooled.shape == (len(sizes), TILES, 1280) and logits.shape == (len(sizes), TILES, 1000)
    assert np.all(np.isfinite(pooled)) and np.all(np.isfinite(logits))
    # Tiles of a non-uniform photo differ; the 1 x 1 photo's four tiles are the same pixel.
    assert not np.allclose(pooled[3, 0], pooled[3, 3])
    np.testing.assert_allclose(pooled[0, 0], pooled[0, 3], atol=1e-5)
    computed = cache.computed["images"]
    again, _ = cache.tiles(paths)
    assert cache.computed["images"] == computed and np.array_equal(again, pooled)
    with pytest.raises(ValueError, match="variant"):
        cache.image_variant(paths, "tile9")
