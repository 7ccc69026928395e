"""Fine-tuning the top of Lite2 for the minor detector on cached activations (issue 14, route 2).

``--write`` caches, per photo and view (centre, mirrored), the activations below Lite2's last
block (``blocks[5]`` out, [208, 9, 9]) and below its 1x1 ``conv_head`` (``blocks[6]`` out,
[352, 9, 9]) as float16, so that a CPU can train the layers above them. ``finetune_fitter``
trains, per training fold:

- ``part="bn"``: ``bn2`` alone (its per-channel scale and shift before ReLU6 and pooling: which
  of the 1280 final channels count, and from what level), on ``conv_head``'s output computed
  once from the cached ``blocks[6]`` out (the frozen tower computes that map anyway);
- ``part="head"``: ``conv_head`` + ``bn2`` (from ``blocks[6]`` out), or
- ``part="block"``: ``blocks[6]`` + ``conv_head`` + ``bn2`` (from ``blocks[5]`` out),

then global average pooling and a new linear classifier on the signed square root of the
pooled features, initialised from the frozen route's logistic regression. Augmentation: a random
view (centre or mirrored) and a random 7 x 7 window of the 9 x 9 map (a crop of ~78% of the
photo) per photo and step. Colour jitter cannot act on cached activations and is not used.
Early stopping: 20% of the training fold (stratified, seeded) is held out; the epoch with the
best ROC-AUC there is kept. Prediction: the mean p of the two full views (the shipped TTA).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import train_test_split

VIEWS = ("center", "flip")
LEVELS = {"bn": "b6", "head": "b6", "block": "b5"}  # part trained -> cached activation below it
PARTS = {"bn": ("bn2",), "head": ("conv_head", "bn2"), "block": ("blocks.6", "conv_head", "bn2")}


def part_layers(model, part: str) -> list[torch.nn.Module]:
    """The tower's layers that ``part`` trains, bottom up."""
    return [model.get_submodule(name) for name in PARTS[part]]


def conv_head_outputs(model, acts: torch.Tensor) -> torch.Tensor:
    """``conv_head`` of cached ``blocks[6]`` outputs [N, V, 352, 9, 9] -> [N, V, 1280, 9, 9] fp16
    (the input of ``part="bn"``)."""
    with torch.inference_mode():
        return torch.stack([torch.cat([model.conv_head(acts[i:i + 64, v].float()).half()
                                       for i in range(0, len(acts), 64)])
                            for v in range(acts.shape[1])], 1)


def write_activations(tower, paths: list[Path], folder: Path, batch: int = 16) -> None:
    """Caches every photo's activations (resumable, one file per batch of ``batch`` photos)."""
    from PIL import Image
    from tqdm import tqdm

    model = tower.model
    folder.mkdir(parents=True, exist_ok=True)
    for start in tqdm(range(0, len(paths), batch), desc="activations"):
        target = folder / f"{start:04d}.npz"
        if target.exists():
            continue
        pixels = tower.preprocess([Image.open(p).convert("RGB") for p in paths[start:start + batch]])
        out = {}
        with torch.inference_mode():
            for view, px in zip(VIEWS, (pixels, pixels.flip(-1)), strict=True):
                h = model.bn1(model.conv_stem(px.contiguous(memory_format=torch.channels_last)))
                for block in model.blocks[:6]:
                    h = block(h)
                out[f"{view}_b5"] = h.float().numpy().astype(np.float16)
                out[f"{view}_b6"] = model.blocks[6](h).float().numpy().astype(np.float16)
        np.savez(target, **out)


def load_activations(folder: Path, level: str, photos: int) -> torch.Tensor:
    """[photos, 2 views, C, 9, 9] float16 of one level ("b5" or "b6")."""
    files = sorted(folder.glob("*.npz"))
    parts = []
    for f in files:
        data = np.load(f)
        parts.append(np.stack([data[f"{v}_{level}"] for v in VIEWS], 1))
    acts = np.concatenate(parts)
    if len(acts) != photos:
        raise ValueError(f"{folder}: {len(acts)} photos of activations, expected {photos}")
    return torch.from_numpy(acts)


class Top(torch.nn.Module):
    """The trained part of the tower, pooling, and a linear classifier on sqrt(pooled)."""

    def __init__(self, model, part: str, mean: np.ndarray, std: np.ndarray,
                 weight: np.ndarray, bias: float) -> None:
        super().__init__()
        self.body = torch.nn.Sequential(*copy.deepcopy(part_layers(model, part))).float()
        self.register_buffer("mean", torch.from_numpy(mean))
        self.register_buffer("std", torch.from_numpy(std))
        self.classifier = torch.nn.Linear(len(mean), 1)
        with torch.no_grad():
            self.classifier.weight.copy_(torch.from_numpy(weight)[None])
            self.classifier.bias.fill_(bias)

    def forward(self, acts: torch.Tensor) -> torch.Tensor:
        pooled = self.body(acts).mean((2, 3))
        z = (pooled.sign() * pooled.abs().sqrt() - self.mean) / self.std
        return self.classifier(z)[:, 0]


