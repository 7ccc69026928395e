"""The multilingual text map: a training stage of its own (issue 13, design (a)).

``withsense.model.multilingual.TextMap`` carries multilingual-e5-small vectors into the joint
space: it is the ridge regression (closed form, deterministic) from the e5 vector of an English
caption to the trained text head's vector of the same caption. Only English captions of the
legally allowed photos are used (there is no parallel data): Russian, and any other language e5
knows, rides on e5's own cross-lingual alignment. The stage saves ``multilingual.safetensors``
and records, under ``multilingual`` in config.json, the semantic child-query threshold chosen in
this path's space by the same rule as the English one (``withsense_train.semantic``).

``language_outputs`` is the cross-validated check (``withsense evaluate --folds K``): in each
fold the map is fitted on the training captions and the Russian test queries of the held-out
photos (``testsets/ru_queries.tsv``) are ranked against 100 photos, next to their English
originals on the same galleries.

    python -m withsense_train.multilingual --artifact DIR --data DIR [--cache DIR]

adds the map to an artifact trained without it (what ``withsense train`` does as a stage).
"""

from __future__ import annotations

import argparse
import csv
import hashlib
import json
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import torch
from withsense.model.artifact import load_artifact, record_files, update_config
from withsense.model.fused import FusedModel
from withsense.model.multilingual import (
    CONFIG_KEY,
    MultilingualTower,
    TextMap,
    map_entry,
    save_map,
    tower_weights_path,
)
from withsense.model.towers import sha256_file

from withsense_train.features import _load, _progress, _save_atomic
from withsense_train.metrics import query_ranks
from withsense_train.semantic import MULTILINGUAL_MAX_FALSE_BLOCK_RATE, choose_semantic_threshold

if TYPE_CHECKING:
    from withsense_train.filtering import FilteredData
    from withsense_train.prepare import Prepared
    from withsense_train.run import TrainRun

log = logging.getLogger(__name__)

# Chosen on 5-fold cross-validation (benchmarks/ablation_multilingual.py, docs/model.md "Russian
# queries"): Russian R@10 0.69 at 0.1, 0.71-0.72 from 0.3 to 3 (best at 1), 0.66 at 10.
RIDGE_LAMBDA = 1.0
E5_BATCH = 64
TEST_SET = "ru_queries.tsv"
PARAPHRASES = "child_paraphrases.tsv"


# --- e5 features, cached like the other towers' ----------------------------------------------

class E5Features:
    """e5 query vectors of texts, cached on disk under ``text/e5-<weights sha256[:16]>/``."""

    def __init__(self, cache_root: Path, *, progress: bool = True, threads: int = 0) -> None:
        self.root = Path(cache_root) / "text" / f"e5-{sha256_file(tower_weights_path())[:16]}"
        self.progress = progress
        self.threads = threads
        self._tower: MultilingualTower | None = None

    def _path(self, text: str) -> Path:
        key = hashlib.sha256(text.encode("utf-8")).hexdigest()
        return self.root / key[:2] / f"{key}.npy"

    def __call__(self, texts: Sequence[str]) -> np.ndarray:
        rows: list[np.ndarray | None] = [_load(self._path(t)) for t in texts]
        missing = sorted({texts[i] for i, row in enumerate(rows) if row is None})
        if missing:
            if self._tower is None:
                self._tower = MultilingualTower(self.threads)
            computed: dict[str, np.ndarray] = {}
            with _progress(len(missing), "text features (e5)", self.progress) as bar:
                for start in range(0, len(missing), E5_BATCH):
                    chunk = missing[start:start + E5_BATCH]
                    for text, vector in zip(chunk, self._tower.encode(chunk), strict=True):
                        _save_atomic(self._path(text), vector)
                        computed[text] = vector
                    bar.update(len(chunk))
            rows = [row if row is not None else computed[texts[i]] for i, row in enumerate(rows)]
        if not rows:
            return np.zeros((0, 384), np.float32)
        return np.stack(rows).astype(np.float32)  # type: ignore[arg-type]


# --- the map -----------------------------------------------------------------------------------

