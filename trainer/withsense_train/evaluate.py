"""Evaluation: the trained model next to the zero-shot model and the customer's first approach,
by the same metrics in the same run (``metrics``: Recall@1/5/10 and MRR of text-to-image
retrieval, 100 photos a query; ROC-AUC, Kendall tau-c, ECE and RMSE against expert judgments).

Three ways:

- ``evaluate_test``: a folder with the customer's test half (``test_queries.csv`` and
  ``test_images/``): each query against the test photos, its own photo the positive. The test
  format has no judgments, so only retrieval is measured there. The customer's first approach is
  fitted on the train half of the same folder when there is one.
- ``compare_on_split``: the validation split an artifact was trained with (its model card lists
  the photos; they were used for early stopping and calibration, so this is slightly optimistic).
- ``kfold_evaluate``: K folds by photo; for each, the heads are trained on the other folds'
  legally allowed photos (an inner validation split of them for early stopping and calibration),
  the first approach is fitted on the same photos, and all models are measured on the held-out
  fold. Figures pool the held-out queries and pairs of all folds; ``std`` is over folds.

Each result has a ``compliant`` section (photos and texts that pass the legal filter) and, when
flagged photos are evaluated too (``include_flagged``), an ``all`` section: the customer's test
protocol on unfiltered photos. Flagged photos are only ever evaluated, never trained on.
"""

from __future__ import annotations

import copy
import json
import logging
import math
from pathlib import Path
from typing import Any

import numpy as np
import torch
from withsense.model.artifact import load_artifact
from withsense.model.catalog import MODEL_NAMES, model_config
from withsense.model.fused import FusedModel
from withsense.model.image_int8 import Int8Error, artifact_table, trained_on
from withsense.model.runtime import head_config as runtime_head_config

from withsense_train.baseline import FirstApproach
from withsense_train.calibration import calibrate_on_photos
from withsense_train.config import TrainConfig
from withsense_train.data import Dataset, load_dataset
from withsense_train.features import FeatureCache
from withsense_train.fit import fit_heads
from withsense_train.metrics import (
    GALLERY,
    judgment_metrics,
    mean_std,
    query_ranks,
    retrieval_from_ranks,
    retrieval_metrics,
)
from withsense_train.multilingual import LanguageEvaluation
from withsense_train.prepare import (
    Prepared,
    embed,
    pair_cosines,
    prepare,
    split_photos,
    torch_threads,
    zero_shot_model,
)

log = logging.getLogger(__name__)

FIRST_APPROACH = "customer's first approach"
ZERO_SHOT = "zero-shot"
TRAINED_UNCALIBRATED = "trained, uncalibrated"
TRAINED = "trained"
ROWS = (FIRST_APPROACH, ZERO_SHOT, TRAINED_UNCALIBRATED, TRAINED)
COLUMNS = ("R@1", "R@5", "R@10", "MRR", "AUC", "tau_c", "ECE", "RMSE")


# --- one model on some photos ----------------------------------------------------------------

def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def fused_outputs(model: FusedModel, prep: Prepared, photos: list[str], *, compliant: bool,
                  seed: int) -> dict[str, np.ndarray]:
    """Ranks of the photos' captions and probabilities of their expert pairs."""
    text_rows, photo_rows = prep.positives(photos, compliant=compliant)
    gallery = np.asarray([prep.photo_index[p] for p in photos])
    images, texts = embed(model, prep, gallery, text_rows)
    column = {row: i for i, row in enumerate(gallery)}
    positive = np.asarray([column[r] for r in photo_rows], dtype=np.int64)
    scores = (texts @ images.T).numpy()
    ranks = query_ranks(scores, positive, gallery=GALLERY, seed=seed)
    judged = prep.judgments(photos, compliant=compliant, expert_only=True)
    cosine = pair_cosines(model, prep, judged["text"], judged["photo"])
    scale, bias = float(model.scale.detach()), float(model.bias.detach())
    prob = _sigmoid(scale * cosine + bias)
    own = _sigmoid(scale * scores[np.arange(len(positive)), positive] + bias)
    return {"ranks": ranks, "prob": prob, "expert_mean": judged["expert_mean"], "own_prob": own}


