"""The embedded store with its catalogue: every write recorded, the store checked at start-up.

`CataloguedStore` wraps an `EdgeStore` and keeps `Catalogue` in step with it (pending before a
write, committed with the engine's own fingerprint after). The full verification compares the
two point by point and also checks the payload indexes against the payloads (a damaged `minor`
index would let the engine's `exclude_minor` filter pass flagged photos). A store that
disagrees raises `StoreDamaged`, whose message says what to do; the gateway refuses to serve it.

A store closed cleanly after it was verified carries a seal (`seal.py`); when the seal still
matches the engine's files at the next open, the sealed check replaces the full one: the
counts of points and of `minor` photos against the seal and the catalogue, and a random sample
of points fingerprinted against the catalogue. Anything amiss there, a broken or missing seal,
`full=True` or `WITHSENSE_STORE_VERIFY_FULL` make it the full verification again. After a full
verification the engine is reopened, so that the vectors it read do not stay mapped (resident)
in the serving process.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from withsense.config.store import StoreSettings

from .base import ImageRecord, StoreError, StoreHit, uris_of
from .catalogue import CATALOGUE_FILE, Catalogue, fingerprint, same_point
from .edge import EdgeStore, ensure_writable_folder
from .seal import Seal

_EXAMPLES = 3
#: Uris per lookup when the uri index is checked: one lookup of every uri costs time quadratic
#: in their number (108 s for 100k), lookups of 256 stay linear (about 0.1 ms a uri).
_URI_CHUNK = 256


class StoreDamaged(StoreError):
    """The store disagrees with its catalogue: it must not be served."""


@dataclass
class VerifyReport:
    images: int = 0
    missing: list[str] = field(default_factory=list)   # catalogued, not in the store
    changed: list[str] = field(default_factory=list)   # in both, different content
    unknown: list[str] = field(default_factory=list)   # in the store, never catalogued
    index_problems: list[str] = field(default_factory=list)
    settled: int = 0  # writes interrupted by a crash, found done or not done and recorded so
    mode: str = "full"  # "full": every point read; "sealed": the seal held, a sample was read
    sampled: int = 0  # points fingerprinted by the sealed check
    seed: int | None = None  # of the sealed check's sample
    full_because: str = ""  # why the sealed check did not suffice

    @property
    def ok(self) -> bool:
        return not (self.missing or self.changed or self.unknown or self.index_problems)

    def problems(self) -> list[str]:
        out = [f"{len(ids)} {what} (e.g. {', '.join(ids[:_EXAMPLES])})"
               for what, ids in (("catalogued images missing", self.missing),
                                 ("images changed", self.changed),
                                 ("images never catalogued", self.unknown)) if ids]
        return out + self.index_problems

    def to_dict(self) -> dict[str, Any]:
        return {"ok": self.ok, "images": self.images, "missing": len(self.missing),
                "changed": len(self.changed), "unknown": len(self.unknown),
                "index_problems": self.index_problems, "settled": self.settled,
                "mode": self.mode, "sampled": self.sampled, "seed": self.seed,
                "full_because": self.full_because}


class _Scan:
    """What verification keeps of each page of points: fingerprints, the photos whose
    fingerprint disagrees with the catalogue, the flags and uris the indexes must agree with."""

    def __init__(self, committed: Mapping[str, str]) -> None:
        self.committed = committed
        self.actual: dict[str, str] = {}
        self.changed: list[str] = []
        self.upgrades: dict[str, str] = {}  # intact entries of fingerprint version 1
        self.minors: set[str] = set()
        self.uris: set[str] = set()
        self.with_uri: set[str] = set()

    def add(self, page: Sequence[tuple[str, dict[str, Any], Any]]) -> None:
        for image_id, payload, vectors in page:
            actual = self.actual[image_id] = fingerprint(payload, vectors)
            recorded = self.committed.get(image_id)
            if recorded is not None and recorded != actual:
                if same_point(recorded, payload, vectors):
                    self.upgrades[image_id] = actual
                else:
                    self.changed.append(image_id)
            if payload.get("minor") is True:
                self.minors.add(image_id)
            uris = uris_of(payload)
            if uris:
                self.with_uri.add(image_id)
                self.uris.update(uris)


def _return_freed_heap() -> None:
    """Hands the heap the full verification freed (a million fingerprints: hundreds of MB) back
    to the system; glibc keeps it otherwise. A no-op where there is no glibc."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def remedy(store_path: Path, catalogue_path: Path) -> str:
    return (f"Stop the gateway, then restore the last good snapshot (`withsense store restore "
            f"FILE`), or move {store_path} and {catalogue_path} aside and index the photos again "
            f"(`withsense index DIR`). If you trust the store as it is, `withsense store verify "
            f"--adopt` records it in a new catalogue.")