def fit_text_map(inputs: np.ndarray, targets: np.ndarray, ridge_lambda: float = RIDGE_LAMBDA) -> TextMap:
    """Ridge regression with an unpenalised intercept: targets ≈ inputs @ W.T + b."""
    x = np.asarray(inputs, dtype=np.float64)
    y = np.asarray(targets, dtype=np.float64)
    mean_x, mean_y = x.mean(axis=0), y.mean(axis=0)
    xc, yc = x - mean_x, y - mean_y
    gram = xc.T @ xc + ridge_lambda * np.eye(x.shape[1])
    weight = np.linalg.solve(gram, xc.T @ yc).T  # [D, E]
    bias = mean_y - weight @ mean_x
    return TextMap(weight=weight.astype(np.float32), bias=bias.astype(np.float32))


def allowed_captions(filtered: FilteredData, photos: Sequence[str] | None = None) -> list[str]:
    """The captions the legal filter keeps (of ``photos``, else of every allowed photo), each
    once, sorted: the map's training texts."""
    wanted = filtered.positives if photos is None else {p: filtered.positives.get(p, []) for p in photos}
    return sorted({caption.text for captions in wanted.values() for caption in captions})


def fit_for_model(model: FusedModel, texts: list[str], minilm: np.ndarray, e5: E5Features,
                  ridge_lambda: float = RIDGE_LAMBDA) -> TextMap:
    """The map into ``model``'s text space: e5(text) -> text head(MiniLM(text))."""
    with torch.no_grad():
        targets = model.embed_text(torch.from_numpy(np.asarray(minilm, dtype=np.float32))).numpy()
    return fit_text_map(e5(texts), targets, ridge_lambda)


def _prep_fit(model: FusedModel, prep: Prepared, e5: E5Features,
              photos: Sequence[str]) -> tuple[TextMap, int]:
    texts = allowed_captions(prep.filtered, photos)
    minilm = prep.text[torch.as_tensor([prep.text_index[t] for t in texts])].numpy()
    return fit_for_model(model, texts, minilm, e5), len(texts)


# --- the training stage ----------------------------------------------------------------------

def multilingual_stage(run: TrainRun) -> None:
    """Fits the map on the captions of all allowed photos (its targets are texts, so the
    validation photos' captions leak nothing about photos), chooses this path's semantic
    threshold, saves the file and records both in config.json and the model card."""
    assert run.dataset is not None
    e5 = E5Features(run.cache.root, progress=run.progress)
    text_map, n_texts = _prep_fit(run.fit.model, run.prep, e5, run.prep.filtered.photos)
    captions = [caption.text for caption in run.dataset.captions.values()]
    entry = _write(run.out, text_map, n_texts, captions, e5, run.prep.photos)
    run.add_component(CONFIG_KEY, [entry["file"]], entry)


def _write(out: Path, text_map: TextMap, n_texts: int, captions: list[str],
           e5: E5Features, photos: Sequence[str]) -> dict[str, Any]:
    """Saves the map and its config entry, with this path's semantic threshold (chosen on the
    captions by the English rule, at MULTILINGUAL_MAX_FALSE_BLOCK_RATE) and, for information, how
    it does on the Russian test set (when ``photos``, the data set's, are the customer's: the
    set was written for them)."""
    def embed(texts: list[str]) -> np.ndarray:
        return text_map(e5(texts))

    details: dict[str, Any] = {"fit": {
        "kind": "ridge", "ridge_lambda": RIDGE_LAMBDA, "captions": n_texts,
        "inputs": "e5 'query: ' vectors of the English captions of the allowed photos",
        "targets": "the trained text head's vectors of the same captions"}}
    try:
        semantic: dict[str, Any] = choose_semantic_threshold(embed, captions,
                                                             MULTILINGUAL_MAX_FALSE_BLOCK_RATE)
    except ValueError as exc:  # the gateway then falls back to the English path's threshold
        log.warning("semantic child-query threshold of the multilingual path not chosen: %s", exc)
    else:
        if set(photos) & {q.photo for q in load_test_set()}:
            semantic["russian_test_set"] = russian_block_rates(embed, semantic["threshold"])
        details |= {"semantic_child_threshold": semantic["threshold"], "semantic_child_check": semantic}
    entry = map_entry(text_map, **details)
    save_map(out, text_map)
    update_config(out, {CONFIG_KEY: entry})
    return entry