def baseline_outputs(baseline: FirstApproach, prep: Prepared, photos: list[str], *,
                     compliant: bool, seed: int) -> dict[str, np.ndarray]:
    text_rows, photo_rows = prep.positives(photos, compliant=compliant)
    gallery = np.asarray([prep.photo_index[p] for p in photos])
    scores = baseline.score_matrix(prep.text[text_rows].numpy(), prep.pooled[gallery].numpy())
    column = {row: i for i, row in enumerate(gallery)}
    positive = np.asarray([column[r] for r in photo_rows], dtype=np.int64)
    ranks = query_ranks(scores, positive, gallery=GALLERY, seed=seed)
    judged = prep.judgments(photos, compliant=compliant, expert_only=True)
    if judged["text"].size:
        prob = baseline.probability(prep.pooled[judged["photo"]].numpy(), prep.text[judged["text"]].numpy())
    else:
        prob = np.zeros(0)
    own = np.clip(scores[np.arange(len(positive)), positive], 0.0, 1.0)
    return {"ranks": ranks, "prob": prob, "expert_mean": judged["expert_mean"], "own_prob": own}


def model_outputs(model: FusedModel | FirstApproach, prep: Prepared, photos: list[str], *,
                  compliant: bool, seed: int) -> dict[str, np.ndarray]:
    """fused_outputs or baseline_outputs, whichever fits the model."""
    if isinstance(model, FirstApproach):
        return baseline_outputs(model, prep, photos, compliant=compliant, seed=seed)
    return fused_outputs(model, prep, photos, compliant=compliant, seed=seed)


def summarise(outputs: dict[str, np.ndarray]) -> dict[str, float]:
    """Retrieval, judgment metrics and, for the caption-photo positives (a caption with the
    photo it was written for), the median p and the share with p > 0.5."""
    out = retrieval_from_ranks(outputs["ranks"]) | judgment_metrics(outputs["prob"], outputs["expert_mean"])
    own = outputs.get("own_prob")
    if own is not None and len(own):
        out["own_p_median"] = float(np.median(own))
        out["own_p_above_half"] = float(np.mean(own > 0.5))
    return out


def fit_first_approach(prep: Prepared, photos: list[str], *, held_out: set[str], seed: int) -> FirstApproach:
    """The customer's first approach fitted on the expert pairs of these (allowed) photos."""
    judged = prep.judgments(photos, expert_only=True, exclude_caption_photos=held_out)
    baseline = FirstApproach(seed=seed)
    return baseline.fit(prep.pooled[judged["photo"]].numpy(), prep.text[judged["text"]].numpy(),
                        judged["soft"])


def compare_on_split(prep: Prepared, trained: FusedModel, train_photos: list[str],
                     val_photos: list[str], *, seed: int = 0,
                     uncalibrated: FusedModel | None = None) -> dict[str, dict[str, float]]:
    """The three models on the validation split (compliant photos and texts)."""
    with torch_threads(1):
        return _compare(prep, trained, train_photos, val_photos, seed=seed, uncalibrated=uncalibrated)


def _compare(prep: Prepared, trained: FusedModel, train_photos: list[str], val_photos: list[str],
             *, seed: int, uncalibrated: FusedModel | None) -> dict[str, dict[str, float]]:
    baseline = fit_first_approach(prep, train_photos, held_out=set(val_photos), seed=seed)
    zero = zero_shot_model(prep, prep.cache.model_config)
    models: dict[str, Any] = {FIRST_APPROACH: baseline, ZERO_SHOT: zero}
    if uncalibrated is not None:
        models[TRAINED_UNCALIBRATED] = uncalibrated
    models[TRAINED] = trained
    out = {}
    for name, model in models.items():
        out[name] = _rounded(summarise(model_outputs(model, prep, val_photos, compliant=True, seed=seed)))
    return out