def _frozen_pooled(model, part: str, acts: torch.Tensor) -> np.ndarray:
    """Mean over views of the frozen tower's pooled features of these photos' activations."""
    body = torch.nn.Sequential(*part_layers(model, part)).eval()
    with torch.inference_mode():
        views = [torch.cat([body(acts[i:i + 64, v].float()).mean((2, 3))
                            for i in range(0, len(acts), 64)]) for v in range(acts.shape[1])]
    return torch.stack(views).mean(0).numpy()


def _predict(top: Top, acts: torch.Tensor) -> np.ndarray:
    top.eval()
    with torch.inference_mode():
        p = [torch.sigmoid(torch.cat([top(acts[i:i + 64, v].float())
                                      for i in range(0, len(acts), 64)])) for v in range(acts.shape[1])]
    return torch.stack(p).mean(0).numpy()


LEARNING_RATES = {"bn": 1e-3, "head": 1e-4, "block": 1e-4}  # of the tower's part (head: x10)


def finetune_fitter(model, acts: torch.Tensor, part: str, *, c: float = 0.0005,
                    lr: float | None = None,
                    epochs: int = 6, batch: int = 32, seed: int = 0):
    """A Fitter (``withsense_train.minor``) whose x is [rows, 1] photo indices into ``acts``."""
    if part not in LEVELS:
        raise ValueError(f"part must be one of {sorted(LEVELS)}")
    lr = lr or LEARNING_RATES[part]

    def fit(x: np.ndarray, y: np.ndarray, w: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        index = x[:, 0].astype(np.int64)
        inner, held = train_test_split(np.arange(len(index)), test_size=0.2, stratify=y,
                                       random_state=seed)
        pooled = _frozen_pooled(model, part, acts[index[inner]])
        feats = np.sign(pooled) * np.sqrt(np.abs(pooled))
        mean, std = feats.mean(0), np.maximum(feats.std(0), 1e-3)
        start = LogisticRegression(C=c, max_iter=3000, random_state=seed)
        start.fit((feats - mean) / std, y[inner], sample_weight=w[inner])
        top = Top(model, part, mean.astype(np.float32), std.astype(np.float32),
                  start.coef_[0].astype(np.float32), float(start.intercept_[0]))
        initial = [p.detach().clone() for p in top.body.parameters()]
        optimiser = torch.optim.AdamW([{"params": top.body.parameters(), "lr": lr},
                                       {"params": top.classifier.parameters(), "lr": lr * 10}],
                                      weight_decay=0.0)
        held_acts, held_y = acts[index[held]], y[held]
        best = (roc_auc_score(held_y, _predict(top, held_acts)), copy.deepcopy(top.state_dict()))
        target = torch.as_tensor(y, dtype=torch.float32)
        weight = torch.as_tensor(w, dtype=torch.float32)
        for _ in range(epochs):
            top.train()
            for module in top.body.modules():  # BN statistics stay those of ImageNet
                if isinstance(module, torch.nn.BatchNorm2d):
                    module.eval()
            order = rng.permutation(inner)
            for s in range(0, len(order), batch):
                rows = order[s:s + batch]
                view = rng.integers(0, acts.shape[1], len(rows))
                dy, dx = rng.integers(0, 3, 2)
                batch_acts = acts[index[rows], view][:, :, dy:dy + 7, dx:dx + 7].float()
                loss = torch.nn.functional.binary_cross_entropy_with_logits(
                    top(batch_acts), target[rows], weight=weight[rows], reduction="sum")
                loss = loss + top.classifier.weight.square().sum() * len(rows) / (2 * c * len(inner))
                loss = loss + sum((p - p0).square().sum() for p, p0
                                  in zip(top.body.parameters(), initial, strict=True)) * 0.01
                optimiser.zero_grad()
                (loss / len(rows)).backward()
                optimiser.step()
            score = roc_auc_score(held_y, _predict(top, held_acts))
            if score > best[0]:
                best = (score, copy.deepcopy(top.state_dict()))
        top.load_state_dict(best[1])
        return lambda z: _predict(top, acts[z[:, 0].astype(np.int64)])
    return fit


def top_ms(model, acts: torch.Tensor, part: str, photos: int = 16) -> float:
    """ms per photo of a second copy of the trained part on both views (what the worker would
    add; for "bn", a second bn2 + pooling on the map the frozen tower computes anyway), eager
    torch, one thread; the median of 3."""
    import time

    body = torch.nn.Sequential(*part_layers(model, part)).eval()
    sample = acts[:photos].float()
    runs = []
    with torch.inference_mode():
        for _ in range(3):
            started = time.perf_counter()
            for v in range(sample.shape[1]):
                body(sample[:, v]).mean((2, 3))
            runs.append((time.perf_counter() - started) * 1000 / len(sample))
    return float(np.median(runs))
