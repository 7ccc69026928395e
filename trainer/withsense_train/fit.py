"""Fitting the fused model's heads on prepared features (LiT-style: towers frozen, heads trained).

``fit_heads(prep, train_photos, val_photos, config) -> FitResult``:

1. the heads' start (``init="ridge"``, the default): the text head softly whitens the MiniLM
   space of the training captions (``whiten_text_head``); the image head is the closed-form ridge
   regression from a photo's [signed-sqrt, standardised pooled features, ConSE concept vector] to
   the mean of its captions' text vectors (``ridge_init``). (``init="zero_shot"``: identity
   heads, i.e. the ConSE model.)
2. heads trained with the sigmoid (SigLIP) loss (by default the text head and t, b; the image
   head with ``train_image``): positives are every caption whose query_id names the photo
   (train_dataset.csv and extra/captions.txt); negatives are the other photos in the batch,
   never a photo whose caption it is (the label matrix compares photos, so two captions of one
   photo are both positives of it); expert and crowd judgments of training photos add a
   soft-label term (the graded target: expert mean mapped to 0..1, else the crowd share);
3. early stopping on validation Recall@K (mean of R@1, R@5, R@10) over the zero-shot heads, the
   start and every epoch, so training is only kept when validation says it is better.

Everything is seeded: the same features, photos, config and seed give the same heads.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
from torch.nn import functional as F
from withsense.model.fused import FusedModel

from withsense_train.config import TrainConfig
from withsense_train.metrics import GALLERY, recall_mean, retrieval_metrics
from withsense_train.prepare import Prepared, embed, head_config, seed_everything, torch_threads

Metrics = dict[str, float]


@dataclass
class FitResult:
    model: FusedModel
    best_epoch: int
    history: list[dict[str, float]]
    val_metrics: dict[str, float]
    zero_shot_val: dict[str, float]
    seconds: float


@dataclass
class _Best:
    epoch: int  # 0: the starting heads; -1: the zero-shot heads (when the start was ridge)
    score: float
    state: dict[str, torch.Tensor]
    metrics: dict[str, float]


@dataclass
class _Pairs:
    """What a fit learns from: the training photos' rows, their caption-photo positives, every
    photo's concept vector and (None when unused) the judged pairs of the soft-label term."""

    train_rows: np.ndarray
    text_pos: torch.Tensor
    photo_pos: torch.Tensor
    concept_all: torch.Tensor
    judged: dict[str, np.ndarray] | None


def fit_heads(prep: Prepared, train_photos: list[str], val_photos: list[str], config: TrainConfig,
              *, progress: bool = True, held_out: set[str] | None = None,
              desc: str = "training") -> FitResult:
    """Trains the heads on train_photos, early-stopping on val_photos' Recall@K.

    ``held_out``: photos whose captions must not reach training through judgments (validation
    and test photos): a judged pair is used only if its photo is a training photo and its
    caption was written for a photo outside ``held_out``.
    """
    with torch_threads(1):
        return _fit_heads(prep, train_photos, val_photos, config, progress=progress,
                          held_out=set(val_photos) | (held_out or set()), desc=desc)


def _fit_heads(prep: Prepared, train_photos: list[str], val_photos: list[str], config: TrainConfig,
               *, progress: bool, held_out: set[str], desc: str) -> FitResult:
    from tqdm.auto import tqdm

    started = time.perf_counter()
    generator = seed_everything(config.seed)
    model = FusedModel(head_config(config, prep.cache.model_config), prep.concepts)
    train_rows = np.asarray([prep.photo_index[p] for p in train_photos])
    if config.pooled_norm:
        _standardise_pooled(model, prep, train_rows)
    pairs = _training_pairs(model, prep, train_photos, train_rows, held_out, config)
    zero_shot_state = _state(model)
    if config.init == "ridge":
        _ridge_start(model, prep, pairs, config)
    _freeze(model, config)
    stepper = _Stepper(model, config)

    def validate() -> Metrics:
        return _validate(model, prep, val_photos, config.seed)

    best, history, zero_shot_val = _starting_point(model, zero_shot_state, validate, config)
    bar = tqdm(range(1, config.epochs + 1), desc=desc, disable=not progress, dynamic_ncols=True, leave=False)
    best = _run_epochs(model, prep, pairs, stepper, validate, best, history, config, generator, bar)
    bar.close()
    if not config.early_stopping:
        best = _Best(len(history) - 1, history[-1]["recall_mean"], _state(model), history[-1])
    model.load_state_dict(best.state)
    model.eval()
    return FitResult(model, best.epoch, history, best.metrics, zero_shot_val,
                     time.perf_counter() - started)


# --- the start -------------------------------------------------------------------------------