def _rounded(metrics: dict[str, Any]) -> dict[str, Any]:
    return {k: (round(v, 4) if isinstance(v, float) and not math.isnan(v) else v) for k, v in metrics.items()}


# --- K-fold by photo -------------------------------------------------------------------------

def kfold_evaluate(dataset: Dataset, config: TrainConfig, *, folds: int = 5,
                   cache: FeatureCache | None = None, cache_dir: Path | None = None,
                   progress: bool = True, include_flagged: bool = False,
                   prep: Prepared | None = None) -> dict[str, Any]:
    """K-fold by photo: train on K-1 folds' allowed photos, measure on the held-out fold."""
    if prep is None:
        cache = cache or FeatureCache(model_config(config.model), cache_dir, progress=progress,
                                      image_precision=config.image_precision)
        prep = prepare(dataset, cache, tta=config.tta, prompts=config.concept_prompts(),
                       include_flagged=include_flagged)
    with torch_threads(1):
        return _kfold(prep, config, folds=folds, progress=progress, include_flagged=include_flagged)


def _kfold(prep: Prepared, config: TrainConfig, *, folds: int, progress: bool,
           include_flagged: bool) -> dict[str, Any]:
    from tqdm.auto import tqdm

    allowed = set(prep.filtered.photos)
    evaluated = list(prep.photos)  # with include_flagged also the flagged ones (evaluation only)
    order = sorted(evaluated)
    np.random.default_rng(config.seed).shuffle(order)
    fold_of = {photo: i % folds for i, photo in enumerate(order)}
    sections = ["compliant", "all"] if include_flagged else ["compliant"]
    pooled: dict[str, dict[str, list[dict[str, np.ndarray]]]] = {s: {r: [] for r in ROWS} for s in sections}
    per_fold: dict[str, dict[str, list[dict[str, float]]]] = {s: {r: [] for r in ROWS} for s in sections}
    epochs = []
    zero = zero_shot_model(prep, prep.cache.model_config)
    languages = LanguageEvaluation(prep, progress=progress)  # Russian queries next to English
    bar = tqdm(range(folds), desc=f"{folds}-fold by photo", disable=not progress, leave=False)
    for k in bar:
        test = sorted(p for p in evaluated if fold_of[p] == k)
        trainable = sorted(p for p in allowed if fold_of[p] != k)
        models, best_epoch = _fold_models(prep, config, k, folds, trainable, test, zero, progress)
        epochs.append(best_epoch)
        for section in sections:
            photos = [p for p in test if p in allowed] if section == "compliant" else test
            for name, model in models.items():
                outputs = model_outputs(model, prep, photos, compliant=section == "compliant",
                                        seed=config.seed + k)
                pooled[section][name].append(outputs)
                per_fold[section][name].append(summarise(outputs))
        languages.add_fold(models[TRAINED], trainable, [p for p in test if p in allowed], config.seed + k)
        trained = per_fold["compliant"][TRAINED][-1]
        bar.set_postfix(R1=f"{trained['R@1']:.3f}", R5=f"{trained['R@5']:.3f}", R10=f"{trained['R@10']:.3f}")
    result: dict[str, Any] = {"folds": folds, "seed": config.seed, "best_epochs": epochs,
                              "config": {k: v for k, v in vars(config).items()}}
    for section in sections:
        result[section] = {name: _pooled_metrics(pooled[section][name], per_fold[section][name])
                           for name in ROWS}
    if languages.active:
        result["languages"] = languages.result()
    return result


def _fold_models(prep: Prepared, config: TrainConfig, k: int, folds: int, trainable: list[str],
                 test: list[str], zero: FusedModel, progress: bool) -> tuple[dict[str, Any], int]:
    """The models of fold k, fitted on its trainable photos: (models by row name, best epoch)."""
    inner_train, inner_val = split_photos(trainable, config.val_photos, config.seed + k)
    fit = fit_heads(prep, inner_train, inner_val, config, progress=progress,
                    held_out=set(test), desc=f"fold {k + 1}/{folds}")
    uncalibrated = copy.deepcopy(fit.model)
    if config.calibrate:
        calibrate_on_photos(fit.model, prep, inner_val, config.calibration)
    baseline = fit_first_approach(prep, trainable, held_out=set(test), seed=config.seed)
    models = {FIRST_APPROACH: baseline, ZERO_SHOT: zero, TRAINED_UNCALIBRATED: uncalibrated,
              TRAINED: fit.model}
    return models, fit.best_epoch