def russian_block_rates(embed: Callable[[list[str]], np.ndarray], threshold: float) -> dict[str, float]:
    """Shares of the Russian test set's child and adult queries (and of the child paraphrases)
    that the semantic check alone blocks at ``threshold`` (the lexicon comes first in service)."""
    from withsense.compliance import CHILD_PROTOTYPE_TEXTS, SemanticChildCheck

    check = SemanticChildCheck(embed(list(CHILD_PROTOTYPE_TEXTS)), threshold)
    queries = load_test_set()
    out = {}
    for kind in ("child", "adult"):
        texts = [q.ru for q in queries if q.kind == kind]
        out[f"{kind}_blocked"] = float(np.mean(check.similarities(embed(texts)) >= threshold))
    paraphrases = [ru for _, ru in load_paraphrases()]
    out["paraphrases_blocked"] = float(np.mean(check.similarities(embed(paraphrases)) >= threshold))
    return out


# --- Russian queries in the cross-validated evaluation ---------------------------------------

@dataclass(frozen=True)
class TestQuery:
    query_id: str
    kind: str  # "adult" | "child"
    en: str
    ru: str

    @property
    def photo(self) -> str:
        return self.query_id.rsplit("#", 1)[0]


def _testset_rows(name: str) -> list[dict[str, str]]:
    text = resources.files("withsense_train").joinpath("testsets", name).read_text("utf-8")
    return list(csv.DictReader(text.splitlines(), delimiter="\t"))


def load_test_set() -> list[TestQuery]:
    """The Russian test set (``testsets/ru_queries.tsv``; its README gives the provenance)."""
    return [TestQuery(r["query_id"], r["kind"], r["en"], r["ru"]) for r in _testset_rows(TEST_SET)]


def load_paraphrases() -> list[tuple[str, str]]:
    """(English, Russian) descriptions of children in other words than the usual child terms
    (``testsets/child_paraphrases.tsv``): what the semantic check is for."""
    return [(r["en"], r["ru"]) for r in _testset_rows(PARAPHRASES)]


LANGUAGE_ROWS = ("English, every caption (MiniLM)", "English originals of the Russian set (MiniLM)",
                 "Russian (e5 + map)", "Russian through MiniLM (before)")


def language_outputs(model: FusedModel, prep: Prepared, e5: E5Features, trainable: list[str],
                     test: list[str], queries: list[TestQuery], seed: int) -> dict[str, np.ndarray]:
    """Ranks (against 100 photos of ``test``) of each language row for one fold."""
    text_map, _ = _prep_fit(model, prep, e5, trainable)
    gallery = np.asarray([prep.photo_index[p] for p in test])
    column = {p: i for i, p in enumerate(test)}
    mine = [q for q in queries if q.kind == "adult" and q.photo in column]
    with torch.no_grad():
        images = model.embed_image(prep.pooled[gallery], prep.logits[gallery]).numpy()
        text_rows, photo_rows = prep.positives(test)
        every = model.embed_text(prep.text[torch.as_tensor(text_rows)]).numpy()
        english = model.embed_text(torch.from_numpy(prep.cache.text([q.en for q in mine]))).numpy()
        before = model.embed_text(torch.from_numpy(prep.cache.text([q.ru for q in mine]))).numpy()
    russian = text_map(e5([q.ru for q in mine]))
    every_pos = np.asarray([column[prep.photos[r]] for r in photo_rows], dtype=np.int64)
    pos = np.asarray([column[q.photo] for q in mine], dtype=np.int64)
    # The same seed and query order give every row of the Russian set the same galleries.
    return {
        LANGUAGE_ROWS[0]: query_ranks(every @ images.T, every_pos, seed=seed),
        LANGUAGE_ROWS[1]: query_ranks(english @ images.T, pos, seed=seed),
        LANGUAGE_ROWS[2]: query_ranks(russian @ images.T, pos, seed=seed),
        LANGUAGE_ROWS[3]: query_ranks(before @ images.T, pos, seed=seed),
    }


