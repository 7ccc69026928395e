"""What the benchmarks share: timing (medians of interleaved runs, percentiles), synthetic
vectors, the compute floor and Markdown tables. Every benchmark prints a table with a baseline
measured in the same run; results go to docs/benchmarks.md.

Benchmarks run as scripts (``.venv/bin/python benchmarks/NAME.py``), so they import this module
as ``bench_utils`` (the script's folder is on sys.path).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np


def median_ms(samples_s: Sequence[float]) -> float:
    """The median of samples in seconds, in milliseconds."""
    return 1000 * statistics.median(samples_s)


def percentiles_ms(samples_s: Sequence[float], qs: Sequence[float] = (50, 95, 99)) -> list[float]:
    """Percentiles of samples in seconds, in milliseconds."""
    return [float(v) for v in np.percentile(np.asarray(samples_s) * 1e3, list(qs))]


def interleaved(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int = 1) -> dict[str, float]:
    """Median ms of each function, run in turn (A B C A B C ...) after a warm-up, so that every
    path sees the same machine load."""
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[float]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            started = time.perf_counter()
            fn()
            samples[name].append(time.perf_counter() - started)
    return {name: median_ms(values) for name, values in samples.items()}


def rotated(items: Sequence[Any], shift: int) -> list[Any]:
    """`items` rotated left by `shift` (modulo their number): the order of the i-th turn when
    each takes each place in turn."""
    shift %= len(items)
    return [*items[shift:], *items[:shift]]


def unit_vectors(rng: np.random.Generator, n: int, dim: int) -> np.ndarray:
    """n random float32 unit vectors [n, dim] (stand-ins for photo embeddings at scale)."""
    vectors = rng.standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def matmul_flops_per_second(n: int = 2048, repeats: int = 5) -> float:
    """This machine's fp32 matmul rate now (an n x n x n torch matmul): the compute floor's
    denominator."""
    import torch

    a, b = torch.randn(n, n), torch.randn(n, n)
    ms = interleaved({"mm": lambda: a @ b}, repeats, warmup=2)["mm"]
    return 2 * n**3 / (ms / 1000)


def markdown_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A Markdown table; the first column left-aligned, the others right-aligned."""
    lines = ["| " + " | ".join(headers) + " |",
             "|---|" + "---:|" * (len(headers) - 1)]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)


def process_memory(pid: int | str = "self") -> dict[str, float]:
    """Resident memory of a process in MB: VmRSS, RssAnon, RssFile, VmHWM (/proc/PID/status),
    and Pss_Anon, Pss_File (/proc/PID/smaps_rollup, where readable). File-backed pages are
    page cache the kernel may drop, yet they count in RSS and in a container's memory limit."""
    fields: dict[str, float] = {}
    for name, keys in (("status", ("VmRSS", "RssAnon", "RssFile", "VmHWM")),
                       ("smaps_rollup", ("Pss_Anon", "Pss_File"))):
        try:
            text = Path(f"/proc/{pid}/{name}").read_text()
        except OSError:
            continue
        for line in text.splitlines():
            key, _, value = line.partition(":")
            if key in keys:
                fields[key] = int(value.split()[0]) / 1024
    return fields


def load_note() -> str:
    """The machine's load while the benchmark ran (shared machines: read numbers with it)."""
    return f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"


def cpu_seconds(pid: int) -> float:
    """user + system CPU of a process and its threads (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def parse_variant(text: str) -> tuple[str, dict[str, str]]:
    """'NAME=ENV=VALUE[,ENV=VALUE...]' (a --variant option) -> (NAME, {ENV: VALUE})."""
    name, _, settings = text.partition("=")
    pairs = [pair.split("=", 1) for pair in settings.split(",") if pair]
    if not name or not pairs or any(len(pair) != 2 or not pair[0] for pair in pairs):
        raise SystemExit(f"--variant {text!r}: expected NAME=ENV=VALUE[,ENV=VALUE...]")
    return name, dict(pairs)


def caption_texts(data_dir: Path) -> list[str]:
    """The customer's captions (`extra/captions.txt`: "<photo>#<n>\t<text>"), in file order."""
    lines = (data_dir / "extra" / "captions.txt").read_text().splitlines()
    return [line.split("\t", 1)[1].strip() for line in lines]
