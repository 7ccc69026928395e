"""Description embedding at indexing: the ONNX text path with batches of similar length (texts
sorted by token count, ``OnnxTextSession.__call__``) against batches in arrival order padded to
their longest text (the previous path), on the same texts, taking turns; medians of
``--repeats``, wall and CPU time (this process, all threads) per text, load average. Also checks
that both give the same vectors.

Texts: the customer's captions of ``--photos`` photos in file order (5 a photo, as `withsense
index --descriptions` sends them, one indexing chunk of 16 photos by default).

    PYTHONPATH=services:trainer .venv/bin/python benchmarks/bench_descriptions.py [--photos 16]
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
    parser.add_argument("--photos", type=int, default=16)
    parser.add_argument("--batch", type=int, default=64, help="the text path's batch size")
    parser.add_argument("--repeats", type=int, default=9)
    args = parser.parse_args()
    from withsense.config import WorkerSettings
    from withsense.worker.serving import load_runtime

    if not args.captions.is_file():
        raise SystemExit(f"{args.captions}: no captions file (the customer's extra/captions.txt)")
    lines = [line.split("\t", 1) for line in args.captions.read_text().splitlines() if "\t" in line]
    texts = [text for _, text in lines[:5 * args.photos]]
    session = load_runtime(WorkerSettings(text_backend="onnx")).text_onnx
    paths = {"arrival order, padded per batch (before)": lambda: arrival_order(session, texts, args.batch),
             "sorted by length (now)": lambda: session(texts, batch_size=args.batch)}
    outputs = {name: fn() for name, fn in paths.items()}  # warm-up and the equality check
    difference = float(np.abs(outputs[next(iter(paths))] - outputs["sorted by length (now)"]).max())
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
    print(f"\n**{len(texts)} descriptions of {args.photos} photos, batch {args.batch}, medians of "
          f"{args.repeats}** (load average {load:.1f} -> {os.getloadavg()[0]:.1f} on "
          f"{os.cpu_count()} CPUs; largest vector difference {difference:.1e})\n")
    print(markdown_table(["text path", "wall ms / text", "CPU ms / text", "CPU vs before"],
                         [[name, f"{np.median(wall[name]):.2f}", f"{np.median(cpu[name]):.2f}",
                           f"{base / float(np.median(cpu[name])):.2f}x"] for name in paths]))


if __name__ == "__main__":
    main()
