"""The attempts at a better pixels-only model (issue #8, item 4), each beside the baseline in one
run: 5-fold by photo on the legally allowed photos (the protocol of ``withsense evaluate
--folds 5``: 100-photo galleries, heads retrained per fold, calibrated on each fold's inner
validation photos), on the same fold seeds.

    python benchmarks/pixel_attempts.py --data ../shared/data/withsense --cache /work/cache \
        [--seeds 0] [--only B E] [--ridge-only] [--json OUT]

Rows:

- ``B``: the baseline, the configuration shipped before (Lite2, flip TTA).
- ``E``: an ensemble of Lite2 and Lite0, both on Lite2's pixels (model config ``lite2-lite0``:
  their pooled features side by side into the ridge head, their ImageNet logits averaged for
  the ConSE concept vector). ``E-224``: Lite0 on its own 224-px preprocessing instead (needs a
  second preprocessing at indexing).
- ``M``: multi-view features: the mean over the center crop, its mirror image, the whole photo
  squashed to the tower's input size and its mirror image (the extra views are computed here
  and cached under ``CACHE/views``); ``M-full``: the whole-photo views alone.
- ``C``: the judgments as soft labels in the closed-form image head: each training photo's
  ridge target (the mean of its captions' text vectors) plus ``a`` times the judgment-weighted
  mean of the other captions experts or the crowd judged against it.

Columns: R@1, R@5, R@10, ECE (expert pairs), the seconds of one training run on this machine
(the 5-fold run divided by 5), and the image tower's cost per photo at indexing relative to
the baseline (network passes per photo: Lite2 = 1, Lite0 on 260 px measured as its FLOPs over
Lite2's). ``--ridge-only`` skips the SigLIP text-head epochs (a quicker proxy; docs/model.md
shows they change R@1 by under 0.005).
"""

from __future__ import annotations

import argparse
import copy
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from withsense.model.catalog import model_config
from withsense_train.config import TrainConfig
from withsense_train.data import file_sha256, load_dataset
from withsense_train.evaluate import TRAINED, kfold_evaluate
from withsense_train.features import FeatureCache, _load, _save_atomic
from withsense_train.prepare import Prepared, prepare

COLUMNS = ("R@1", "R@5", "R@10", "MRR", "ECE")


# --- features of the attempts -----------------------------------------------------------------

def with_features(prep: Prepared, pooled: torch.Tensor, logits: torch.Tensor) -> Prepared:
    """A copy of prep whose photos have other features (the heads size themselves to them)."""
    new = copy.copy(prep)
    new.pooled, new.logits = pooled.float(), logits.float()
    cache = copy.copy(prep.cache)
    cache.model_config = copy.deepcopy(prep.cache.model_config)
    cache.model_config["image_tower"]["pooled_dim"] = int(pooled.shape[1])
    new.cache = cache
    return new


def whole_photo_views(prep: Prepared, cache_dir: Path) -> tuple[torch.Tensor, torch.Tensor]:
    """Mean features of the whole photo squashed to the input size and its mirror image."""
    from PIL import Image
    from torchvision.transforms.functional import normalize, to_tensor

    tower = prep.cache.image_tower
    size, mean, std = tower.image_size, tower.data_config["mean"], tower.data_config["std"]
    folder = Path(cache_dir) / "views" / prep.cache.image_key / "full+flip"
    rows = []
    for name in prep.photos:
        path = prep.dataset.train_images[name]
        key = file_sha256(path)
        row = _load(folder / key[:2] / f"{key}.npy")
        if row is None:
            with Image.open(path) as image:
                squashed = image.convert("RGB").resize((size, size), Image.BICUBIC)
            pixels = normalize(to_tensor(squashed), mean, std)[None]  # no resize, no crop
            feats = tower.features_from_pixels(torch.cat([pixels, pixels.flip(-1)]))
            row = torch.cat([feats.pooled.mean(0), feats.logits.mean(0)]).numpy()
            _save_atomic(folder / key[:2] / f"{key}.npy", row)
        rows.append(row)
    matrix = torch.from_numpy(np.stack(rows))
    return matrix[:, :-1000], matrix[:, -1000:]


