"""Training of the fused model's heads (LiT-style: towers frozen, heads trained).

``train(data_dir, out_dir, config) -> TrainResult``:

1. load and validate the data set (``data.load_dataset``);
2. the legal filter (``filtering.legal_filter``): pairs with a flagged photo or a child-mentioning
   text are dropped, and the counts go into the model card;
3. tower features of every photo and text, from the on-disk cache (``features.FeatureCache``);
4. a split by photo: ``val_photos`` held-out photos (validation: early stopping, calibration),
   the rest for training;
5. the heads' start (``init="ridge"``, the default): the text head softly whitens the MiniLM
   space of the training captions; the image head is the closed-form ridge regression from a
   photo's [signed-sqrt, standardised pooled features, ConSE concept vector] to the mean of its
   captions' text vectors. (``init="zero_shot"``: identity heads, i.e. the ConSE model.)
6. heads trained with the sigmoid (SigLIP) loss (by default the text head and t, b; the image
   head with ``train_image``): positives are every caption whose query_id names the photo
   (train_dataset.csv and extra/captions.txt); negatives are the other photos in the batch,
   never a photo whose caption it is (the label matrix compares photos, so two captions of one
   photo are both positives of it); expert and crowd judgments of training photos add a
   soft-label term (the graded target: expert mean mapped to 0..1, else the crowd share); early
   stopping on validation Recall@K (mean of R@1, R@5, R@10) over the zero-shot heads, the start
   and every epoch, so training is only kept when validation says it is better;
7. calibration of t and b on the held-out photos' judgments (``calibration.calibrate``);
8. the artifact: heads, calibration and a model card (data hash, filtering counts, config,
   metrics on the validation split next to the zero-shot model and the customer's first
   approach, and optionally K-fold metrics by photo).

Everything is seeded: the same data, config and seed give the same heads.
"""

from __future__ import annotations

import copy
import json
import logging
import math
import random
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, fields, replace
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from withsense.model.artifact import save_artifact
from withsense.model.fused import HEAD_TYPES, FusedModel, HeadConfig
from withsense.model.runtime import TTA_MODES, model_config
from withsense.model.towers import package_version

from withsense_train.calibration import Calibration, calibrate
from withsense_train.data import Dataset, load_dataset
from withsense_train.features import FeatureCache
from withsense_train.filtering import FilteredData, legal_filter
from withsense_train.metrics import GALLERY, recall_mean, retrieval_metrics

log = logging.getLogger(__name__)

PROMPT_ENSEMBLE = [
    "a photo of a {}.", "a photo of the {}.", "a close-up photo of a {}.",
    "a bright photo of a {}.", "a photo of a small {}.", "a photo of a large {}.",
    "a good photo of a {}.", "a cropped photo of the {}.",
]
JUDGMENT_MODES = ("none", "expert", "expert+crowd")


