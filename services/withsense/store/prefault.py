"""Fault in, at start-up, the pages of the store's files that searches read, within a budget.

Why: Qdrant Edge memory-maps its files (the HNSW graphs, the int8 vectors, the payloads, the
float32 originals that rescoring reads). A process that has not touched a page yet takes a page
fault for it, and on this project's virtual machines a fault costs far more than the read: a
search touches hundreds of pages it has not seen (the graph, ~200 candidates' originals), so a
freshly opened 100k-photo store answered the gateway's store call in p50 8 ms, p99 24-32 ms,
against 3 ms, p99 5 ms with its pages mapped (`benchmarks/bench_store_prefault.py`). The full
start-up verification used to warm them as a side effect; the sealed start-up reads only a
sample (it keeps a 1M-photo server's memory low), so the warm-up is done here, deliberately and
within `StoreSettings.store_prefault_mb`.

How: `madvise(MADV_POPULATE_READ)` (Linux 5.14) on the process's own mappings of the store's
files, as `/proc/self/maps` lists them, each clipped to its file's size. The pages are the page
cache's (file-backed, clean): they count in the process's RSS, and under memory pressure the
kernel can still drop them (the next read faults them back). Nothing here changes what a search
returns. Where the call is not available (another OS, an older kernel) nothing is faulted in and
the report says why: start-up never fails for it.

Which files first (the engine's file names; a file that matches none comes last):
the graphs and indexes (small, read by every search), the image int8 vectors the graph search
scores (when they are mapped rather than held in RAM), the payloads of the hits, the image
originals (rescoring and the candidates' exact cosines read ~80-120 of them at random a search:
cold, the image search alone took 23.6 ms p50 at 1M photos, warm 2.3 ms), then the description
int8 vectors (the description search took 1.0 ms cold), then the rest. The last file that does
not fit whole is faulted in as far as the budget goes (the 1.5 GB of image originals at 1M: a
share of them is a share of a search's reads). Never: the write-ahead log, and the description
originals (read for ~75 candidates a search, 1.7 GB at 1M photos; at 100k faulting them in as
well moved the store call's p50 by 0.3 ms, within the runs' noise, for 170 MB more).
"""

from __future__ import annotations

import ctypes
import ctypes.util
import errno
import os
import sys
import time
from dataclasses import dataclass, field, replace
from pathlib import Path

MADV_POPULATE_READ = 22
PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096

# (name, path fragments) in the order they are faulted in; the first match names a file's tier.
TIERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("never", ("/wal/", "/vector_storage-descriptions/vectors/")),
    ("graphs and indexes", ("/vector_index-", "/id_tracker", "/payload_index/", "/mutable_id_tracker")),
    ("image int8 vectors", ("/vector_storage-image/quantized",)),
    ("payloads", ("/payload_storage/",)),
    ("image originals", ("/vector_storage-image/",)),
    ("description int8 vectors", ("/vector_storage-descriptions/quantized",)),
)
OTHER = "other"


@dataclass
class Mapping:
    path: str
    start: int  # address
    offset: int  # in the file
    length: int  # bytes within the file
    tier: int


@dataclass
class PrefaultReport:
    mapped_bytes: int = 0  # of the store's files in this process (never-tier excluded)
    faulted_bytes: int = 0
    seconds: float = 0.0
    by_tier: dict[str, int] = field(default_factory=dict)  # tier -> bytes faulted in
    failed_bytes: int = 0  # bytes of mappings the kernel would not fault in (e.g. a shrunk file)
    unavailable: str = ""  # why nothing could be faulted in

    @property
    def skipped_for_budget(self) -> int:
        """Bytes left out by the budget: neither faulted in nor refused by the kernel."""
        if self.unavailable:
            return 0
        return max(0, self.mapped_bytes - self.faulted_bytes - self.failed_bytes)

    def describe(self) -> str:
        if self.unavailable:
            return f"store pages not faulted in: {self.unavailable}"
        tiers = ", ".join(f"{name} {b / 2**20:.0f} MB" for name, b in self.by_tier.items())
        left = (f"; {self.skipped_for_budget / 2**20:.0f} MB left out by the budget"
                if self.skipped_for_budget else "")
        if self.failed_bytes:
            left += f"; {self.failed_bytes / 2**20:.0f} MB could not be faulted in"
        return (f"store pages faulted in: {self.faulted_bytes / 2**20:.0f} of "
                f"{self.mapped_bytes / 2**20:.0f} MB mapped in {self.seconds:.1f} s "
                f"({tiers or 'none'}){left}")