# --- judgments as soft labels in the ridge targets ----------------------------------------------

def soft_label_ridge(weight: float):
    """A ridge_init whose targets add ``weight`` x the judgment-weighted mean of the captions
    judged against a training photo (captions of training photos only, so no held-out caption
    reaches training)."""
    import withsense_train.fit as fit_module
    from torch.nn import functional as F

    original = fit_module.ridge_init

    @torch.no_grad()
    def ridge_init(model, prep, train_rows, text_pos, photo_pos, concept_all, *, lam,
                   concept_weight, prior=0.0):
        train_names = [prep.photos[r] for r in train_rows]
        judged = prep.judgments(train_names, exclude_caption_photos=set(prep.photos) - set(train_names))
        own = set(zip(text_pos.tolist(), photo_pos.tolist(), strict=True))
        keep = np.asarray([(t, p) not in own and s > 0 for t, p, s in
                           zip(judged["text"].tolist(), judged["photo"].tolist(), judged["soft"],
                               strict=True)],
                          dtype=bool)
        model.eval()
        n = len(prep.photos)
        captions = model.embed_text(prep.text[torch.as_tensor(text_pos)]).double()
        own_mean = torch.zeros(n, captions.shape[1], dtype=torch.float64).index_add_(
            0, torch.as_tensor(photo_pos), captions)
        counts = torch.zeros(n, dtype=torch.float64).index_add_(
            0, torch.as_tensor(photo_pos), torch.ones(len(photo_pos), dtype=torch.float64))
        target = own_mean / counts.clamp_min(1)[:, None]
        if keep.any():
            texts = model.embed_text(prep.text[torch.as_tensor(judged["text"][keep])]).double()
            soft = torch.as_tensor(judged["soft"][keep], dtype=torch.float64)
            photos = torch.as_tensor(judged["photo"][keep])
            extra = torch.zeros_like(target).index_add_(0, photos, texts * soft[:, None])
            total = torch.zeros(n, dtype=torch.float64).index_add_(0, photos, soft)
            target = target + weight * extra / total.clamp_min(1e-9)[:, None]
        # the closed-form solve of fit.ridge_init on these targets
        return original(model, prep, train_rows, text_pos, photo_pos, concept_all, lam=lam,
                        concept_weight=concept_weight, prior=prior,
                        target=F.normalize(target[torch.as_tensor(train_rows)], dim=-1))

    return ridge_init


# --- the run ----------------------------------------------------------------------------------

def measure(name: str, prep: Prepared, dataset: Any, seeds: list[int], overrides: dict[str, Any],
            cost: float) -> dict[str, Any]:
    per_seed = []
    started = time.perf_counter()
    for seed in seeds:
        config = TrainConfig(**{**overrides, "seed": seed})
        per_seed.append(kfold_evaluate(dataset, config, prep=prep, progress=False)["compliant"][TRAINED])
    seconds = (time.perf_counter() - started) / (5 * len(seeds))
    row = {"name": name, "seconds_per_training": round(seconds, 1), "cost": cost,
           **{c: float(np.mean([r[c] for r in per_seed])) for c in COLUMNS}}
    print(json.dumps(row), file=sys.stderr, flush=True)
    return row


def lite0_cost_on(size: int) -> float:
    """Lite0's FLOPs on size x size pixels over Lite2's on 260 x 260."""
    import timm
    from torch.utils.flop_counter import FlopCounterMode

    def flops(name: str, side: int) -> int:
        net = timm.create_model(name, pretrained=False).eval()
        with FlopCounterMode(display=False) as counter, torch.no_grad():
            net(torch.zeros(1, 3, side, side))
        return counter.get_total_flops()

    return flops("tf_efficientnet_lite0", size) / flops("tf_efficientnet_lite2", 260)