@dataclass
class TrainConfig:
    """Everything that decides the heads; recorded in the model card. The defaults are the
    configuration chosen by the ablations in docs/model.md."""

    model: str = "lite2"  # model config: withsense/model/configs/<model>.json (lite0, lite2)
    head: str = "linear"  # linear (identity init) | residual_mlp
    hidden: int = 256  # residual_mlp width
    tta: str = "flip"  # none | flip (mean of the photo's and its mirror image's features)
    prompts: str = "default"  # concept prompts: default (the model config's) | ensemble
    pooled_sqrt: bool = True  # signed square root of the pooled features (power normalisation)
    pooled_norm: bool = True  # standardise pooled features (train-set mean and std)
    init: str = "ridge"  # ridge: closed-form start, then SigLIP; zero_shot: identity start
    ridge_lambda: float = 3000.0
    ridge_concept_weight: float = 10.0
    ridge_prior: float = 0.2  # shrink the ridge head towards this much of the zero-shot map
    text_whiten: float = 0.02  # ridge start: text head whitens MiniLM (eigenvalue floor; 0: off)
    text_center: bool = False  # ... and subtracts the mean caption first
    dropout: float = 0.0
    epochs: int = 30
    batch_size: int = 256
    lr: float = 3e-4
    scale_lr: float = 1e-2  # learning rate of t and b
    weight_decay: float = 0.05  # decoupled, towards the starting heads
    patience: int = 5
    early_stopping: bool = True  # keep the best validation epoch (False: the last one)
    val_photos: int = 100
    seed: int = 0
    init_scale: float = 10.0
    init_bias: float = -10.0
    train_text: bool = True  # text head trainable (False: frozen at its start)
    train_image: bool = False  # image head trainable (False: frozen at its start)
    optimizer: str = "adam"  # adam | sgd (momentum 0.9)
    judgments: str = "expert+crowd"  # soft labels: none | expert | expert+crowd
    judgment_weight: float = 1.0
    judgment_batch: int = 512
    hard_negatives: int = 0  # per caption, the hardest other training photos added to its batch
    calibrate: bool = True
    calibration: str = "expert"  # pairs of the t, b fit: expert | balanced | all (calibration.py)
    folds: int = 0  # K-fold evaluation by photo after training (0: only the validation split)

    def __post_init__(self) -> None:
        if self.head not in HEAD_TYPES:
            raise ValueError(f"head must be one of {HEAD_TYPES}, not {self.head!r}")
        if self.tta not in TTA_MODES:
            raise ValueError(f"tta must be one of {TTA_MODES}, not {self.tta!r}")
        if self.prompts not in ("default", "ensemble"):
            raise ValueError(f"prompts must be 'default' or 'ensemble', not {self.prompts!r}")
        if self.init not in ("ridge", "zero_shot"):
            raise ValueError(f"init must be 'ridge' or 'zero_shot', not {self.init!r}")
        if self.calibration not in CALIBRATION_MODES:
            raise ValueError(f"calibration must be one of {CALIBRATION_MODES}, not {self.calibration!r}")
        if self.judgments not in JUDGMENT_MODES:
            raise ValueError(f"judgments must be one of {JUDGMENT_MODES}, not {self.judgments!r}")

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> TrainConfig:
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in values.items() if k in known})

    def concept_prompts(self) -> list[str]:
        if self.prompts == "ensemble":
            return list(PROMPT_ENSEMBLE)
        return list(model_config(self.model)["concept_prompts"])


# --- features of a data set ------------------------------------------------------------------

@dataclass
class Prepared:
    """A data set, its legal filter and the frozen features of its photos and texts."""

    dataset: Dataset
    filtered: FilteredData
    cache: FeatureCache
    tta: str
    photos: list[str]
    pooled: torch.Tensor  # [P, pooled_dim]
    logits: torch.Tensor  # [P, 1000]
    texts: list[str]
    text: torch.Tensor  # [T, 384]
    concepts: torch.Tensor  # [1000, 384]
    prompts: list[str]
    photo_index: dict[str, int] = field(init=False)
    text_index: dict[str, int] = field(init=False)

    def __post_init__(self) -> None:
        self.photo_index = {name: i for i, name in enumerate(self.photos)}
        self.text_index = {text: i for i, text in enumerate(self.texts)}

    def positives(self, photos: list[str], *, compliant: bool = True) -> tuple[np.ndarray, np.ndarray]:
        """(text index, photo index) of every caption-photo positive of these photos."""
        source = self.filtered.positives if compliant else self.dataset.positives()
        text_rows, photo_rows = [], []
        for photo in photos:
            for caption in source.get(photo, []):
                text_rows.append(self.text_index[caption.text])
                photo_rows.append(self.photo_index[photo])
        return np.asarray(text_rows, dtype=np.int64), np.asarray(photo_rows, dtype=np.int64)

    def judgments(self, photos: list[str], *, compliant: bool = True, expert_only: bool = False,
                  exclude_caption_photos: set[str] | None = None) -> dict[str, np.ndarray]:
        """Arrays of the judged pairs whose photo is in ``photos``."""
        wanted = set(photos)
        source = self.filtered.judgments if compliant else self.dataset.judgments()
        rows = [j for j in source if j.image in wanted
                and (not expert_only or j.expert_mean is not None)
                and (exclude_caption_photos is None
                     or j.query_id.rsplit("#", 1)[0] not in exclude_caption_photos)
                and j.text in self.text_index and j.image in self.photo_index]
        return {
            "text": np.asarray([self.text_index[j.text] for j in rows], dtype=np.int64),
            "photo": np.asarray([self.photo_index[j.image] for j in rows], dtype=np.int64),
            "label": np.asarray([j.label for j in rows], dtype=np.int64),
            "soft": np.asarray([j.soft for j in rows], dtype=np.float32),
            "expert": np.asarray([j.expert_mean is not None for j in rows], dtype=bool),
            "expert_mean": np.asarray([j.expert_mean if j.expert_mean is not None else math.nan
                                       for j in rows], dtype=np.float64),
        }


