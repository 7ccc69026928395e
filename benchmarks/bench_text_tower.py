"""The English text path alone (MiniLM + the artifact's text head): eager torch against ONNX
Runtime graphs and precisions, and what each precision costs in accuracy.

1. Speed, one run, interleaved call by call (medians), on single queries of the load test and on
   a batch of 32 captions: eager torch fp32 (sentence-transformers, the first baseline); the
   ONNX fp32 graph as exported before the fusions (``unfused``, the worker's path until now:
   the second baseline); the fused graph the worker builds today in fp32, ``int8`` (dynamic
   quantization) and ``int8-blocks`` (8-bit weights and activations in blocks); 1 intra-op
   thread each, and fp32 at 2.
2. Agreement with fp32: the cosine of each text's quantized vector to its fp32 vector, over the
   customer's captions, the load test's queries, single words and odd texts.
3. ``--kfold``: 5-fold cross-validation by photo of the search heads (``withsense_train``), with
   the text features (the tower's own vectors) from each graph: R@1, R@5, R@10, ECE.
4. ``--op-profile``: where a query's time goes in the fused fp32 graph (1 thread), by op type,
   from ONNX Runtime's own profiler (kernel time per query, the load test's queries).

The project keeps a quantized precision as the worker's default only if every text stays within
cosine 0.995 of fp32 and the cross-validated R@K does not drop.

    .venv/bin/python benchmarks/bench_text_tower.py [--captions 1000] [--repeats 60] [--kfold]
"""

from __future__ import annotations

import argparse
import itertools
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from bench_utils import interleaved, load_note, markdown_table
from search_gallery import scene_captions
from withsense.compliance import mentions_child
from withsense.loadtest import load_queries
from withsense.model.runtime import ModelRuntime
from withsense.model.text_onnx import OnnxTextSession, _export

COSINE_BAR = 0.995
FP32 = "onnx fp32, 1 thread"
ODD_TEXTS = ["", " ", "A", "a", "dog", "Ünïcödé café — 東京の夜景 🍮", "a red cat on a mat " * 90]


class UnfusedSession:
    """The fp32 graph as the worker exported it before the fusions (torch's own attention, no
    ONNX Runtime optimizer pass): the baseline of the speed table."""

    def __init__(self, runtime: ModelRuntime, like: OnnxTextSession) -> None:
        import onnxruntime

        graph = _export(runtime.text_tower.transformer, runtime.model, classic_attention=False)
        options = onnxruntime.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = onnxruntime.InferenceSession(graph, options,
                                                    providers=["CPUExecutionProvider"])
        self.like = like

    def __call__(self, texts: list[str]) -> np.ndarray:
        ids, mask = self.like.tokenize(texts)
        return self.session.run(["vectors"], {"input_ids": ids, "attention_mask": mask})[0]


