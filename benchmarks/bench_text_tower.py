"""The English text path alone (MiniLM + the artifact's text head), eager torch against ONNX Runtime.

One run: eager torch fp32 (sentence-transformers, the baseline), ONNX Runtime fp32 and ONNX
Runtime int8 (dynamic quantization, per-channel weights), each at 1 and 2 intra-op threads, on
single queries of the load test and on a batch of 32 captions, interleaved call by call (medians).
Then what int8 costs in accuracy: the cosine of each caption's int8 vector to its fp32 vector over
the customer's captions (or the load test's queries without the data). The project keeps int8
only if every caption stays within cosine 0.995 of fp32 and R@K does not drop.

    .venv/bin/python benchmarks/bench_text_tower.py [--captions 1000] [--repeats 60]
"""

from __future__ import annotations

import argparse
import itertools
import os

import numpy as np
import torch
from bench_utils import interleaved, load_note, markdown_table
from search_gallery import scene_captions
from withsense.compliance import mentions_child
from withsense.loadtest import load_queries
from withsense.model.runtime import ModelRuntime
from withsense.model.text_onnx import OnnxTextSession

COSINE_BAR = 0.995


def speed_rows(runtime: ModelRuntime, sessions: dict[str, OnnxTextSession], queries: list[str],
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
        fns.update({name: timed(session) for name, session in sessions.items()})
        medians = interleaved(fns, n, warmup=3)
        base = medians["eager torch fp32 (baseline)"]
        rows += [[label, name, f"{ms:.2f}", f"{base / ms:.2f}x"] for name, ms in medians.items()]
    return rows


def accuracy_rows(sessions: dict[str, OnnxTextSession], texts: list[str]) -> list[list[str]]:
    reference = sessions["onnx fp32, 1 thread"](texts)
    rows = []
    for name, session in sessions.items():
        if "int8" not in name or "1 thread" not in name:
            continue
        cosines = np.sum(session(texts) * reference, axis=1)
        rows.append([name, f"{cosines.min():.4f}", f"{np.percentile(cosines, 1):.4f}",
                     f"{np.median(cosines):.4f}", f"{np.mean(cosines < COSINE_BAR):.1%}",
                     "kept" if cosines.min() >= COSINE_BAR else "rejected"])
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--captions", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=60)
    args = parser.parse_args()
    torch.set_num_threads(1)
    runtime = ModelRuntime(image_backend="torch")
    sessions = {f"onnx {p}, {t} thread{'s' * (t > 1)}": OnnxTextSession(
        runtime.text_tower, runtime.model, precision=p, threads=t)
        for p in ("fp32", "int8") for t in (1, 2)}
    queries = [q for q in load_queries() if not mentions_child(q)]
    captions = [c for s in scene_captions() for c in s][:args.captions] or queries
    print(f"torch {torch.__version__} (1 thread), {len(queries)} queries, {len(captions)} captions, "
          f"{load_note()}")
    fp32 = sessions["onnx fp32, 1 thread"](captions[:200])
    gap = np.abs(fp32 - runtime.torch_text_vectors(captions[:200])).max()
    print(f"ONNX fp32 against eager torch on 200 captions: largest |difference| {gap:.1e}\n")
    print("Time per call, medians (ms)")
    print(markdown_table(["input", "path", "ms", "speed-up"],
                         speed_rows(runtime, sessions, queries, captions[:32], args.repeats)))
    print(f"\nint8 against ONNX fp32 on {len(captions)} captions (cosine of each pair)")
    print(markdown_table(["path", "min", "1st percentile", "median", f"share below {COSINE_BAR}",
                          "verdict"], accuracy_rows(sessions, captions)))
    print(f"\n{load_note()}; pid {os.getpid()}")


if __name__ == "__main__":
    main()