def prepare(dataset: Dataset, cache: FeatureCache, *, tta: str = "none",
            prompts: list[str] | None = None, include_flagged: bool = False) -> Prepared:
    """Filters the data set and loads (or computes, once) the features it needs."""
    filtered = legal_filter(dataset)
    if include_flagged:
        photos = sorted(dataset.positives())
        captions = [c for caps in dataset.positives().values() for c in caps]
        judged = dataset.judgments()
    else:
        photos = filtered.photos
        captions = [c for caps in filtered.positives.values() for c in caps]
        judged = filtered.judgments
    texts = sorted({c.text for c in captions} | {j.text for j in judged})
    pooled, logits = cache.image([dataset.train_images[p] for p in photos], tta)
    text = cache.text(texts)
    prompts = prompts or list(cache.model_config["concept_prompts"])
    concepts = cache.concepts(prompts)
    return Prepared(dataset, filtered, cache, tta, photos, torch.from_numpy(pooled),
                    torch.from_numpy(logits), texts, torch.from_numpy(text), concepts, prompts)


def split_photos(photos: list[str], val_photos: int, seed: int) -> tuple[list[str], list[str]]:
    """(train, validation) photo names: a seeded shuffle; validation takes ``val_photos`` photos
    (at most a fifth of them when there are fewer than twice as many)."""
    order = sorted(photos)
    random.Random(seed).shuffle(order)
    n_val = val_photos if len(order) >= 2 * val_photos else max(1, len(order) // 5)
    return sorted(order[n_val:]), sorted(order[:n_val])


# --- the heads -------------------------------------------------------------------------------

def head_config(config: TrainConfig, model_cfg: dict[str, Any]) -> HeadConfig:
    return HeadConfig(
        pooled_dim=model_cfg["image_tower"]["pooled_dim"],
        num_classes=model_cfg["image_tower"]["num_classes"],
        text_dim=model_cfg["text_tower"]["dim"], dim=model_cfg["dim"],
        concept_top_k=model_cfg["concept_top_k"], init_scale=config.init_scale,
        init_bias=config.init_bias, head_type=config.head, hidden=config.hidden,
        pooled_norm=config.pooled_norm, pooled_sqrt=config.pooled_sqrt, dropout=config.dropout,
        tta=config.tta,
    )


def zero_shot_model(prep: Prepared, model_cfg: dict[str, Any]) -> FusedModel:
    """The untrained model with the model config's own prompts and t, b (the runtime's
    zero-shot model)."""
    from withsense.model.runtime import head_config as runtime_head_config

    concepts = prep.concepts if prep.prompts == model_cfg["concept_prompts"] else \
        prep.cache.concepts(model_cfg["concept_prompts"])
    return FusedModel(runtime_head_config(model_cfg), concepts).eval()


@torch.no_grad()
def embed(model: FusedModel, prep: Prepared, photo_rows: np.ndarray | None = None,
          text_rows: np.ndarray | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(image vectors of photo_rows, text vectors of text_rows); None means all."""
    model.eval()
    photos = torch.arange(len(prep.photos)) if photo_rows is None else torch.as_tensor(photo_rows)
    texts = torch.arange(len(prep.texts)) if text_rows is None else torch.as_tensor(text_rows)
    images = model.embed_image(prep.pooled[photos], prep.logits[photos])
    return images, model.embed_text(prep.text[texts])


def evaluate_retrieval(model: FusedModel, prep: Prepared, photos: list[str], *,
                       compliant: bool = True, seed: int = 0) -> dict[str, float]:
    """Text-to-image retrieval: each caption of these photos against (at most) 100 of them."""
    text_rows, photo_rows = prep.positives(photos, compliant=compliant)
    gallery = np.asarray([prep.photo_index[p] for p in photos])
    images, texts = embed(model, prep, gallery, text_rows)
    column = {row: i for i, row in enumerate(gallery)}
    positive = np.asarray([column[r] for r in photo_rows])
    return retrieval_metrics((texts @ images.T).numpy(), positive, gallery=GALLERY, seed=seed)


@dataclass
class _Best:
    epoch: int  # 0: the starting heads; -1: the zero-shot heads (when the start was ridge)
    score: float
    state: dict[str, torch.Tensor]
    metrics: dict[str, float]


@dataclass
class FitResult:
    model: FusedModel
    best_epoch: int
    history: list[dict[str, float]]
    val_metrics: dict[str, float]
    zero_shot_val: dict[str, float]
    seconds: float


@contextmanager
def torch_threads(count: int = 1) -> Iterator[None]:
    """Small matrices: one intra-op thread is faster than two fighting over shared cores."""
    from threadpoolctl import threadpool_limits

    previous = torch.get_num_threads()
    torch.set_num_threads(count)
    try:
        with threadpool_limits(limits=count):
            yield
    finally:
        torch.set_num_threads(previous)


def _seed_everything(seed: int) -> torch.Generator:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)


def fit_heads(prep: Prepared, train_photos: list[str], val_photos: list[str], config: TrainConfig,
              *, progress: bool = True, held_out: set[str] | None = None,
              desc: str = "training") -> FitResult:
    """Trains the heads on train_photos, early-stopping on val_photos' Recall@K (see
    ``_fit_heads``)."""
    with torch_threads(1):
        return _fit_heads(prep, train_photos, val_photos, config, progress=progress,
                          held_out=held_out, desc=desc)


def _fit_heads(prep: Prepared, train_photos: list[str], val_photos: list[str], config: TrainConfig,
               *, progress: bool, held_out: set[str] | None, desc: str) -> FitResult:
    """The training loop of ``fit_heads``.

    ``held_out``: photos whose captions must not reach training through judgments (validation
    and test photos): a judged pair is used only if its photo is a training photo and its
    caption was written for a photo outside ``held_out``.
    """
    from tqdm.auto import tqdm

    started = time.perf_counter()
    generator = _seed_everything(config.seed)
    model_cfg = prep.cache.model_config
    model = FusedModel(head_config(config, model_cfg), prep.concepts)
    train_rows = np.asarray([prep.photo_index[p] for p in train_photos])
    if config.pooled_norm:
        with torch.no_grad():  # mean 0, std 1 at this point: the inputs before standardising
            pooled = model.pooled_inputs(prep.pooled[torch.as_tensor(train_rows)])
            model.pooled_mean.copy_(pooled.mean(0))
            model.pooled_std.copy_(pooled.std(0).clamp_min(1e-3))
    with torch.no_grad():
        concept_all = model.concept_vectors(prep.logits)
    text_pos, photo_pos = prep.positives(train_photos)
    if text_pos.size == 0:
        raise ValueError("no caption-photo positives among the training photos")
    zero_shot_state = _state(model)
    if config.init == "ridge":
        if config.text_whiten > 0:
            whiten_text_head(model, prep.text[torch.as_tensor(text_pos)], eps=config.text_whiten,
                             center=config.text_center)
        ridge_init(model, prep, train_rows, text_pos, photo_pos, concept_all,
                   lam=config.ridge_lambda, concept_weight=config.ridge_concept_weight,
                   prior=config.ridge_prior)
    held_out = set(val_photos) | (held_out or set())
    judged = prep.judgments(train_photos, exclude_caption_photos=held_out,
                            expert_only=config.judgments == "expert")
    use_judgments = config.judgments != "none" and judged["text"].size > 0

    if not config.train_text:
        model.text_proj.requires_grad_(False)
        if config.head == "residual_mlp":
            model.text_mlp.requires_grad_(False)
    if not config.train_image:
        for module in (model.concept_proj, model.pooled_proj):
            module.requires_grad_(False)
        if config.head == "residual_mlp":
            model.image_mlp.requires_grad_(False)
    head_params = [p for n, p in model.named_parameters() if p.requires_grad and n not in ("scale", "bias")]
    init = [p.detach().clone() for p in head_params]
    groups = [{"params": head_params, "lr": config.lr},
              {"params": [model.scale, model.bias], "lr": config.scale_lr}]
    if config.optimizer == "sgd":
        optimizer: torch.optim.Optimizer = torch.optim.SGD(groups, momentum=0.9)
    else:
        optimizer = torch.optim.Adam(groups)

    def validate() -> dict[str, float]:
        metrics = evaluate_retrieval(model, prep, val_photos, seed=config.seed)
        metrics["recall_mean"] = recall_mean(metrics)
        return metrics

    start_val = validate()
    best = _Best(0, start_val["recall_mean"], _state(model), start_val)
    history = [{"epoch": 0, "loss": math.nan, **start_val}]
    zero_shot_val = start_val
    if config.init != "zero_shot":
        start_state = _state(model)
        model.load_state_dict(zero_shot_state)
        zero_shot_val = validate()
        model.load_state_dict(start_state)
        if zero_shot_val["recall_mean"] > best.score:
            best = _Best(-1, zero_shot_val["recall_mean"], zero_shot_state, zero_shot_val)
    text_pos_t, photo_pos_t = torch.as_tensor(text_pos), torch.as_tensor(photo_pos)
    hard: torch.Tensor | None = None
    bad_epochs = 0
    bar = tqdm(range(1, config.epochs + 1), desc=desc, disable=not progress, dynamic_ncols=True, leave=False)
    for epoch in bar:
        if config.hard_negatives > 0:
            hard = _hardest_photos(model, prep, text_pos_t, photo_pos_t, train_rows, config.hard_negatives)
        model.train()
        order = torch.randperm(len(text_pos_t), generator=generator)
        losses = []
        for start in range(0, len(order), config.batch_size):
            batch = order[start:start + config.batch_size]
            t_rows, p_rows = text_pos_t[batch], photo_pos_t[batch]
            candidates = p_rows if hard is None else torch.cat([p_rows, hard[batch].flatten()])
            columns = torch.unique(candidates)
            texts = model.embed_text(prep.text[t_rows])
            images = model.embed_image_from_concepts(prep.pooled[columns], concept_all[columns])
            logits = model.scale * texts @ images.T + model.bias
            # A caption's label is 1 for its own photo's column: the other captions of the same
            # photo share that column, so no caption of a photo is ever a negative of it.
            labels = (p_rows[:, None] == columns[None, :]).float()
            loss = F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / len(batch)
            if use_judgments:
                pick = torch.randint(0, len(judged["text"]), (config.judgment_batch,), generator=generator)
                j_text = torch.as_tensor(judged["text"])[pick]
                j_photo = torch.as_tensor(judged["photo"])[pick]
                j_soft = torch.as_tensor(judged["soft"])[pick]
                j_image = model.embed_image_from_concepts(prep.pooled[j_photo], concept_all[j_photo])
                j_cos = (model.embed_text(prep.text[j_text]) * j_image).sum(-1)
                loss = loss + config.judgment_weight * F.binary_cross_entropy_with_logits(
                    model.scale * j_cos + model.bias, j_soft)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            if config.weight_decay:
                with torch.no_grad():
                    for param, start_value in zip(head_params, init, strict=True):
                        param.sub_(config.lr * config.weight_decay * (param - start_value))
            losses.append(loss.item())
        metrics = validate()
        history.append({"epoch": epoch, "loss": float(np.mean(losses)), **metrics})
        bar.set_postfix(loss=f"{np.mean(losses):.3f}", R1=f"{metrics['R@1']:.3f}",
                        R5=f"{metrics['R@5']:.3f}", R10=f"{metrics['R@10']:.3f}",
                        MRR=f"{metrics['MRR']:.3f}", best=best.epoch)
        if metrics["recall_mean"] > best.score + 1e-9:
            best = _Best(epoch, metrics["recall_mean"], _state(model), metrics)
            bad_epochs = 0
        else:
            bad_epochs += 1
            if bad_epochs >= config.patience:
                break
    bar.close()
    if not config.early_stopping:
        best = _Best(len(history) - 1, history[-1]["recall_mean"], _state(model), history[-1])
    model.load_state_dict(best.state)
    model.eval()
    return FitResult(model, best.epoch, history, best.metrics, zero_shot_val,
                     time.perf_counter() - started)


@torch.no_grad()
def whiten_text_head(model: FusedModel, captions: torch.Tensor, *, eps: float, center: bool) -> None:
    """Text head start: a soft whitening of the training captions' MiniLM embeddings,
    ``(x - mean) C^-1/2`` with C the covariance plus ``eps`` on its eigenvalues. MiniLM's caption
    embeddings share a few dominant directions ("a man", "a dog", "outdoors"); flattening them
    lets the finer ones (colours, counts, actions) count in the cosine."""
    x = captions.double()
    mean = x.mean(0)
    centred = x - mean
    values, vectors = torch.linalg.eigh(centred.T @ centred / len(x))
    transform = vectors @ torch.diag((values.clamp_min(0) + eps).rsqrt()) @ vectors.T
    transform = transform / transform.diagonal().mean()  # keep the scale near identity's
    model.text_proj.weight.copy_(transform.T.float())
    model.text_proj.bias.copy_((-(mean @ transform) if center else torch.zeros_like(mean)).float())


@torch.no_grad()
def ridge_init(model: FusedModel, prep: Prepared, train_rows: np.ndarray, text_pos: np.ndarray,
               photo_pos: np.ndarray, concept_all: torch.Tensor, *, lam: float,
               concept_weight: float, prior: float = 0.0) -> None:
    """Closed-form start of the image head: ridge regression from [pooled inputs,
    concept_weight * concept vector] of each training photo to the normalised mean of its
    captions' text vectors (through the text head as it is now). Strong shrinkage (lam) is
    what keeps 500 photos from overfitting 1,664 inputs.

    The shrinkage pulls towards ``prior`` times the zero-shot map (the concept vector through
    the text head's own transform, pooled features unused) rather than towards zero:
    ``W = W0 + (X'X + lam I)^-1 X'(Y - X W0)``. Photos unlike the training ones (a cat, a cup of
    coffee: Flickr8k is mostly people and dogs) then keep their ConSE meaning instead of being
    pulled into the nearest Flickr8k caption."""
    rows = torch.as_tensor(train_rows)
    inputs = torch.cat([model.pooled_inputs(prep.pooled[rows]), concept_weight * concept_all[rows]], 1)
    model.eval()
    captions = model.embed_text(prep.text[torch.as_tensor(text_pos)]).double()
    target = torch.zeros(len(prep.photos), captions.shape[1], dtype=torch.float64)
    target.index_add_(0, torch.as_tensor(photo_pos), captions)
    target = F.normalize(target[rows], dim=-1)
    x = inputs.double()
    pooled_dim = model.config.pooled_dim
    start = torch.zeros(x.shape[1], target.shape[1], dtype=torch.float64)
    if prior:
        start[pooled_dim:] = prior * model.text_proj.weight.T.double() / concept_weight
    gram = x.T @ x + lam * torch.eye(x.shape[1], dtype=torch.float64)
    weights = start + torch.linalg.solve(gram, x.T @ (target - x @ start))  # [inputs, dim]
    model.pooled_proj.weight.copy_(weights[:pooled_dim].T.float())
    model.concept_proj.weight.copy_((concept_weight * weights[pooled_dim:]).T.float())
    model.concept_proj.bias.zero_()


def _state(model: FusedModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


@torch.no_grad()
def _hardest_photos(model: FusedModel, prep: Prepared, text_rows: torch.Tensor,
                    photo_rows: torch.Tensor, train_rows: np.ndarray, k: int) -> torch.Tensor:
    """[n_positives, k] photo rows: each caption's most similar training photos not its own."""
    gallery = torch.as_tensor(train_rows)
    images, texts = embed(model, prep, train_rows, text_rows.numpy())
    scores = texts @ images.T
    scores[gallery[None, :] == photo_rows[:, None]] = -math.inf
    return gallery[scores.topk(k, dim=1).indices]


# --- calibration ----------------------------------------------------------------------------

@torch.no_grad()
def pair_cosines(model: FusedModel, prep: Prepared, text_rows: np.ndarray,
                 photo_rows: np.ndarray) -> np.ndarray:
    if len(text_rows) == 0:
        return np.zeros(0)
    images, texts = embed(model, prep, photo_rows, text_rows)
    return (images * texts).sum(-1).numpy().astype(np.float64)


CALIBRATION_MODES = ("all", "expert", "balanced")


def calibrate_on_photos(model: FusedModel, prep: Prepared, photos: list[str],
                        mode: str = "expert") -> Calibration:
    """Fits t and b on the judged pairs of these (held-out) photos (see calibration.py)."""
    judged = prep.judgments(photos, expert_only=mode == "expert")
    cosine = pair_cosines(model, prep, judged["text"], judged["photo"])
    weight = None
    if mode == "balanced":
        expert = judged["expert"]
        n_expert, n_crowd = int(expert.sum()), int((~expert).sum())
        if n_expert and n_crowd:
            weight = np.where(expert, 0.5 / n_expert, 0.5 / n_crowd) * len(expert)
    result = calibrate(model, cosine, judged["label"], expert=judged["expert"], weight=weight)
    return replace(result, mode=mode)


# --- the whole run ---------------------------------------------------------------------------

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


def artifact_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in Path(path).iterdir() if p.is_file())


def _tower_descriptions(cache: FeatureCache) -> tuple[dict[str, Any], dict[str, Any]]:
    """The towers' describe() output, remembered in the cache by weights hash (no tower load)."""
    path = cache.root / "towers" / f"{cache.timm_name}-{cache.image_sha[:16]}-{cache.text_sha[:16]}.json"
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


def record_semantic_threshold(out: Path, model: FusedModel, cache: FeatureCache,
                              dataset: Dataset) -> dict[str, Any] | None:
    """The gateway's semantic child-query threshold, chosen in this model's text space on the data
    set's captions (``withsense_train.semantic``), recorded in the artifact's config.json as
    ``semantic_child_threshold`` (with the measurement under ``semantic_child_check``). None when
    the captions do not have both kinds."""
    from withsense.model.artifact import CONFIG_FILE

    from withsense_train.data import CAPTIONS_TXT
    from withsense_train.semantic import choose_semantic_threshold

    captions = [caption.text for caption in dataset.captions.values()]

    def embed(texts: list[str]) -> np.ndarray:
        with torch.no_grad():
            return model.embed_text(torch.from_numpy(cache.text(texts))).numpy()

    try:
        report: dict[str, Any] = choose_semantic_threshold(embed, captions)
    except ValueError as exc:
        log.warning("semantic child-query threshold not chosen: %s", exc)
        return None
    source = Path(CAPTIONS_TXT).name if (dataset.root / CAPTIONS_TXT).is_file() else "train_dataset.csv"
    report["captions"] = source
    path = out / CONFIG_FILE
    artifact_config = json.loads(path.read_text())
    artifact_config["semantic_child_threshold"] = report["threshold"]
    artifact_config["semantic_child_check"] = report
    path.write_text(json.dumps(artifact_config, indent=2) + "\n")
    return report


def train(data_dir: Path | str, out_dir: Path | str, config: TrainConfig | None = None, *,
          cache_dir: Path | None = None, progress: bool = True,
          dataset: Dataset | None = None) -> TrainResult:
    """Trains, calibrates, evaluates and exports the artifact to ``out_dir``."""
    from withsense_train.evaluate import compare_on_split, demo_gallery_metrics, kfold_evaluate

    config = config or TrainConfig()
    timings: dict[str, float] = {}
    started = time.perf_counter()
    dataset = dataset or load_dataset(data_dir)
    timings["load"] = time.perf_counter() - started
    model_cfg = model_config(config.model)
    cache = FeatureCache(model_cfg, cache_dir, progress=progress)
    step = time.perf_counter()
    prep = prepare(dataset, cache, tta=config.tta, prompts=config.concept_prompts())
    timings["features"] = time.perf_counter() - step
    for line in prep.filtered.report.lines():
        log.info(line)
    train_photos, val_photos = split_photos(prep.photos, config.val_photos, config.seed)
    step = time.perf_counter()
    fit = fit_heads(prep, train_photos, val_photos, config, progress=progress)
    timings["fit"] = time.perf_counter() - step
    trained_before_calibration = {"scale": float(fit.model.scale.detach()),
                                  "bias": float(fit.model.bias.detach())}
    uncalibrated = copy.deepcopy(fit.model)
    calibration = calibrate_on_photos(fit.model, prep, val_photos, config.calibration) \
        if config.calibrate else None

    step = time.perf_counter()
    comparison = compare_on_split(prep, fit.model, train_photos, val_photos, seed=config.seed,
                                  uncalibrated=uncalibrated)
    gallery = demo_gallery_metrics(
        {"zero-shot": zero_shot_model(prep, model_cfg), "trained": fit.model}, cache)
    timings["evaluate"] = time.perf_counter() - step
    kfold = None
    if config.folds and config.folds > 1:
        step = time.perf_counter()
        kfold = kfold_evaluate(dataset, config, folds=config.folds, cache=cache, progress=progress)
        timings["kfold"] = time.perf_counter() - step

    image_desc, text_desc = _tower_descriptions(cache)
    card = {
        "kind": "trained",
        "created_by": "withsense_train.train",
        "command": "withsense train --data DIR --out DIR",
        "data": {"path": str(dataset.root), "sha256": dataset.data_hash(), **dataset.summary()},
        "filtering": prep.filtered.report.as_dict(),
        "training": {
            "config": asdict(config), "concept_prompts": prep.prompts,
            "train_photos": len(train_photos), "val_photos": len(val_photos),
            "train_positives": int(prep.positives(train_photos)[0].size),
            "best_epoch": fit.best_epoch, "epochs_run": len(fit.history) - 1,
            "history": [{k: (round(v, 4) if isinstance(v, float) else v) for k, v in h.items()}
                        for h in fit.history],
            "scale_bias_before_calibration": trained_before_calibration,
            "seconds": round(fit.seconds, 1),
        },
        "validation_split": {"seed": config.seed, "photos": val_photos},
        "calibration": calibration.as_dict() if calibration else None,
        "metrics": {"validation_split": comparison, "kfold": kfold, "demo_gallery": gallery},
        "versions": {"torch": torch.__version__, "timm": package_version("timm"),
                     "sentence-transformers": package_version("sentence-transformers"),
                     "withsense": package_version("withsense")},
    }
    out = save_artifact(
        fit.model, Path(out_dir), name=model_cfg["name"], image_tower=image_desc,
        text_tower=text_desc, concept_prompts=prep.prompts, zero_shot=False, card=card,
    )
    semantic = record_semantic_threshold(out, fit.model, cache, dataset)
    if semantic is not None:
        card["semantic_child_check"] = semantic
    timings["total"] = time.perf_counter() - started
    card["seconds"] = {k: round(v, 1) for k, v in timings.items()}
    (out / "model_card.json").write_text(json.dumps(card, indent=2) + "\n")
    return TrainResult(out, fit.model, config, fit.best_epoch, fit.history,
                       calibration.as_dict() if calibration else {}, prep.filtered.report.as_dict(),
                       comparison, kfold, gallery, card, timings)