@torch.no_grad()
def _standardise_pooled(model: FusedModel, prep: Prepared, train_rows: np.ndarray) -> None:
    """Mean and std of the training photos' pooled inputs (the model's are 0 and 1 here, so
    pooled_inputs gives the inputs before standardising)."""
    pooled = model.pooled_inputs(prep.pooled[torch.as_tensor(train_rows)])
    model.pooled_mean.copy_(pooled.mean(0))
    model.pooled_std.copy_(pooled.std(0).clamp_min(1e-3))


def _training_pairs(model: FusedModel, prep: Prepared, train_photos: list[str],
                    train_rows: np.ndarray, held_out: set[str], config: TrainConfig) -> _Pairs:
    with torch.no_grad():
        concept_all = model.concept_vectors(prep.logits)
    text_pos, photo_pos = prep.positives(train_photos)
    if text_pos.size == 0:
        raise ValueError("no caption-photo positives among the training photos")
    judged = prep.judgments(train_photos, exclude_caption_photos=held_out,
                            expert_only=config.judgments == "expert")
    use_judgments = config.judgments != "none" and judged["text"].size > 0
    return _Pairs(train_rows, torch.as_tensor(text_pos), torch.as_tensor(photo_pos), concept_all,
                  judged if use_judgments else None)


def _ridge_start(model: FusedModel, prep: Prepared, pairs: _Pairs, config: TrainConfig) -> None:
    text_pos, photo_pos = pairs.text_pos.numpy(), pairs.photo_pos.numpy()
    if config.text_whiten > 0:
        whiten_text_head(model, prep.text[torch.as_tensor(text_pos)], eps=config.text_whiten,
                         center=config.text_center)
    ridge_init(model, prep, pairs.train_rows, text_pos, photo_pos, pairs.concept_all,
               lam=config.ridge_lambda, concept_weight=config.ridge_concept_weight,
               prior=config.ridge_prior)


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
               concept_weight: float, prior: float = 0.0, target: torch.Tensor | None = None) -> None:
    """Closed-form start of the image head: ridge regression from [pooled inputs,
    concept_weight * concept vector] of each training photo to the normalised mean of its
    captions' text vectors (through the text head as it is now). Strong shrinkage (lam) is
    what keeps 500 photos from overfitting 1,664 inputs.

    The shrinkage pulls towards ``prior`` times the zero-shot map (the concept vector through
    the text head's own transform, pooled features unused) rather than towards zero:
    ``W = W0 + (X'X + lam I)^-1 X'(Y - X W0)``. Photos unlike the training ones (a cat, a cup of
    coffee: Flickr8k is mostly people and dogs) then keep their ConSE meaning instead of being
    pulled into the nearest Flickr8k caption.

    ``target``: other targets [len(train_rows), dim] (benchmarks/pixel_attempts.py tries some)."""
    rows = torch.as_tensor(train_rows)
    inputs = torch.cat([model.pooled_inputs(prep.pooled[rows]), concept_weight * concept_all[rows]], 1)
    model.eval()
    if target is None:
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


def _freeze(model: FusedModel, config: TrainConfig) -> None:
    """Keeps the heads the config does not train at their start."""
    if not config.train_text:
        model.text_proj.requires_grad_(False)
        if config.head == "residual_mlp":
            model.text_mlp.requires_grad_(False)
    if not config.train_image:
        for module in (model.concept_proj, model.pooled_proj):
            module.requires_grad_(False)
        if config.head == "residual_mlp":
            model.image_mlp.requires_grad_(False)


class _Stepper:
    """One optimiser step: the heads at ``lr``, t and b at ``scale_lr``, then decoupled weight
    decay of the heads towards their start (not towards zero: the start is already good)."""

    def __init__(self, model: FusedModel, config: TrainConfig) -> None:
        self.head_params = [p for n, p in model.named_parameters()
                            if p.requires_grad and n not in ("scale", "bias")]
        self.start = [p.detach().clone() for p in self.head_params]
        self.decay = config.lr * config.weight_decay
        groups = [{"params": self.head_params, "lr": config.lr},
                  {"params": [model.scale, model.bias], "lr": config.scale_lr}]
        self.optimizer: torch.optim.Optimizer = torch.optim.SGD(groups, momentum=0.9) \
            if config.optimizer == "sgd" else torch.optim.Adam(groups)

    def step(self, loss: torch.Tensor) -> None:
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()
        if self.decay:
            with torch.no_grad():
                for param, start_value in zip(self.head_params, self.start, strict=True):
                    param.sub_(self.decay * (param - start_value))


# --- validation and the best heads -----------------------------------------------------------

def evaluate_retrieval(model: FusedModel, prep: Prepared, photos: list[str], *,
                       compliant: bool = True, seed: int = 0) -> dict[str, float]:
    """Text-to-image retrieval: each caption of these photos against (at most) 100 of them."""
    text_rows, photo_rows = prep.positives(photos, compliant=compliant)
    gallery = np.asarray([prep.photo_index[p] for p in photos])
    images, texts = embed(model, prep, gallery, text_rows)
    column = {row: i for i, row in enumerate(gallery)}
    positive = np.asarray([column[r] for r in photo_rows])
    return retrieval_metrics((texts @ images.T).numpy(), positive, gallery=GALLERY, seed=seed)


