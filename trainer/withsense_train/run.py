"""One training run as a sequence of named stages (``train.train`` lists them).

``TrainRun`` holds what the stages share: each stage is a function ``stage(run) -> None`` that
reads what earlier stages left on the run and sets its own fields. ``run.stage(name, function)``
runs one and times it (``run.seconds[name]``).

A component of the artifact beyond the heads (a detector, a fusion model, a text map, ...) is a
stage in a module of its own, run after the ``artifact`` stage: it trains from ``run.prep``
(features of the legally filtered data), ``run.train_photos`` / ``run.val_photos`` and
``run.fit.model``, saves its file(s) into ``run.out`` and calls ``run.add_component(name, files,
card)``: the files' hashes go into config.json ``files`` (loading checks them) and ``card``
becomes the section ``name`` of model_card.json.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from withsense.model.artifact import record_files
from withsense.model.fused import FusedModel

from withsense_train.calibration import Calibration
from withsense_train.config import TrainConfig
from withsense_train.data import Dataset
from withsense_train.features import FeatureCache
from withsense_train.fit import FitResult
from withsense_train.prepare import Prepared


@dataclass
class TrainRun:
    """The state of one training run, filled in stage by stage."""

    data_dir: Path
    out: Path
    config: TrainConfig
    cache_dir: Path | None = None
    progress: bool = True
    dataset: Dataset | None = None  # set by the "load" stage unless given
    # "features": the model config, the feature cache, prepared features, the split by photo
    model_cfg: dict[str, Any] = field(init=False)
    cache: FeatureCache = field(init=False)
    prep: Prepared = field(init=False)
    train_photos: list[str] = field(init=False)
    val_photos: list[str] = field(init=False)
    # "fit": the trained (and calibrated) heads, and a copy from before calibration
    fit: FitResult = field(init=False)
    uncalibrated: FusedModel = field(init=False)
    calibration: Calibration | None = None
    # "evaluate" and "kfold": metrics for the model card
    comparison: dict[str, Any] = field(default_factory=dict)
    gallery: dict[str, Any] = field(default_factory=dict)
    kfold: dict[str, Any] | None = None
    # "artifact" and the component stages after it
    card: dict[str, Any] = field(default_factory=dict)
    components: dict[str, list[str]] = field(default_factory=dict)  # name -> its files
    seconds: dict[str, float] = field(default_factory=dict)
    started: float = field(default_factory=time.perf_counter)

    def stage(self, name: str, function: Callable[[TrainRun], None]) -> None:
        """Runs one stage and records how long it took."""
        step = time.perf_counter()
        function(self)
        self.seconds[name] = time.perf_counter() - step

    def add_component(self, name: str, files: list[str], card: dict[str, Any]) -> None:
        """Records a component's files (written into ``self.out``) in config.json ``files`` and its
        section ``name`` of the model card (written when the run ends)."""
        if name in self.card:
            raise ValueError(f"model card already has a section {name!r}")
        hashes = record_files(self.out, files)
        self.components[name] = list(files)
        self.card[name] = {**card, "files": hashes}
