"""Description embedding at indexing: the ONNX text path (texts sorted by token count, in
batches of ``text_onnx.SORTED_BATCH``) against the previous path (texts in arrival order, one
batch of 64 padded to its longest text), on the same texts, taking turns; medians of
``--repeats``, wall and CPU time (this process, all threads) per text, load average. Also checks
that both give the same vectors.

Texts: the customer's captions in file order (5 a photo), in calls of 64 as the gateway sends a
photo chunk's descriptions (``gateway.indexing.DESCRIPTION_BATCH``).

    PYTHONPATH=services:trainer .venv/bin/python benchmarks/bench_descriptions.py [--calls 10]
"""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

import numpy as np
from bench_utils import markdown_table

CAPTIONS = Path("/work/shared/data/withsense/extra/captions.txt")


def arrival_order(session, texts: list[str], batch: int) -> np.ndarray:
    """The previous path: each batch of texts as they come, padded to its longest."""
    parts = []
    for start in range(0, len(texts), batch):
        ids, mask = session.tokenize(texts[start:start + batch])
        parts.append(session.session.run(["vectors"], {"input_ids": ids, "attention_mask": mask})[0])
    return np.concatenate(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--captions", type=Path, default=CAPTIONS)
    parser.add_argument("--calls", type=int, default=10, help="calls of 64 texts")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    from withsense.config import WorkerSettings
    from withsense.gateway.indexing import DESCRIPTION_BATCH
    from withsense.model.text_onnx import SORTED_BATCH
    from withsense.worker.serving import load_runtime

    if not args.captions.is_file():
        raise SystemExit(f"{args.captions}: no captions file (the customer's extra/captions.txt)")
    lines = [line.split("\t", 1) for line in args.captions.read_text().splitlines() if "\t" in line]
    texts = [text for _, text in lines[:DESCRIPTION_BATCH * args.calls]]
    calls = [texts[i:i + DESCRIPTION_BATCH] for i in range(0, len(texts), DESCRIPTION_BATCH)]
    session = load_runtime(WorkerSettings(text_backend="onnx")).text_onnx
    now = f"sorted by length, batches of {SORTED_BATCH} (now)"
    paths = {f"arrival order, one batch of {DESCRIPTION_BATCH} (before)":
             lambda: np.concatenate([arrival_order(session, c, DESCRIPTION_BATCH) for c in calls]),
             now: lambda: np.concatenate([session(c) for c in calls])}
    outputs = {name: fn() for name, fn in paths.items()}  # warm-up and the equality check
    difference = float(np.abs(outputs[next(iter(paths))] - outputs[now]).max())
    wall: dict[str, list[float]] = {name: [] for name in paths}
    cpu: dict[str, list[float]] = {name: [] for name in paths}
    load = os.getloadavg()[0]
    for _ in range(args.repeats):
        for name, fn in paths.items():
            w, c = time.perf_counter(), time.process_time()
            fn()
            wall[name].append((time.perf_counter() - w) * 1e3 / len(texts))
            cpu[name].append((time.process_time() - c) * 1e3 / len(texts))
    base = float(np.median(cpu[next(iter(paths))]))
    print(f"\n**{len(texts)} descriptions in calls of {DESCRIPTION_BATCH}, medians of "
          f"{args.repeats}** (load average {load:.1f} -> {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs; largest vector difference {difference:.1e})\n")
    print(markdown_table(["text path", "wall ms / text", "CPU ms / text", "CPU vs before"],
                         [[name, f"{np.median(wall[name]):.2f}", f"{np.median(cpu[name]):.2f}",
                           f"{base / float(np.median(cpu[name])):.2f}x"] for name in paths]))


if __name__ == "__main__":
    main()
