"""Start-up prefault of the embedded store's pages (`withsense.store.prefault`): the real engine's
mappings are found and faulted in within the budget, in tier order, never the write-ahead log or
the description originals, and searches answer the same afterwards."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from withsense.config.store import StoreSettings
from withsense.store import EdgeStore, ImageRecord, point_id_for
from withsense.store.prefault import PAGE, TIERS, prefault_store, store_mappings, tier_of

DIM = 384
N = 3000
LINUX = Path("/proc/self/maps").exists()
pytestmark = pytest.mark.skipif(not LINUX, reason="memory maps are read from /proc (Linux)")


def _records(n: int) -> list[ImageRecord]:
    rng = np.random.default_rng(5)
    return [ImageRecord(point_id_for(f"photo {i}".encode()), rng.normal(size=DIM).astype(np.float32),
                        {"uri": f"p{i}.jpg", "minor": False, "flag_reasons": [],
                         "descriptions": [f"a photo number {i}"], "content_hash": f"h{i}"},
                        descriptions=rng.normal(size=(2, DIM)).astype(np.float32))
            for i in range(n)]


@pytest.fixture(scope="module")
def store_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store of N photos with an HNSW graph (exact search below N would skip the graph)."""
    path = tmp_path_factory.mktemp("prefault") / "store"
    settings = StoreSettings(store_exact_up_to=100)
    with EdgeStore(path, DIM, settings=settings) as store:
        store.upsert(_records(N))
        store.optimize()
    return path


def _searches(store: EdgeStore) -> list[list[tuple[str, float | None]]]:
    """Each search's candidates with their cosines, sorted: the engine's fused order breaks
    RRF ties differently from call to call; the gateway ranks the candidates itself."""
    rng = np.random.default_rng(9)
    return [sorted((h.image_id, h.cosine)
                   for h in store.hybrid_search(rng.normal(size=DIM), None, 20, exclude_minor=False))
            for _ in range(5)]


def test_prefault_faults_in_the_store_within_its_budget(store_path: Path) -> None:
    with EdgeStore(store_path, DIM, settings=StoreSettings(store_exact_up_to=100)) as store:
        mapped = store_mappings(store_path)
        assert mapped, "the engine maps its files: nothing found under the store"
        before = _searches(store)
        report = prefault_store(store_path, 512)
        assert report.unavailable == "", report.unavailable
        assert 0 < report.faulted_bytes <= report.mapped_bytes <= 512 * 2**20
        assert report.skipped_for_budget == 0
        assert "graphs and indexes" in report.by_tier and "image originals" in report.by_tier
        assert "never" not in report.by_tier
        assert "faulted in" in report.describe()
        assert _searches(store) == before  # the same hits and cosines


def test_budget_zero_faults_in_nothing(store_path: Path) -> None:
    with EdgeStore(store_path, DIM, settings=StoreSettings(store_exact_up_to=100)):
        report = prefault_store(store_path, 0)
    assert report.faulted_bytes == 0 and "off" in report.unavailable


def test_a_small_budget_takes_the_first_tiers_first(store_path: Path) -> None:
    with EdgeStore(store_path, DIM, settings=StoreSettings(store_exact_up_to=100)):
        full = prefault_store(store_path, 512)
        graphs = full.by_tier["graphs and indexes"]
        budget_mb = -(-graphs // 2**20)  # the graphs fit; the image originals (4.6 MB) do not
        small = prefault_store(store_path, budget_mb)
    assert small.by_tier.get("graphs and indexes") == graphs
    assert small.skipped_for_budget == small.mapped_bytes - small.faulted_bytes > 0
    assert small.faulted_bytes == sum(small.by_tier.values()) <= budget_mb * 2**20
    # Tier by tier: every tier before the last one touched is whole.
    order = [name for name, _ in TIERS if name in full.by_tier]
    touched = [name for name in order if name in small.by_tier]
    assert touched == order[:len(touched)]
    assert all(small.by_tier[name] == full.by_tier[name] for name in touched[:-1])


def test_the_last_file_that_does_not_fit_is_faulted_in_as_far_as_the_budget_goes(
        store_path: Path) -> None:
    with EdgeStore(store_path, DIM, settings=StoreSettings(store_exact_up_to=100)):
        full = prefault_store(store_path, 512)
        names = [name for name, _ in TIERS]
        earlier = names[:names.index("image originals")]
        before = sum(b for name, b in full.by_tier.items() if name in earlier)
        originals = full.by_tier["image originals"]
        budget_mb = (before + originals // 2) // 2**20 + 1  # half of the originals, give or take
        part = prefault_store(store_path, budget_mb)
    assert 0 < part.by_tier["image originals"] < originals
    assert part.faulted_bytes <= budget_mb * 2**20
    assert part.by_tier["image originals"] % PAGE == 0


def test_mappings_are_clipped_to_their_files_and_tiered(tmp_path: Path) -> None:
    """The maps text of /proc, for files of known sizes: a mapping longer than its file is
    clipped to the file's whole pages; one past the end is dropped; paths outside are ignored."""
    root = tmp_path / "store"
    files = {"segments/s/vector_index-image/links.bin": 3 * PAGE + 10,
             "segments/s/vector_storage-image/matrix.dat": 8 * PAGE,
             "wal/open-1": 4 * PAGE,
             "segments/s/vector_storage-descriptions/vectors/chunk_0.mmap": 2 * PAGE}
    for name, size in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"\0" * size)
    other = tmp_path / "elsewhere.dat"
    other.write_bytes(b"\0" * PAGE)

    def line(start: int, length: int, offset: int, path: Path) -> str:
        return f"{start:x}-{start + length:x} r--s {offset:08x} fe:00 1 {path}"

    maps = "\n".join([
        line(0x10000000, 16 * PAGE, 0, root / "segments/s/vector_index-image/links.bin"),
        line(0x20000000, 8 * PAGE, 0, root / "segments/s/vector_storage-image/matrix.dat"),
        line(0x30000000, 4 * PAGE, 16 * PAGE, root / "segments/s/vector_storage-image/matrix.dat"),
        line(0x40000000, 4 * PAGE, 0, root / "wal/open-1"),
        line(0x50000000, PAGE, 0, other),
    ])
    found = {(Path(m.path).name, m.offset): m for m in store_mappings(root, maps)}
    assert set(found) == {("links.bin", 0), ("matrix.dat", 0), ("open-1", 0)}
    assert found[("links.bin", 0)].length == 3 * PAGE  # whole pages inside the file
    assert found[("matrix.dat", 0)].length == 8 * PAGE
    assert [TIERS[found[k].tier][0] for k in sorted(found)] == [
        "graphs and indexes", "image originals", "never"]
    originals = root / "segments/s/vector_storage-descriptions/vectors/chunk_0.mmap"
    assert TIERS[tier_of(str(originals))][0] == "never"
    assert tier_of(str(root / "segments/s/something_new.bin")) == len(TIERS)