def _pooled_metrics(outputs: list[dict[str, np.ndarray]], per_fold: list[dict[str, float]]) -> dict[str, Any]:
    """Metrics of the folds' outputs pooled, with the standard deviation over folds."""
    merged = {key: np.concatenate([o[key] for o in outputs])
              for key in ("ranks", "prob", "expert_mean", "own_prob")
              if all(key in o for o in outputs)}
    metrics = summarise(merged)
    for column in COLUMNS:
        metrics[f"{column}_std"] = mean_std([f[column] for f in per_fold])[1]
    return _rounded(metrics)


# --- the customer's test half ----------------------------------------------------------------

def model_config_for(artifact_config: dict[str, Any]) -> dict[str, Any]:
    """The model config (configs/*.json) whose image tower (networks) the artifact was built on."""
    def networks(image: dict[str, Any]) -> list[str]:
        return [image["timm_name"], *(c["timm_name"] for c in image.get("companions", []))]

    wanted = networks(artifact_config["image_tower"])
    for name in MODEL_NAMES:
        cfg = model_config(name)
        if networks(cfg["image_tower"]) == wanted:
            return cfg
    raise ValueError(f"no model config for image tower {' + '.join(wanted)}")


def evaluate_test(dataset: Dataset, model: FusedModel, cache: FeatureCache, *,
                  baseline: FirstApproach | None = None, seed: int = 0) -> dict[str, Any]:
    """Retrieval on the test half: each query against the test photos (its own photo positive);
    ``compliant`` leaves out flagged photos and queries that mention a child."""
    from withsense.compliance import flag_image, mentions_child

    photos = sorted(dataset.test_images)
    tta = getattr(model.config, "tta", "none")
    pooled, logits = cache.image([dataset.test_images[p] for p in photos], tta)
    texts = [q.query_text for q in dataset.test_queries]
    text = torch.from_numpy(cache.text(texts))
    column = {p: i for i, p in enumerate(photos)}
    positive = np.asarray([column[q.image] for q in dataset.test_queries], dtype=np.int64)
    zero = FusedModel(runtime_head_config(cache.model_config),
                      cache.concepts(cache.model_config["concept_prompts"])).eval()
    by_photo: dict[str, list[str]] = {}
    for query in dataset.test_queries:
        by_photo.setdefault(query.image, []).append(query.query_text)
    flagged = {p for p in photos if flag_image(by_photo.get(p, [])).minor}
    keep_query = np.asarray([q.image not in flagged and mentions_child(q.query_text) is None
                             for q in dataset.test_queries])
    keep_photo = np.asarray([p not in flagged for p in photos])
    models: dict[str, Any] = {ZERO_SHOT: zero, TRAINED: model}
    if baseline is not None:
        models = {FIRST_APPROACH: baseline, **models}
    out: dict[str, Any] = {"photos": len(photos), "queries": len(texts),
                           "flagged_photos": len(flagged), "all": {}, "compliant": {}}
    for name, scorer in models.items():
        if isinstance(scorer, FirstApproach):
            scores = scorer.score_matrix(text.numpy(), pooled)
        else:
            with torch.no_grad():
                images = scorer.embed_image(torch.from_numpy(pooled), torch.from_numpy(logits))
                scores = (scorer.embed_text(text) @ images.T).numpy()
        out["all"][name] = _rounded(retrieval_metrics(scores, positive, seed=seed))
        if keep_query.any() and keep_photo.sum() > 1:
            remap = np.cumsum(keep_photo) - 1
            sub = scores[keep_query][:, keep_photo]
            out["compliant"][name] = _rounded(retrieval_metrics(sub, remap[positive[keep_query]], seed=seed))
    return out


