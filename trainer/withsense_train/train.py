"""``withsense train``: training of the fused model's heads and export of the model artifact.

``train(data_dir, out_dir, config) -> TrainResult`` runs these stages in order (``run.TrainRun``
carries what they share; each is timed in the model card's ``seconds``):

1. ``load``: load and validate the data set (``data.load_dataset``);
2. ``features``: the legal filter (``filtering.legal_filter``: pairs with a flagged photo or a
   child-mentioning text are dropped, and the counts go into the model card), the tower features
   of every photo and text from the on-disk cache, and a split by photo: ``val_photos`` held-out
   photos (validation: early stopping, calibration), the rest for training (``prepare``);
3. ``fit``: the heads' start and training (``fit.fit_heads``), then calibration of t and b on
   the held-out photos' judgments (``calibration.calibrate_on_photos``);
4. ``evaluate``: metrics on the validation split next to the zero-shot model and the customer's
   first approach, and the demo gallery (``evaluate``);
5. ``kfold`` (with ``folds`` > 1): K-fold metrics by photo (``evaluate.kfold_evaluate``);
6. ``artifact``: heads, calibration and the model card (``withsense.model.artifact``);
7. components beyond the heads, each a stage in a module of its own that saves its own file(s)
   and records them with ``run.add_component`` (see ``run.py``): ``image_int8`` (which image
   tower variant the heads were trained on, and the int8 calibration table, ``image_int8.py``),
   ``semantic`` (the gateway's
   semantic child-query threshold, recorded in config.json), ``multilingual`` (the map from
   multilingual-e5-small into the text space for Russian queries, ``multilingual.py``),
   ``minor_detector`` (the visual minor detector, ``minor.py``: the only part that learns from
   photos of children, and only to withhold them), ``fusion`` (the evidence fusion model,
   ``fusion.py``).

Everything is seeded: the same data, config and seed give the same artifact.
"""

from __future__ import annotations

import copy
import json
import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
from withsense.model.artifact import CARD_FILE, save_artifact
from withsense.model.catalog import model_config
from withsense.model.fused import FusedModel
from withsense.model.towers import package_version

from withsense_train.calibration import calibrate_on_photos
from withsense_train.config import TrainConfig
from withsense_train.data import Dataset, load_dataset
from withsense_train.evaluate import compare_on_split, demo_gallery_metrics, kfold_evaluate
from withsense_train.features import FeatureCache
from withsense_train.fit import fit_heads
from withsense_train.fusion import fusion_stage
from withsense_train.image_int8 import image_int8_stage
from withsense_train.minor import minor_stage
from withsense_train.multilingual import multilingual_stage
from withsense_train.prepare import prepare, split_photos, zero_shot_model
from withsense_train.run import TrainRun
from withsense_train.semantic import semantic_stage

log = logging.getLogger(__name__)


@dataclass
class TrainResult:
    artifact_dir: Path
    model: FusedModel
    config: TrainConfig
    best_epoch: int
    history: list[dict[str, float]]
    calibration: dict[str, Any]
    filtering: dict[str, Any]
    metrics: dict[str, Any]  # validation split: trained, zero-shot, first approach
    kfold: dict[str, Any] | None
    gallery: dict[str, Any]  # out-of-domain sanity: the demo gallery
    card: dict[str, Any]
    seconds: dict[str, float]

    def as_dict(self) -> dict[str, Any]:
        return {
            "artifact_dir": str(self.artifact_dir), "config": asdict(self.config),
            "best_epoch": self.best_epoch, "calibration": self.calibration,
            "filtering": self.filtering, "metrics": self.metrics, "kfold": self.kfold,
            "demo_gallery": self.gallery,
            "seconds": self.seconds, "artifact_bytes": artifact_bytes(self.artifact_dir),
        }


def train(data_dir: Path | str, out_dir: Path | str, config: TrainConfig | None = None, *,
          cache_dir: Path | None = None, progress: bool = True,
          dataset: Dataset | None = None) -> TrainResult:
    """Trains, calibrates, evaluates and exports the artifact to ``out_dir``."""
    run = TrainRun(Path(data_dir), Path(out_dir), config or TrainConfig(), cache_dir=cache_dir,
                   progress=progress, dataset=dataset)
    run.stage("load", load_data)
    run.stage("features", prepare_features)
    run.stage("fit", fit_and_calibrate)
    run.stage("evaluate", evaluate_models)
    if run.config.folds > 1:
        run.stage("kfold", kfold_metrics)
    run.stage("artifact", write_artifact)
    run.stage("image_int8", image_int8_stage)
    # Components of the artifact beyond the heads (run.py says how to add one).
    run.stage("semantic", semantic_stage)
    run.stage("multilingual", multilingual_stage)
    run.stage("fusion", fusion_stage)
    run.stage("minor_detector", minor_stage)
    return finish(run)


# --- the stages ------------------------------------------------------------------------------

def load_data(run: TrainRun) -> None:
    if run.dataset is None:
        run.dataset = load_dataset(run.data_dir)


