"""The command-line hooks of ``withsense train`` and ``withsense evaluate``.

API for the ``withsense`` command (services/withsense/cli), all argparse-compatible:

- ``add_train_arguments(parser: argparse.ArgumentParser) -> None``: registers the flags of
  ``withsense train`` on a (sub)parser: ``--data DIR --out DIR [--json] [--cache DIR]
  [--config lite0|lite2] [--head linear|residual_mlp] [--tta none|flip] [--folds K] ...``
  (every field of ``config.TrainConfig`` has a flag; ``--help`` lists them with defaults).
- ``train_command(args: argparse.Namespace) -> int``: trains, calibrates, evaluates and writes
  the artifact to ``--out``; prints a summary (or JSON with ``--json``); returns the exit code
  (0 ok, 2 invalid data set or artifact).
- ``add_evaluate_arguments(parser) -> None``: ``--data DIR [--artifact DIR] [--json]
  [--cache DIR] [--folds K] [--include-flagged]``.
- ``evaluate_command(args) -> int``: the metrics table of the trained model, the zero-shot model
  and the customer's first approach (see ``evaluate.evaluate_data`` for which split), 0 or 2.

Feature caches live in ``--cache`` or ``$WITHSENSE_DATA_DIR/cache``. Progress bars go to stderr
(``--quiet`` turns them off), so ``--json`` output on stdout stays clean.

Example (the shipped artifact)::

    withsense train --data ../shared/data/withsense --out services/withsense/model/artifacts/default
    withsense evaluate --data ../shared/data/withsense --folds 5
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import fields
from pathlib import Path
from typing import Any

from withsense_train.config import CHOICES, TrainConfig

log = logging.getLogger(__name__)

_HELP = {
    "model": "model config (towers): lite0, lite2 or lite2-lite0 (both image networks, an ensemble)",
    "head": "head type: linear (identity init) or residual_mlp",
    "hidden": "width of the residual MLP",
    "tta": "test-time augmentation of photos: none or flip (mean with the mirror image)",
    "image_precision": "image tower features the heads learn from: fp32, or int8 (the worker's "
                       "quantized graph; its calibration table ships in the artifact)",
    "prompts": "ImageNet concept prompts: default (the model config's) or ensemble",
    "pooled_norm": "standardise the pooled image features",
    "dropout": "input dropout while training",
    "epochs": "most epochs (early stopping usually ends sooner)",
    "batch_size": "captions per batch (in-batch negatives)",
    "lr": "learning rate of the heads",
    "scale_lr": "learning rate of t and b",
    "weight_decay": "decoupled weight decay towards the zero-shot initialisation",
    "patience": "epochs without a better validation Recall@K before stopping",
    "early_stopping": "keep the best validation epoch (else the last)",
    "init": "start of the heads: ridge (closed form) or zero_shot (identity, ConSE)",
    "ridge_lambda": "ridge shrinkage of the closed-form image head",
    "ridge_concept_weight": "weight of the ConSE concept vector among the ridge inputs",
    "ridge_prior": "weight of the zero-shot map that the ridge head is shrunk towards",
    "text_whiten": "eigenvalue floor of the text head's whitening (0: identity text head)",
    "text_center": "subtract the mean caption in the text head",
    "pooled_sqrt": "signed square root of the pooled image features",
    "train_image": "train the image head with SigLIP (else it keeps its start)",
    "optimizer": "adam or sgd",
    "calibration": "pairs of the t, b fit: expert, balanced or all",
    "val_photos": "held-out photos of the validation split",
    "seed": "seed of the split, batches and initialisation",
    "init_scale": "initial t of p = sigmoid(t cos + b)",
    "init_bias": "initial b",
    "train_text": "train the text head (else it stays at identity)",
    "judgments": "soft labels from judgments: none, expert or expert+crowd",
    "judgment_weight": "weight of the soft-label loss",
    "judgment_batch": "judged pairs per step",
    "hard_negatives": "hardest other photos added per caption to its batch",
    "calibrate": "fit t and b on the validation split's judgments",
    "folds": "K-fold evaluation by photo after training, for the model card (0: none)",
}


def add_train_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True,
                        help="data set folder in the customer's format")
    parser.add_argument("--out", type=Path, required=True, help="artifact folder to write")
    parser.add_argument("--cache", type=Path, help="feature cache (default $WITHSENSE_DATA_DIR/cache)")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    defaults = TrainConfig()
    group = parser.add_argument_group("training config (recorded in the model card)")
    for item in fields(TrainConfig):
        name = item.name
        default = getattr(defaults, name)
        flag = "--config" if name == "model" else "--" + name.replace("_", "-")
        help_text = f"{_HELP.get(name, name)} (default: %(default)s)"
        if isinstance(default, bool):
            group.add_argument(flag, dest=name, default=default,
                               action=argparse.BooleanOptionalAction, help=help_text)
        else:
            group.add_argument(flag, dest=name, type=type(default), default=default,
                               choices=CHOICES.get(name), help=help_text)


def add_evaluate_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--data", type=Path, required=True,
                        help="data set folder: test half (test_queries.csv, test_images/) "
                             "and/or train half")
    parser.add_argument("--artifact", type=Path,
                        help="model artifact (default: WITHSENSE_MODEL_DIR, else the shipped one)")
    parser.add_argument("--cache", type=Path, help="feature cache (default $WITHSENSE_DATA_DIR/cache)")
    parser.add_argument("--folds", type=int, default=0,
                        help="K-fold by photo, retraining the heads per fold (default: the "
                             "artifact's validation split if it was trained on this data, else 5)")
    parser.add_argument("--include-flagged", action="store_true",
                        help="K-fold: also measure on flagged photos (never trained on): the "
                             "customer's protocol on unfiltered photos")
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.add_argument("--quiet", action="store_true", help="no progress bars")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    values: dict[str, Any] = {}
    for item in fields(TrainConfig):
        if hasattr(args, item.name):
            values[item.name] = getattr(args, item.name)
    return TrainConfig(**values)


def _fail(message: str) -> int:
    print(message, file=sys.stderr)
    return 2


def train_command(args: argparse.Namespace) -> int:
    from withsense.model.artifact import ArtifactError

    from withsense_train.data import DatasetError
    from withsense_train.evaluate import dumps, format_table
    from withsense_train.train import artifact_bytes, train

    try:
        config = config_from_args(args)
    except ValueError as exc:
        return _fail(f"invalid training config: {exc}")
    try:
        result = train(args.data, args.out, config, cache_dir=getattr(args, "cache", None),
                       progress=not getattr(args, "quiet", False))
    except DatasetError as exc:
        return _fail(f"invalid data set: {exc}")
    except ArtifactError as exc:
        return _fail(f"artifact error: {exc}")
    if getattr(args, "json", False):
        sys.stdout.write(dumps(result.as_dict()) + "\n")
        return 0
    print(f"artifact: {result.artifact_dir} ({artifact_bytes(result.artifact_dir) / 1e6:.2f} MB)")
    filtering = result.filtering
    print(f"legal filter: {filtering['photos_flagged']} of {filtering['photos']} photos flagged; "
          f"kept pairs: " + ", ".join(f"{k} {v['kept']}/{v['total']}" for k, v in filtering["pairs"].items()))
    scale = result.calibration.get("scale", float("nan"))
    print(f"best epoch {result.best_epoch}; calibration t={scale:.3f} "
          f"b={result.calibration.get('bias', float('nan')):.3f}")
    print()
    print(format_table(result.metrics, "validation split (used for early stopping and calibration)"))
    if result.kfold:
        print()
        title = f"{result.kfold['folds']}-fold by photo (held-out folds)"
        print(format_table(result.kfold["compliant"], title))
    gallery = result.gallery
    print()
    print(f"demo gallery (out of domain, {gallery['queries']} queries, {gallery['photos']} photos): "
          + ", ".join(f"{name} R@1 {gallery[name]['R@1']:.2f} MRR {gallery[name]['MRR']:.2f}"
                      for name in ("zero-shot", "trained")))
    print()
    print("seconds: " + ", ".join(f"{k} {v:.1f}" for k, v in result.seconds.items()))
    return 0


def evaluate_command(args: argparse.Namespace) -> int:
    from withsense.model.artifact import ArtifactError

    from withsense_train.data import DatasetError
    from withsense_train.evaluate import dumps, evaluate_data, format_table

    try:
        result = evaluate_data(args.data, getattr(args, "artifact", None),
                               folds=getattr(args, "folds", 0), cache_dir=getattr(args, "cache", None),
                               progress=not getattr(args, "quiet", False),
                               include_flagged=getattr(args, "include_flagged", False))
    except DatasetError as exc:
        return _fail(f"invalid data set: {exc}")
    except (ArtifactError, ValueError) as exc:
        return _fail(f"cannot evaluate: {exc}")
    if getattr(args, "json", False):
        sys.stdout.write(dumps(result) + "\n")
        return 0
    print(f"artifact: {result['artifact_version']}  ({result['mode']})")
    if "test" in result:
        test = result["test"]
        print(f"test half: {test['queries']} queries, {test['photos']} photos "
              f"({test['flagged_photos']} flagged)")
        print(format_table(test["all"], "test half, all queries and photos"))
        if test["compliant"]:
            print()
            print(format_table(test["compliant"], "test half, photos and queries that pass the legal filter"))
    if "validation_split" in result:
        print(format_table(result["validation_split"], "validation split"))
    if "kfold" in result:
        kfold = result["kfold"]
        print(format_table(kfold["compliant"], f"{kfold['folds']}-fold by photo, legally allowed photos"))
        if "all" in kfold:
            print()
            title = f"{kfold['folds']}-fold by photo, all photos (flagged ones evaluated only)"
            print(format_table(kfold["all"], title))
        if "languages" in kfold:
            from withsense_train.multilingual import format_language_table

            print()
            print(format_language_table(kfold["languages"], f"{kfold['folds']}-fold by photo, "
                                        "Russian test queries and their English originals, "
                                        "the same galleries of 100 photos"))
    if result.get("descriptions"):
        from withsense_train.hybrid_eval import format_result

        print()
        print(format_result(result["descriptions"]))
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m withsense_train.cli train|evaluate ...`` (the same as ``withsense ...``)."""
    parser = argparse.ArgumentParser(prog="python -m withsense_train.cli")
    sub = parser.add_subparsers(dest="command", required=True)
    train = sub.add_parser("train", help="train and export a model artifact")
    add_train_arguments(train)
    train.set_defaults(func=train_command)
    evaluate = sub.add_parser("evaluate", help="retrieval and calibration metrics")
    add_evaluate_arguments(evaluate)
    evaluate.set_defaults(func=evaluate_command)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.WARNING)
    return int(args.func(args))


if __name__ == "__main__":
    raise SystemExit(main())