class LanguageEvaluation:
    """Pools ``language_outputs`` over the folds of a K-fold evaluation; ``result()`` is the
    ``languages`` table (R@K and MRR of each row, ± the standard deviation over folds)."""

    def __init__(self, prep: Prepared, *, progress: bool = False) -> None:
        self.prep = prep
        self.queries = [q for q in load_test_set() if q.photo in prep.photo_index]
        self.e5 = E5Features(prep.cache.root, progress=progress) if self.queries else None
        self.ranks: dict[str, list[np.ndarray]] = {row: [] for row in LANGUAGE_ROWS}

    @property
    def active(self) -> bool:
        """False when no photo of the Russian test set is in the data (another data set)."""
        return self.e5 is not None

    def add_fold(self, model: FusedModel, trainable: list[str], test: list[str], seed: int) -> None:
        if self.e5 is None:
            return
        for row, ranks in language_outputs(model, self.prep, self.e5, trainable, test,
                                           self.queries, seed).items():
            self.ranks[row].append(ranks)

    def result(self) -> dict[str, dict[str, float]]:
        from withsense_train.metrics import mean_std, retrieval_from_ranks

        table = {}
        for row, folds in self.ranks.items():
            if not folds:
                continue
            metrics = retrieval_from_ranks(np.concatenate(folds))
            for column in ("R@1", "R@5", "R@10", "MRR"):
                per_fold = [retrieval_from_ranks(r)[column] for r in folds if r.size]
                metrics[f"{column}_std"] = mean_std(per_fold)[1]
            table[row] = {k: round(v, 4) if isinstance(v, float) else v for k, v in metrics.items()}
        english, russian = table.get(LANGUAGE_ROWS[1]), table.get(LANGUAGE_ROWS[2])
        if english and russian and english["R@10"]:
            table[LANGUAGE_ROWS[2]]["R@10 / English"] = round(russian["R@10"] / english["R@10"], 3)
        return table


def format_language_table(table: dict[str, dict[str, float]], title: str) -> str:
    """A markdown table of the ``languages`` result."""
    lines = [f"**{title}**", "", "| queries | n | R@1 | R@5 | R@10 | MRR |", "|---|---:|---:|---:|---:|---:|"]
    for row, m in table.items():
        cells = [f"{m[c]:.3f} ± {m.get(c + '_std', float('nan')):.3f}" for c in ("R@1", "R@5", "R@10", "MRR")]
        lines.append(f"| {row} | {m['queries']} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


# --- adding the map to an existing artifact --------------------------------------------------

def add_to_artifact(artifact_dir: Path, data_dir: Path, cache_dir: Path | None = None,
                    progress: bool = True) -> dict[str, Any]:
    """The stage's work for an artifact trained without it: fits the map into its text space
    on the data set's allowed captions and records it. Returns the config entry."""
    from withsense.model.catalog import DEFAULT_MODEL, model_config

    from withsense_train.data import load_dataset
    from withsense_train.features import FeatureCache
    from withsense_train.filtering import legal_filter

    artifact = load_artifact(artifact_dir)
    dataset = load_dataset(data_dir)
    # Only MiniLM text features are needed: their cache does not depend on the image tower.
    cache = FeatureCache(model_config(DEFAULT_MODEL), cache_dir, progress=progress)
    e5 = E5Features(cache.root, progress=progress)
    texts = allowed_captions(legal_filter(dataset))
    text_map = fit_for_model(artifact.model, texts, cache.text(texts), e5)
    captions = [caption.text for caption in dataset.captions.values()]
    entry = _write(Path(artifact_dir), text_map, len(texts), captions, e5, list(dataset.train_images))
    record_files(Path(artifact_dir), [entry["file"]])
    return entry


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--artifact", type=Path, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    print(json.dumps(add_to_artifact(args.artifact, args.data, args.cache, not args.quiet), indent=2))


if __name__ == "__main__":
    main()
