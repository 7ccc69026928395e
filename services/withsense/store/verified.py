"""The embedded store with its catalogue: every write recorded, the whole checked at start-up.

`CataloguedStore` wraps an `EdgeStore` and keeps `Catalogue` in step with it (pending before a
write, committed with the engine's own fingerprint after). `verify()` compares the two and
also checks the payload indexes against the payloads (a damaged `minor` index would let the
engine's `exclude_minor` filter pass flagged photos). A store that disagrees raises
`StoreDamaged`, whose message says what to do; the gateway refuses to serve it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from .base import ImageRecord, StoreError, StoreHit, uris_of
from .catalogue import CATALOGUE_FILE, Catalogue, fingerprint, same_point
from .edge import EdgeStore

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
                "index_problems": self.index_problems, "settled": self.settled}


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


def remedy(store_path: Path, catalogue_path: Path) -> str:
    return (f"Stop the gateway, then restore the last good snapshot (`withsense store restore "
            f"FILE`), or move {store_path} and {catalogue_path} aside and index the photos again "
            f"(`withsense index DIR`). If you trust the store as it is, `withsense store verify "
            f"--adopt` records it in a new catalogue.")


class CataloguedStore:
    """`VectorStore` over an `EdgeStore`, recording every write in a `Catalogue`."""

    def __init__(self, inner: EdgeStore, catalogue_path: Path | str) -> None:
        self.inner = inner
        self.catalogue = Catalogue(catalogue_path)
        self.backend = inner.backend
        self.dim = inner.dim
        self.path = inner.path

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
        self.inner.close()
        self.catalogue.close()

    def __getattr__(self, name: str) -> Any:  # extras of EdgeStore (searches_exactly, ...)
        return getattr(self.inner, name)

    # ------------------------------------------------------------------ verification

    def verify(self, *, adopt: bool = False) -> VerifyReport:
        """Compares the store with the catalogue (and its payload indexes with its payloads).

        Reads the store page by page (a million photos never sit in memory at once).
        Interrupted writes are settled as found; intact entries of fingerprint version 1 are
        upgraded. `adopt=True` records the store as it is. Never raises for a disagreement:
        see `require_intact`.
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

    def require_intact(self) -> VerifyReport:
        """`verify()`, raising StoreDamaged with what to do when the store disagrees."""
        report = self.verify()
        if not report.ok:
            raise StoreDamaged(
                f"the vector store at {self.path} disagrees with its catalogue "
                f"{self.catalogue.path}: {'; '.join(report.problems())}. It is not served. "
                f"{remedy(self.path, self.catalogue.path)}"
            )
        return report


def open_catalogued(data_dir: Path, dim: int) -> CataloguedStore:
    """The embedded store in `data_dir/store` with its catalogue beside it."""
    catalogue_path = Path(data_dir) / CATALOGUE_FILE
    try:
        inner = EdgeStore(Path(data_dir) / "store", dim)
    except StoreError as e:
        if str(e).startswith("cannot open the vector store"):  # damaged, not busy or unwritable
            raise StoreDamaged(f"{e}. {remedy(Path(data_dir) / 'store', catalogue_path)}") from e
        raise
    try:
        return CataloguedStore(inner, catalogue_path)
    except BaseException:
        inner.close()
        raise