def run(data: Path, cache_dir: Path, seeds: list[int], only: list[str] | None,
        ridge_only: bool) -> list[dict[str, Any]]:
    import withsense_train.fit as fit_module

    torch.set_num_threads(1)
    dataset = load_dataset(data, check_photos=False)
    base: dict[str, Any] = {"model": "lite2", "ridge_lambda": 3000.0, **({"epochs": 0} if ridge_only else {})}

    def wanted(key: str) -> bool:
        return not only or key in only

    lite2 = prepare(dataset, FeatureCache(model_config("lite2"), cache_dir, progress=False), tta="flip")
    rows = [measure("B baseline: Lite2, flip TTA", lite2, dataset, seeds, base, 2.0)]
    lite0_260 = lite0_cost_on(260)
    if wanted("E"):
        ensemble = prepare(dataset, FeatureCache(model_config("lite2-lite0"), cache_dir, progress=False),
                           tta="flip")
        for lam in (3000.0, 5000.0):
            rows.append(measure(f"E ensemble: Lite2 + Lite0 on Lite2's pixels, flip TTA, λ {lam:.0f}",
                                ensemble, dataset, seeds,
                                {**base, "model": "lite2-lite0", "ridge_lambda": lam}, 2 * (1 + lite0_260)))
    if wanted("E-224"):
        lite0 = prepare(dataset, FeatureCache(model_config("lite0"), cache_dir, progress=False), tta="flip")
        index = [lite0.photo_index[p] for p in lite2.photos]
        mixed = with_features(lite2, torch.cat([lite2.pooled, lite0.pooled[index]], 1),
                              (lite2.logits + lite0.logits[index]) / 2)
        rows.append(measure("E-224 ensemble: Lite0 on its own 224-px crop", mixed, dataset, seeds, base,
                            2 * (1 + lite0_cost_on(224))))
    if wanted("M") or wanted("M-full"):
        pooled, logits = whole_photo_views(lite2, cache_dir)
        if wanted("M"):
            four = with_features(lite2, (lite2.pooled + pooled) / 2, (lite2.logits + logits) / 2)
            rows.append(measure("M views: center, flip, whole photo, its flip", four, dataset, seeds, base,
                                4.0))
        if wanted("M-full"):
            rows.append(measure("M-full views: whole photo and its flip only",
                                with_features(lite2, pooled, logits), dataset, seeds, base, 2.0))
    if wanted("C"):
        original = fit_module.ridge_init
        for weight in (0.1, 0.3):
            fit_module.ridge_init = soft_label_ridge(weight)
            try:
                rows.append(measure(f"C judgments as soft ridge targets, weight {weight}", lite2, dataset,
                                    seeds, base, 2.0))
            finally:
                fit_module.ridge_init = original
    return rows


def table(rows: list[dict[str, Any]]) -> str:
    base = rows[0]
    lines = ["| attempt | R@1 | R@5 | R@10 | MRR | ECE | ΔR@1 vs B | s / training | cost / photo vs B |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for row in rows:
        cells = [f"{row[c]:.3f}" for c in COLUMNS]
        lines.append(f"| {row['name']} | " + " | ".join(cells) + f" | {row['R@1'] - base['R@1']:+.3f} | "
                     f"{row['seconds_per_training']:.0f} | {row['cost'] / base['cost']:.2f}x |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path, required=True)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0], help="fold-assignment seeds")
    parser.add_argument("--only", nargs="+", help="attempts besides the baseline: E E-224 M M-full C")
    parser.add_argument("--ridge-only", action="store_true", help="no SigLIP epochs (quicker proxy)")
    parser.add_argument("--json", type=Path)
    args = parser.parse_args(argv)
    rows = run(args.data, args.cache, args.seeds, args.only, args.ridge_only)
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2) + "\n")
    print(table(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