class CataloguedStore:
    """`VectorStore` over an `EdgeStore`, recording every write in a `Catalogue`.

    `seal` is the seal found valid when the store was opened (None: none, or broken, for the
    reason `unsealed_because`); see `open_catalogued`."""

    def __init__(self, inner: EdgeStore, catalogue: Catalogue, *, settings: StoreSettings,
                 seal: Seal | None = None, unsealed_because: str = "the store has no seal") -> None:
        self.inner = inner
        self.catalogue = catalogue
        self.backend = inner.backend
        self.dim = inner.dim
        self.path = inner.path
        self.settings = settings
        self._seal = seal
        self._unsealed_because = unsealed_because
        self._verified = False  # verified intact since opened: may be sealed at close

    # ------------------------------------------------------------------ writes, recorded

    def _fingerprints(self, image_ids: Sequence[str]) -> dict[str, str]:
        return {i: fingerprint(payload, vectors)
                for i, (payload, vectors) in self.inner.points(image_ids).items()}

    def upsert(self, records: Sequence[ImageRecord]) -> None:
        ids = [str(r.image_id) for r in records]
        self.catalogue.mark_pending(ids)
        self.inner.upsert(records)
        self.catalogue.commit(self._fingerprints(ids))

    def set_payloads(self, payloads: Mapping[str, Mapping[str, Any]]) -> None:
        ids = list(payloads)
        self.catalogue.mark_pending(ids)
        self.inner.set_payloads(payloads)
        self.catalogue.commit(self._fingerprints(ids))

    def delete(self, image_ids: Sequence[str]) -> int:
        ids = list(image_ids)
        self.catalogue.mark_pending(ids)
        deleted = self.inner.delete(ids)
        self.catalogue.remove(ids)
        return deleted

    # ------------------------------------------------------------------ reads, passed on

    def get(self, image_ids: Sequence[str]) -> dict[str, dict[str, Any]]:
        return self.inner.get(image_ids)

    def search(self, vector: np.ndarray | Sequence[float], limit: int, *, exclude_minor: bool,
               filters: Mapping[str, str] | None = None, with_vectors: bool = True) -> list[StoreHit]:
        return self.inner.search(vector, limit, exclude_minor=exclude_minor, filters=filters,
                                 with_vectors=with_vectors)

    def ids_for_uris(self, uris: Sequence[str]) -> list[str]:
        return self.inner.ids_for_uris(uris)

    def count(self, *, minor: bool | None = None) -> int:
        return self.inner.count(minor=minor)

    def optimize(self) -> None:
        self.inner.optimize()

    def close(self) -> None:
        """Closes the engine, then seals the store if it was verified intact and every write
        since is committed in the catalogue (no write pending)."""
        counts = self._counts_to_seal()
        self._verified = False
        try:
            self.inner.close()
            if counts is not None and self.catalogue.counts() == (counts[0], 0):
                self.catalogue.seal(Seal.take(self.path, *counts).to_json())
        finally:
            self.catalogue.close()

    def _counts_to_seal(self) -> tuple[int, int] | None:
        """(points, minor photos) of a store that may be sealed now, else None."""
        if not self._verified:
            return None
        try:
            return self.inner.count(), self.inner.count(minor=True)
        except StoreError:
            return None

    def __getattr__(self, name: str) -> Any:  # extras of EdgeStore (searches_exactly, ...)
        return getattr(self.inner, name)

    # ------------------------------------------------------------------ verification

    def verify(self, *, adopt: bool = False, full: bool = False) -> VerifyReport:
        """Checks the store against the catalogue: the sealed check when the store's seal held
        at open (and neither `full` nor `adopt` is asked), else (or if that finds anything
        amiss) the full verification. Never raises for a disagreement: see `require_intact`."""
        because = self._unsealed_because
        if not (adopt or full) and self._seal is not None:
            sealed, because = self._sealed_check(self._seal)
            if sealed is not None:
                self._verified = True
                return sealed
        elif adopt or full:
            because = "asked for"
        self._seal = None  # once amiss, amiss for this session
        report = self._full_verify(adopt)
        report.full_because = because
        self._verified = report.ok
        if report.ok:
            self._unmap()
        return report

    def _sealed_check(self, seal: Seal) -> tuple[VerifyReport | None, str]:
        """(report, "") when the counts agree with the seal and the catalogue and a random
        sample of points matches its fingerprints; (None, what disagreed) otherwise."""
        try:
            points, minors = self.inner.count(), self.inner.count(minor=True)
            committed, pending = self.catalogue.counts()
            if pending or (points, minors) != (seal.points, seal.minors) or committed != points:
                return None, (f"counts disagree (store {points} points, {minors} minor; seal "
                              f"{seal.points}, {seal.minors}; catalogue {committed}, {pending} pending)")
            seed = int.from_bytes(os.urandom(4), "little")
            sample = self.catalogue.sample(self.settings.store_verify_sample,
                                           np.random.default_rng(seed))
            found = self.inner.points(list(sample))
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # noqa: BLE001 - the full verification reports it
            return None, f"the sealed check failed: {e}"
        bad = [i for i, recorded in sample.items()
               if i not in found or not same_point(recorded, *found[i])]
        if bad:
            return None, f"{len(bad)} of {len(sample)} sampled points differ (e.g. {bad[0]})"
        return VerifyReport(images=points, mode="sealed", sampled=len(sample), seed=seed), ""

    def _unmap(self) -> None:
        """Reopens the engine, whose memory maps kept every vector the scan read resident in
        this process (3 GB at 1M photos); the reopened engine maps only what searches touch."""
        old = self.inner
        old.close()
        _return_freed_heap()
        self.inner = EdgeStore(self.path, self.dim, settings=self.settings,
                               exact_up_to=old.exact_up_to, hnsw_ef=old.hnsw_ef)
        self.inner.rescore, self.inner.oversampling = old.rescore, old.oversampling

    def _full_verify(self, adopt: bool) -> VerifyReport:
        """Compares every point with the catalogue (and the payload indexes with the payloads).

        Reads the store page by page (a million photos never sit in memory at once).
        Interrupted writes are settled as found; intact entries of fingerprint version 1 are
        upgraded. `adopt=True` records the store as it is.
        """
        committed, pending = self.catalogue.entries()
        scan = _Scan(committed if not adopt else {})
        try:
            for page in self.inner.scan():
                scan.add(page)
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:  # the engine may panic on a damaged file
            raise StoreDamaged(f"cannot read the vector store at {self.path}: {e}. "
                               f"{remedy(self.path, self.catalogue.path)}") from e
        actual = scan.actual
        report = VerifyReport(images=len(actual))
        if adopt:
            self.catalogue.replace_all(actual)
            committed, pending = self.catalogue.entries()
        if not self.catalogue.existed and not committed and not pending and actual and not adopt:
            report.unknown = sorted(actual)
        else:
            report.missing = sorted(set(committed) - set(actual))
            report.changed = sorted(scan.changed)
            report.unknown = sorted(set(actual) - set(committed) - pending)
        if scan.upgrades:
            self.catalogue.commit(scan.upgrades)
        self._settle(pending, actual, report)
        report.index_problems = self._index_problems(scan)
        return report

    def _settle(self, pending: set[str], actual: dict[str, str], report: VerifyReport) -> None:
        if not pending:
            return
        self.catalogue.commit({i: actual[i] for i in pending if i in actual})
        self.catalogue.remove(i for i in pending if i not in actual)
        report.settled = len(pending)

    def _index_problems(self, scan: _Scan) -> list[str]:
        problems = []
        try:
            ids = set(scan.actual)
            if self.inner.ids(minor=True) != scan.minors or \
                    self.inner.ids(minor=False) != ids - scan.minors:
                problems.append("the payload index of 'minor' disagrees with the payloads")
            uris = sorted(scan.uris)
            found: set[str] = set()
            for start in range(0, len(uris), _URI_CHUNK):
                found.update(self.inner.ids_for_uris(uris[start:start + _URI_CHUNK]))
            if found != scan.with_uri:
                problems.append("the payload index of 'uri' disagrees with the payloads")
        except (KeyboardInterrupt, SystemExit):
            raise
        except BaseException as e:
            problems.append(f"the payload indexes cannot be read: {e}")
        return problems

    def require_intact(self, *, full: bool | None = None) -> VerifyReport:
        """`verify()`, raising StoreDamaged with what to do when the store disagrees. `full`
        defaults to the setting `store_verify_full`."""
        report = self.verify(full=self.settings.store_verify_full if full is None else full)
        if not report.ok:
            raise StoreDamaged(
                f"the vector store at {self.path} disagrees with its catalogue "
                f"{self.catalogue.path}: {'; '.join(report.problems())}. It is not served. "
                f"{remedy(self.path, self.catalogue.path)}"
            )
        return report