def prepare_features(run: TrainRun) -> None:
    assert run.dataset is not None
    run.model_cfg = model_config(run.config.model)
    run.cache = FeatureCache(run.model_cfg, run.cache_dir, progress=run.progress,
                             image_precision=run.config.image_precision)
    run.prep = prepare(run.dataset, run.cache, tta=run.config.tta, prompts=run.config.concept_prompts())
    for line in run.prep.filtered.report.lines():
        log.info(line)
    run.train_photos, run.val_photos = split_photos(run.prep.photos, run.config.val_photos,
                                                    run.config.seed)


def fit_and_calibrate(run: TrainRun) -> None:
    run.fit = fit_heads(run.prep, run.train_photos, run.val_photos, run.config, progress=run.progress)
    run.uncalibrated = copy.deepcopy(run.fit.model)
    if run.config.calibrate:
        run.calibration = calibrate_on_photos(run.fit.model, run.prep, run.val_photos,
                                              run.config.calibration)


def evaluate_models(run: TrainRun) -> None:
    run.comparison = compare_on_split(run.prep, run.fit.model, run.train_photos, run.val_photos,
                                      seed=run.config.seed, uncalibrated=run.uncalibrated)
    models = {"zero-shot": zero_shot_model(run.prep, run.model_cfg), "trained": run.fit.model}
    run.gallery = demo_gallery_metrics(models, run.cache)


def kfold_metrics(run: TrainRun) -> None:
    assert run.dataset is not None
    run.kfold = kfold_evaluate(run.dataset, run.config, folds=run.config.folds, cache=run.cache,
                               progress=run.progress)


def write_artifact(run: TrainRun) -> None:
    image_desc, text_desc = tower_descriptions(run.cache)
    run.card = model_card(run)
    save_artifact(run.fit.model, run.out, name=run.model_cfg["name"], image_tower=image_desc,
                  text_tower=text_desc, concept_prompts=run.prep.prompts, zero_shot=False,
                  card=run.card)


def finish(run: TrainRun) -> TrainResult:
    """Writes the model card with the stages' seconds; the result of the run."""
    run.seconds["total"] = time.perf_counter() - run.started
    run.card["seconds"] = {k: round(v, 1) for k, v in run.seconds.items()}
    (run.out / CARD_FILE).write_text(json.dumps(run.card, indent=2) + "\n")
    calibration = run.calibration.as_dict() if run.calibration else {}
    return TrainResult(run.out, run.fit.model, run.config, run.fit.best_epoch, run.fit.history,
                       calibration, run.prep.filtered.report.as_dict(), run.comparison, run.kfold,
                       run.gallery, run.card, run.seconds)


# --- the artifact ----------------------------------------------------------------------------

def model_card(run: TrainRun) -> dict[str, Any]:
    """The model card of the heads: data, filtering, training, calibration, metrics, versions."""
    assert run.dataset is not None
    fit, config = run.fit, run.config
    return {
        "kind": "trained",
        "created_by": "withsense_train.train",
        "command": "withsense train --data DIR --out DIR",
        "data": {"path": str(run.dataset.root), "sha256": run.dataset.data_hash(),
                 **run.dataset.summary()},
        "filtering": run.prep.filtered.report.as_dict(),
        "training": {
            "config": asdict(config), "concept_prompts": run.prep.prompts,
            "train_photos": len(run.train_photos), "val_photos": len(run.val_photos),
            "train_positives": int(run.prep.positives(run.train_photos)[0].size),
            "best_epoch": fit.best_epoch, "epochs_run": len(fit.history) - 1,
            "history": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in h.items()}
                        for h in fit.history],
            "scale_bias_before_calibration": {"scale": float(run.uncalibrated.scale.detach()),
                                              "bias": float(run.uncalibrated.bias.detach())},
            "seconds": round(fit.seconds, 1),
        },
        "validation_split": {"seed": config.seed, "photos": run.val_photos},
        "calibration": run.calibration.as_dict() if run.calibration else None,
        "metrics": {"validation_split": run.comparison, "kfold": run.kfold,
                    "demo_gallery": run.gallery},
        "versions": {"torch": torch.__version__, "timm": package_version("timm"),
                     "sentence-transformers": package_version("sentence-transformers"),
                     "withsense": package_version("withsense")},
    }


def artifact_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).iterdir() if p.is_file())


def tower_descriptions(cache: FeatureCache) -> tuple[dict[str, Any], dict[str, Any]]:
    """The towers' describe() output, remembered in the cache by weights hash (no tower load)."""
    path = cache.root / "towers" / f"{cache.image_key}-{cache.text_sha[:16]}.json"
    try:
        stored = json.loads(path.read_text())
        image, text = stored["image_tower"], stored["text_tower"]
        if image["weights_sha256"] == cache.image_sha and text["weights_sha256"] == cache.text_sha:
            return image, text
    except (OSError, ValueError, KeyError):
        pass
    image, text = cache.tower_descriptions()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"image_tower": image, "text_tower": text}, indent=2))
    return image, text