def _validate(model: FusedModel, prep: Prepared, val_photos: list[str], seed: int) -> Metrics:
    metrics = evaluate_retrieval(model, prep, val_photos, seed=seed)
    metrics["recall_mean"] = recall_mean(metrics)
    return metrics


def _starting_point(model: FusedModel, zero_shot_state: dict[str, torch.Tensor],
                    validate: Callable[[], Metrics],
                    config: TrainConfig) -> tuple[_Best, list[dict[str, float]], Metrics]:
    """(the better of the start and the zero-shot heads, history with the start as epoch 0, the
    zero-shot heads' validation metrics)."""
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
    return best, history, zero_shot_val


def _state(model: FusedModel) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


# --- the epochs ------------------------------------------------------------------------------

def _run_epochs(model: FusedModel, prep: Prepared, pairs: _Pairs, stepper: _Stepper,
                validate: Callable[[], Metrics], best: _Best, history: list[dict[str, float]],
                config: TrainConfig, generator: torch.Generator, bar: Any) -> _Best:
    """Trains epoch by epoch (appending to ``history``) until ``patience`` epochs bring no better
    validation Recall@K; returns the best heads seen."""
    bad_epochs = 0
    for epoch in bar:
        losses = _train_epoch(model, prep, pairs, stepper, config, generator)
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
    return best


def _train_epoch(model: FusedModel, prep: Prepared, pairs: _Pairs, stepper: _Stepper,
                 config: TrainConfig, generator: torch.Generator) -> list[float]:
    """One pass over the positives in seeded batches; the batches' losses."""
    hard = None
    if config.hard_negatives > 0:
        hard = _hardest_photos(model, prep, pairs.text_pos, pairs.photo_pos, pairs.train_rows,
                               config.hard_negatives)
    model.train()
    order = torch.randperm(len(pairs.text_pos), generator=generator)
    losses = []
    for start in range(0, len(order), config.batch_size):
        batch = order[start:start + config.batch_size]
        loss = _siglip_loss(model, prep, pairs, batch, hard)
        if pairs.judged is not None:
            loss = loss + config.judgment_weight * _judgment_loss(
                model, prep, pairs, config.judgment_batch, generator)
        stepper.step(loss)
        losses.append(loss.item())
    return losses


def _siglip_loss(model: FusedModel, prep: Prepared, pairs: _Pairs, batch: torch.Tensor,
                 hard: torch.Tensor | None) -> torch.Tensor:
    """The sigmoid loss of a batch of captions against the batch's photos (and their hard
    negatives), summed over photos and averaged over captions."""
    t_rows, p_rows = pairs.text_pos[batch], pairs.photo_pos[batch]
    candidates = p_rows if hard is None else torch.cat([p_rows, hard[batch].flatten()])
    columns = torch.unique(candidates)
    texts = model.embed_text(prep.text[t_rows])
    images = model.embed_image_from_concepts(prep.pooled[columns], pairs.concept_all[columns])
    logits = model.scale * texts @ images.T + model.bias
    # A caption's label is 1 for its own photo's column: the other captions of the same
    # photo share that column, so no caption of a photo is ever a negative of it.
    labels = (p_rows[:, None] == columns[None, :]).float()
    return F.binary_cross_entropy_with_logits(logits, labels, reduction="sum") / len(batch)


def _judgment_loss(model: FusedModel, prep: Prepared, pairs: _Pairs, size: int,
                   generator: torch.Generator) -> torch.Tensor:
    """The soft-label term: a seeded draw of judged pairs against their graded targets."""
    judged = pairs.judged
    assert judged is not None
    pick = torch.randint(0, len(judged["text"]), (size,), generator=generator)
    j_text = torch.as_tensor(judged["text"])[pick]
    j_photo = torch.as_tensor(judged["photo"])[pick]
    j_soft = torch.as_tensor(judged["soft"])[pick]
    j_image = model.embed_image_from_concepts(prep.pooled[j_photo], pairs.concept_all[j_photo])
    j_cos = (model.embed_text(prep.text[j_text]) * j_image).sum(-1)
    return F.binary_cross_entropy_with_logits(model.scale * j_cos + model.bias, j_soft)


@torch.no_grad()
def _hardest_photos(model: FusedModel, prep: Prepared, text_rows: torch.Tensor,
                    photo_rows: torch.Tensor, train_rows: np.ndarray, k: int) -> torch.Tensor:
    """[n_positives, k] photo rows: each caption's most similar training photos not its own."""
    gallery = torch.as_tensor(train_rows)
    images, texts = embed(model, prep, train_rows, text_rows.numpy())
    scores = texts @ images.T
    scores[gallery[None, :] == photo_rows[:, None]] = -math.inf
    return gallery[scores.topk(k, dim=1).indices]
