"""How Russian queries reach the joint space: the design choice of issue 13, in one run.

5-fold by photo on the legally allowed photos (the heads retrained per fold, as in
``withsense evaluate --folds 5``); the Russian test set's adult queries of each held-out fold
ranked against 100 photos, next to their English originals on the same galleries:

- today: English through MiniLM and the text head; Russian through the same (the baseline);
- (a) a ridge map e5(caption) -> text head(MiniLM(caption)), fitted on the fold's English
  training captions, for several ridge strengths (the shipped design, lambda 1);
- (b) a text head on e5 for every language: ridge e5(caption) -> the image vector of its photo;
- English through e5 and each map (would English do better on e5 too?).

    .venv/bin/python benchmarks/ablation_multilingual.py --data ../shared/data/withsense [--cache DIR]
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from withsense.model.catalog import model_config
from withsense_train.calibration import calibrate_on_photos
from withsense_train.config import TrainConfig
from withsense_train.data import load_dataset
from withsense_train.features import FeatureCache
from withsense_train.fit import fit_heads
from withsense_train.metrics import query_ranks, retrieval_from_ranks
from withsense_train.multilingual import E5Features, allowed_captions, fit_text_map, load_test_set
from withsense_train.prepare import prepare, split_photos, torch_threads

LAMBDAS_A = (0.1, 0.3, 1.0, 3.0, 10.0)
LAMBDAS_B = (1.0, 10.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--cache", type=Path)
    parser.add_argument("--folds", type=int, default=5)
    args = parser.parse_args()
    config = TrainConfig()
    dataset = load_dataset(args.data)
    cache = FeatureCache(model_config(config.model), args.cache, progress=True)
    prep = prepare(dataset, cache, tta=config.tta, prompts=config.concept_prompts())
    e5 = E5Features(cache.root)
    queries = [q for q in load_test_set() if q.kind == "adult" and q.photo in prep.photo_index]
    allowed = sorted(prep.filtered.photos)
    order = list(allowed)
    np.random.default_rng(config.seed).shuffle(order)
    fold_of = {photo: i % args.folds for i, photo in enumerate(order)}
    ranks: dict[str, list[np.ndarray]] = {}

    def add(row: str, scores: np.ndarray, positive: np.ndarray, seed: int) -> None:
        ranks.setdefault(row, []).append(query_ranks(scores, positive, seed=seed))

    for k in range(args.folds):
        test = [p for p in allowed if fold_of[p] == k]
        trainable = [p for p in allowed if fold_of[p] != k]
        inner_train, inner_val = split_photos(trainable, config.val_photos, config.seed + k)
        with torch_threads(1):
            fit = fit_heads(prep, inner_train, inner_val, config, progress=False, held_out=set(test))
        calibrate_on_photos(fit.model, prep, inner_val, config.calibration)
        model, seed = fit.model.eval(), config.seed + k
        column = {p: i for i, p in enumerate(test)}
        mine = [q for q in queries if q.photo in column]
        positive = np.asarray([column[q.photo] for q in mine])
        texts = allowed_captions(prep.filtered, trainable)
        text_rows, photo_rows = prep.positives(trainable)
        with torch.no_grad():
            gallery = torch.as_tensor([prep.photo_index[p] for p in test])
            images = model.embed_image(prep.pooled[gallery], prep.logits[gallery]).numpy()
            head = model.embed_text(torch.from_numpy(cache.text(texts))).numpy()
            english = model.embed_text(torch.from_numpy(cache.text([q.en for q in mine]))).numpy()
            russian_minilm = model.embed_text(torch.from_numpy(cache.text([q.ru for q in mine]))).numpy()
            photo_vectors = model.embed_image(prep.pooled[torch.as_tensor(photo_rows)],
                                              prep.logits[torch.as_tensor(photo_rows)]).numpy()
        e5_en, e5_ru = e5([q.en for q in mine]), e5([q.ru for q in mine])
        add("today: English, MiniLM + text head (baseline)", english @ images.T, positive, seed)
        add("today: Russian, MiniLM + text head", russian_minilm @ images.T, positive, seed)
        for lam in LAMBDAS_A:
            text_map = fit_text_map(e5(texts), head, lam)
            add(f"(a) map to the text head, lambda {lam:g}: Russian", text_map(e5_ru) @ images.T,
                positive, seed)
            add(f"(a) map to the text head, lambda {lam:g}: English via e5", text_map(e5_en) @ images.T,
                positive, seed)
        caption_texts = [prep.texts[i] for i in text_rows]
        for lam in LAMBDAS_B:
            text_map = fit_text_map(e5(caption_texts), photo_vectors, lam)
            add(f"(b) e5 text head onto photos, lambda {lam:g}: Russian", text_map(e5_ru) @ images.T,
                positive, seed)
            add(f"(b) e5 text head onto photos, lambda {lam:g}: English via e5", text_map(e5_en) @ images.T,
                positive, seed)
        print(f"fold {k + 1}/{args.folds}: {len(mine)} queries", flush=True)
    base = retrieval_from_ranks(np.concatenate(ranks[next(iter(ranks))]))["R@10"]
    print(f"\n{args.folds}-fold by photo, {sum(len(r) for r in ranks[next(iter(ranks))])} adult "
          "queries of the Russian test set, 100 photos each")
    print("| queries | R@1 | R@5 | R@10 | MRR | R@10 / English baseline |")
    print("|---|---:|---:|---:|---:|---:|")
    for row, folds in ranks.items():
        m = retrieval_from_ranks(np.concatenate(folds))
        print(f"| {row} | {m['R@1']:.3f} | {m['R@5']:.3f} | {m['R@10']:.3f} | {m['MRR']:.3f} | "
              f"{m['R@10'] / base:.2f} |")


if __name__ == "__main__":
    main()