def speed_rows(runtime: ModelRuntime, paths: dict[str, Any], queries: list[str],
               batch: list[str], repeats: int) -> list[list[str]]:
    """Each path on the same inputs in the same order (its own counter), interleaved."""
    rows = []
    cases = (("1 query", lambda i: [queries[i % len(queries)]], repeats),
             ("32 captions", lambda i: batch, max(5, repeats // 6)))
    for label, pick, n in cases:
        def timed(embed, pick=pick):
            counter = itertools.count()
            return lambda: embed(pick(next(counter)))

        fns = {"eager torch fp32 (baseline)": timed(runtime.torch_text_vectors)}
        fns.update({name: timed(path) for name, path in paths.items()})
        medians = interleaved(fns, n, warmup=3)
        base, unfused = medians["eager torch fp32 (baseline)"], medians["onnx fp32 unfused (baseline)"]
        rows += [[label, name, f"{ms:.2f}", f"{base / ms:.2f}x", f"{unfused / ms:.2f}x"]
                 for name, ms in medians.items()]
    return rows


def accuracy_rows(sessions: dict[str, OnnxTextSession], sets: dict[str, list[str]]) -> list[list[str]]:
    rows = []
    for name, session in sessions.items():
        if "int8" not in name:
            continue
        for label, texts in sets.items():
            # One text per call: a batch's padding would add its own (tiny) differences.
            cosines = np.sum(session(texts, batch_size=1) * sessions[FP32](texts, batch_size=1), axis=1)
            rows.append([name, f"{label} ({len(texts)})", f"{cosines.min():.4f}",
                         f"{np.percentile(cosines, 1):.4f}", f"{np.median(cosines):.4f}",
                         f"{np.mean(cosines < COSINE_BAR):.1%}"])
    return rows


def op_profile_rows(runtime: ModelRuntime, like: OnnxTextSession, queries: list[str],
                    repeats: int) -> list[list[str]]:
    """Kernel time per query of each op type, from a profiled copy of the fused fp32 graph."""
    import json

    import onnxruntime
    from withsense.model.text_onnx import _fused

    graph = _fused(_export(runtime.text_tower.transformer, runtime.model),
                   runtime.text_tower.transformer.config)
    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = options.inter_op_num_threads = 1
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    options.enable_profiling = True
    options.profile_file_prefix = f"/tmp/bench-text-ops-{os.getpid()}"
    session = onnxruntime.InferenceSession(graph.SerializeToString(), options,
                                           providers=["CPUExecutionProvider"])
    feeds = [dict(zip(("input_ids", "attention_mask"), like.tokenize([q]), strict=True))
             for q in queries]
    runs = repeats * len(feeds)
    for _ in range(repeats):
        for feed in feeds:
            session.run(["vectors", "tower"], feed)
    trace = Path(session.end_profiling())
    per_op: dict[str, list[float]] = {}
    for event in json.loads(trace.read_text()):
        if event.get("cat") == "Node" and event["name"].endswith("_kernel_time"):
            per_op.setdefault(event["args"]["op_name"], []).append(event["dur"] / 1000)
    trace.unlink()
    total = sum(sum(v) for v in per_op.values())
    ranked = sorted(per_op.items(), key=lambda item: -sum(item[1]))
    return [[op, f"{len(times) // runs}", f"{sum(times) / runs:.3f}", f"{sum(times) / total:.1%}"]
            for op, times in ranked] + [["all", "", f"{total / runs:.3f}", "100%"]]


def kfold_rows(sessions: dict[str, OnnxTextSession], data: Path, cache_dir: Path) -> list[list[str]]:
    """Cross-validated R@K of the search heads trained and measured on each graph's text
    features (the image features from the trainer's cache, the same folds)."""
    from withsense.model.catalog import model_config
    from withsense_train.config import TrainConfig
    from withsense_train.data import load_dataset
    from withsense_train.evaluate import TRAINED, kfold_evaluate
    from withsense_train.features import FeatureCache

    dataset, config = load_dataset(data), TrainConfig()
    rows = []
    for name, session in sessions.items():
        cache = FeatureCache(model_config(config.model), cache_dir, progress=False)
        memo: dict[str, np.ndarray] = {}

        def text(texts, session=session, memo=memo):
            missing = sorted({t for t in texts if t not in memo})
            if missing:
                _, tower = session.with_tower(missing)
                memo.update(zip(missing, tower, strict=True))
            return np.stack([memo[t] for t in texts]) if texts else np.zeros((0, 384), np.float32)

        cache.text = text  # every text feature of the trainer goes through FeatureCache.text
        trained = kfold_evaluate(dataset, config, folds=5, cache=cache, progress=False)["compliant"][TRAINED]
        rows.append([name, *(f"{trained[k]:.4f}" for k in ("R@1", "R@5", "R@10", "ECE"))])
        print(f"  {name}: done", flush=True)
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captions", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=60)
    parser.add_argument("--kfold", action="store_true", help="also the cross-validated R@K")
    parser.add_argument("--op-profile", action="store_true",
                        help="also the fused fp32 graph's kernel time per query by op type")
    parser.add_argument("--data", type=Path, default=Path("/work/shared/data/withsense"))
    parser.add_argument("--cache", type=Path, default=Path(os.environ.get("WITHSENSE_FEATURE_CACHE",
                                                                          "/work/cache")))
    args = parser.parse_args()
    torch.set_num_threads(1)
    runtime = ModelRuntime(image_backend="torch")
    sessions = {f"onnx {p}, 1 thread": OnnxTextSession(runtime.text_tower, runtime.model, precision=p)
                for p in ("fp32", "int8", "int8-blocks")}
    sessions["onnx fp32, 2 threads"] = OnnxTextSession(runtime.text_tower, runtime.model, threads=2)
    paths = {"onnx fp32 unfused (baseline)": UnfusedSession(runtime, sessions[FP32]), **sessions}
    queries = [q for q in load_queries() if not mentions_child(q)]
    captions = [c for s in scene_captions() for c in s][:args.captions] or queries
    words = sorted({w.strip(".,;:!?\"'").lower() for c in captions[:300] for w in c.split()} - {""})
    print(f"torch {torch.__version__} (1 thread), {len(queries)} queries, {len(captions)} captions, "
          f"{load_note()}")
    print(f"fused fp32 graph: {sum(sessions[FP32].graph_ops.values())} nodes "
          f"({sessions[FP32].graph_ops.get('Attention', 0)} fused Attention)")
    fp32 = sessions[FP32](captions[:200])
    gap = np.abs(fp32 - runtime.torch_text_vectors(captions[:200])).max()
    print(f"ONNX fp32 (fused) against eager torch on 200 captions: largest |difference| {gap:.1e}\n")
    print("Time per call, medians (ms)")
    print(markdown_table(["input", "path", "ms", "vs eager", "vs unfused"],
                         speed_rows(runtime, paths, queries, captions[:32], args.repeats)))
    print("\nQuantized against ONNX fp32 (cosine of each pair)")
    sets = {"captions": captions, "load-test queries": load_queries(), "single words": words,
            "odd texts": ODD_TEXTS}
    print(markdown_table(["path", "texts", "min", "1st percentile", "median",
                          f"share below {COSINE_BAR}"], accuracy_rows(sessions, sets)))
    if args.op_profile:
        tokens = np.median([len(sessions[FP32].tokenize([q])[0][0]) for q in queries])
        print(f"\nFused fp32 graph, 1 thread: kernel time per query by op type ({len(queries)} "
              f"queries, median {tokens:.0f} tokens, x{max(3, args.repeats // 10)})")
        print(markdown_table(["op", "nodes", "ms / query", "share"],
                             op_profile_rows(runtime, sessions[FP32], queries,
                                             max(3, args.repeats // 10))))
    if args.kfold:
        print("\n5-fold cross-validation by photo, search heads on each graph's text features")
        picked = {k: v for k, v in sessions.items() if "1 thread" in k}
        print(markdown_table(["text features", "R@1", "R@5", "R@10", "ECE"],
                             kfold_rows(picked, args.data, args.cache)))
    print(f"\n{load_note()}; pid {os.getpid()}")


if __name__ == "__main__":
    main()