def open_catalogued(data_dir: Path, dim: int, settings: StoreSettings | None = None) -> CataloguedStore:
    """The embedded store in `data_dir/store` with its catalogue beside it.

    The seal is read and removed before the engine opens (loading rewrites some of its files),
    so a store that is not closed cleanly is fully verified at its next open."""
    settings = settings or StoreSettings()
    store_path, catalogue_path = Path(data_dir) / "store", Path(data_dir) / CATALOGUE_FILE
    ensure_writable_folder(store_path)  # a clear error for the folder before the catalogue's
    catalogue = Catalogue(catalogue_path)
    try:
        seal, because = _take_seal(catalogue, store_path)
        inner = EdgeStore(store_path, dim, settings=settings)
    except StoreError as e:
        catalogue.close()
        if str(e).startswith("cannot open the vector store"):  # damaged, not busy or unwritable
            raise StoreDamaged(f"{e}. {remedy(store_path, catalogue_path)}") from e
        raise
    except BaseException:
        catalogue.close()
        raise
    return CataloguedStore(inner, catalogue, settings=settings, seal=seal, unsealed_because=because)


def _take_seal(catalogue: Catalogue, store_path: Path) -> tuple[Seal | None, str]:
    """(the seal, "") if it matches the files now, else (None, why not); removed either way."""
    body = catalogue.take_seal()
    if body is None:
        return None, "the store has no seal (not closed cleanly after a verification)"
    seal = Seal.from_json(body)
    if seal is None:
        return None, "the store's seal is unreadable"
    broken = seal.broken_by(store_path)
    return (None, broken) if broken else (seal, "")