# Short queries of the demo gallery's photos besides their own descriptions.
GALLERY_QUERIES = (("a cup of coffee on a table", "coffee"), ("a rocket on the launch pad", "rocket"),
                   ("a tabby cat", "chelsea"), ("a cat", "chelsea"), ("a cup of coffee", "coffee"),
                   ("a rocket", "rocket"), ("a horse", "horse"), ("craters on the moon", "moon"))


def demo_gallery_metrics(models: dict[str, FusedModel], cache: FeatureCache) -> dict[str, Any]:
    """Out-of-domain sanity check: the demo's built-in gallery (scikit-image photos: a cat, a
    cup of coffee, a rocket, ...; Flickr8k has few such photos), each photo's description and a
    few short queries against all gallery photos. Queries that mention a child are left out."""
    import io

    from PIL import Image
    from withsense.compliance import mentions_child
    from withsense.gallery import GALLERY, gallery_photos
    from withsense.model.runtime import image_features

    photos = gallery_photos()
    names = list(photos)
    images: list[Image.Image] = [Image.open(io.BytesIO(photos[n])) for n in names]
    queries = [(texts[0], name) for name, texts in GALLERY.items() if name in photos and texts]
    queries += [q for q in GALLERY_QUERIES if q[1] in photos]
    queries = [q for q in queries if mentions_child(q[0]) is None]
    text = torch.from_numpy(cache.text([q for q, _ in queries]))
    positive = np.asarray([names.index(n) for _, n in queries], dtype=np.int64)
    features: dict[str, Any] = {}
    out: dict[str, Any] = {"photos": len(names), "queries": len(queries)}
    for name, model in models.items():
        tta = getattr(model.config, "tta", "none")
        if tta not in features:
            features[tta] = image_features(cache.feature_tower, images, tta)
        feats = features[tta]
        with torch.no_grad():
            vectors = model.embed_image(feats.pooled, feats.logits)
            scores = (model.embed_text(text) @ vectors.T).numpy()
        metrics = retrieval_metrics(scores, positive, gallery=len(names))
        out[name] = _rounded({"R@1": metrics["R@1"], "MRR": metrics["MRR"]})
    return out


def cache_for_artifact(config: dict[str, Any], cache_dir: Path | None, progress: bool,
                       artifact_dir: Path | None = None) -> FeatureCache:
    """The features an artifact's heads were trained on (int8 ones with its calibration table;
    an int8 artifact without one, or of another recipe, is refused: Int8Error)."""
    model_cfg = dict(model_config_for(config))
    model_cfg["concept_prompts"] = config.get("concept_prompts", model_cfg["concept_prompts"])
    cache = FeatureCache(model_cfg, cache_dir, progress=progress)
    if trained_on(config) == "int8":
        table = artifact_table(artifact_dir, config)
        if table is None:
            raise Int8Error(f"model {config.get('version')} was trained on int8 image features "
                            "but ships no calibration table: its features cannot be remade")
        cache.use_int8_table(table)
    return cache