def tier_of(path: str) -> int:
    """Index into TIERS (0 = never), or len(TIERS) for a file no tier names."""
    for i, (_, fragments) in enumerate(TIERS):
        if any(f in path for f in fragments):
            return i
    return len(TIERS)


def tier_name(tier: int) -> str:
    return TIERS[tier][0] if tier < len(TIERS) else OTHER


def store_mappings(root: Path, maps: str | None = None) -> list[Mapping]:
    """This process's mappings of files under `root`, clipped to each file's size."""
    prefix = str(Path(root).resolve()).rstrip("/") + "/"
    if maps is None:
        with open("/proc/self/maps") as f:
            maps = f.read()
    sizes: dict[str, int] = {}
    found = []
    for line in maps.splitlines():
        parts = line.split(None, 5)
        if len(parts) < 6 or not parts[5].startswith(prefix):
            continue
        path = parts[5].strip()
        start, end = (int(x, 16) for x in parts[0].split("-"))
        offset = int(parts[2], 16)
        if path not in sizes:
            try:
                sizes[path] = os.stat(path).st_size
            except OSError:  # deleted since it was mapped
                sizes[path] = 0
        # Pages past the end of the file cannot be read (SIGBUS): clip to whole pages inside.
        length = min(end - start, max(0, sizes[path] - offset))
        length -= length % PAGE
        if length > 0:
            found.append(Mapping(path, start, offset, length, tier_of(path)))
    return found


class _FileBytes:
    """Bytes of each file covered by the mappings added so far (overlaps counted once)."""

    def __init__(self) -> None:
        self.ranges: dict[str, list[tuple[int, int]]] = {}  # path -> merged, sorted ranges

    def new_bytes(self, m: Mapping) -> int:
        """Bytes of m's file range that no mapping added so far covers."""
        start, end = m.offset, m.offset + m.length
        return m.length - sum(max(0, min(end, e) - max(start, s))
                              for s, e in self.ranges.get(m.path, []))

    def add(self, m: Mapping) -> None:
        merged: list[tuple[int, int]] = []
        for s, e in sorted([*self.ranges.get(m.path, []), (m.offset, m.offset + m.length)]):
            if merged and s <= merged[-1][1]:
                merged[-1] = (merged[-1][0], max(merged[-1][1], e))
            else:
                merged.append((s, e))
        self.ranges[m.path] = merged

    def add_all(self, mappings: list[Mapping]) -> int:
        total = 0
        for m in mappings:
            total += self.new_bytes(m)
            self.add(m)
        return total


def _madvise():
    if not sys.platform.startswith("linux"):
        return None
    libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
    fn = libc.madvise
    fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn


def prefault_store(root: Path, budget_mb: int) -> PrefaultReport:
    """Faults in this process's mappings of the store's files under `root`, tier by tier, within
    `budget_mb` (0: none): each mapping whole while it fits, else its first pages that do."""
    report = PrefaultReport()
    started = time.perf_counter()
    try:
        mappings = [m for m in store_mappings(root) if m.tier != 0]
    except OSError as e:
        report.unavailable = f"cannot read this process's memory maps ({e})"
        return report
    report.mapped_bytes = _FileBytes().add_all(mappings)
    if budget_mb <= 0:
        report.unavailable = "off (WITHSENSE_STORE_PREFAULT_MB=0)"
        return report
    madvise = _madvise()
    if madvise is None:
        report.unavailable = f"not supported on {sys.platform}"
        return report
    left = budget_mb * 2**20
    charged = _FileBytes()
    for whole in sorted(mappings, key=lambda m: (m.tier, m.length)):
        # The engine maps some files twice (two views of the image originals): the pages are
        # the page cache's, held once, so the budget counts each file's bytes once.
        m = whole if charged.new_bytes(whole) <= left else _head(whole, left)
        if m is None:
            continue
        new = charged.new_bytes(m)
        if madvise(m.start, m.length, MADV_POPULATE_READ) != 0:
            err = ctypes.get_errno()
            if err in (errno.EINVAL, errno.ENOSYS):  # a kernel before 5.14
                report.unavailable = "MADV_POPULATE_READ is not supported by this kernel"
                break
            report.failed_bytes += new  # e.g. EFAULT: the file shrank under the mapping
            continue
        charged.add(m)
        left -= new
        report.faulted_bytes += new
        name = tier_name(m.tier)
        report.by_tier[name] = report.by_tier.get(name, 0) + new
    report.seconds = time.perf_counter() - started
    return report


def _head(m: Mapping, budget: int) -> Mapping | None:
    """The first whole pages of m that fit in `budget` bytes (None: not one page)."""
    length = budget // PAGE * PAGE
    return replace(m, length=length) if length > 0 else None