def evaluate_data(data_dir: Path | str, artifact_dir: Path | None = None, *, folds: int = 0,
                  cache_dir: Path | None = None, progress: bool = True,
                  include_flagged: bool = False, config: TrainConfig | None = None) -> dict[str, Any]:
    """What ``withsense evaluate`` runs: the test half when there is one, else the artifact's
    validation split, else (or with folds > 1) K-fold by photo."""
    from withsense.model.runtime import resolve_artifact_dir

    dataset = load_dataset(data_dir, require_train=False)
    artifact_path = resolve_artifact_dir(artifact_dir)
    artifact = load_artifact(artifact_path) if artifact_path is not None else None
    card = artifact.card if artifact is not None else {}
    if config is None:
        stored = card.get("training", {}).get("config")
        config = TrainConfig.from_dict(stored) if stored else TrainConfig()
    result: dict[str, Any] = {
        "data": str(Path(data_dir)), "artifact": str(artifact_path) if artifact_path else None,
        "artifact_version": artifact.version if artifact else "zero-shot (no artifact)",
    }
    if dataset.has_test:
        art_config = artifact.config if artifact else \
            {"image_tower": model_config(config.model)["image_tower"]}
        cache = cache_for_artifact(art_config, cache_dir, progress,
                                   artifact.path if artifact else None)
        model = artifact.model if artifact else FusedModel(
            runtime_head_config(cache.model_config), cache.concepts(cache.model_config["concept_prompts"]))
        baseline = None
        if dataset.has_train:
            prep = prepare(dataset, cache, tta=getattr(model.config, "tta", "none"))
            baseline = fit_first_approach(prep, prep.filtered.photos, held_out=set(), seed=config.seed)
        result["mode"] = "test half"
        result["test"] = evaluate_test(dataset, model, cache, baseline=baseline, seed=config.seed)
        return result
    if not dataset.has_train:
        raise ValueError(f"{data_dir}: nothing to evaluate")
    split = card.get("validation_split", {}).get("photos")
    same_data = card.get("data", {}).get("sha256") == dataset.data_hash()
    if folds <= 1 and artifact is not None and split and same_data:
        cache = cache_for_artifact(artifact.config, cache_dir, progress, artifact.path)
        prep = prepare(dataset, cache, tta=getattr(artifact.model.config, "tta", "none"),
                       prompts=artifact.config.get("concept_prompts"))
        val = [p for p in split if p in prep.photo_index]
        train_photos = [p for p in prep.filtered.photos if p not in set(val)]
        result["mode"] = "validation split of the artifact (used for its early stopping and calibration)"
        result["validation_split"] = compare_on_split(prep, artifact.model, train_photos, val,
                                                      seed=config.seed)
        result["descriptions"] = _hybrid_on_artifact_split(prep, artifact, val, config.seed)
        return result
    if folds <= 1:
        if artifact is not None and split and not same_data:
            log.warning("the artifact was trained on other data: running K-fold instead")
        folds = 5
    result["mode"] = f"{folds}-fold by photo (heads retrained per fold with the artifact's training config)"
    result["kfold"] = kfold_evaluate(dataset, config, folds=folds, cache_dir=cache_dir,
                                     progress=progress, include_flagged=include_flagged)
    from withsense_train.hybrid_eval import hybrid_kfold

    result["descriptions"] = hybrid_kfold(Path(data_dir), folds=folds, cache_dir=cache_dir,
                                          config=config, progress=progress)
    return result


def _hybrid_on_artifact_split(prep: Prepared, artifact: Any, photos: list[str],
                              seed: int) -> dict[str, Any] | None:
    """Pixels-only and hybrid on the artifact's validation split with its own fusion model (which
    was trained there: optimistic, as the split's other figures); None without fusion.json."""
    from withsense.model.fusion import load_fusion

    from withsense_train.hybrid_eval import hybrid_on_split

    fusion = load_fusion(artifact.path) if artifact.path is not None else None
    if fusion is None:
        return None
    return hybrid_on_split(prep, artifact.model, fusion, photos, seed=seed)


def format_table(table: dict[str, dict[str, Any]], title: str) -> str:
    """A markdown table of rows (models) by COLUMNS."""
    lines = [f"**{title}**", "", "| model | " + " | ".join(COLUMNS) + " |",
             "|---|" + "---:|" * len(COLUMNS)]
    for name, metrics in table.items():
        cells = []
        for column in COLUMNS:
            value = metrics.get(column, math.nan)
            std = metrics.get(f"{column}_std")
            missing = value is None or (isinstance(value, float) and math.isnan(value))
            text = "n/a" if missing else f"{value:.3f}"
            if std is not None and isinstance(std, float) and not math.isnan(std) and text != "n/a":
                text += f" ± {std:.3f}"
            cells.append(text)
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def dumps(result: dict[str, Any]) -> str:
    def default(value: Any) -> Any:
        if isinstance(value, np.generic):
            return value.item()
        if isinstance(value, Path):
            return str(value)
        raise TypeError(type(value))

    return json.dumps(result, indent=2, default=default)
