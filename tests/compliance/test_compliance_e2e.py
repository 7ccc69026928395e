"""The end-to-end compliance benchmark's measuring core (benchmarks/bench_compliance_e2e.py) on
real servers and a small synthetic set in the customer's format, so the benchmark cannot rot:
what it reports per photo must agree with what the gateway flagged at indexing."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parents[2] / "benchmarks" / "bench_compliance_e2e.py"
CHILD_CAPTIONS = (0, 1, 3)  # caption #2 is the judged query: train_dataset.csv repeats it


def _bench():
    spec = importlib.util.spec_from_file_location("bench_compliance_e2e", BENCH)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def _synthetic(root: Path) -> Path:
    """12 synthetic photos; the first three get 3 captions naming a child (they "show" one)."""
    from withsense_train.synthetic import generate

    out = generate(root, images=12, seed=3, child_fraction=0.3)
    path = out / "extra" / "captions.txt"
    lines = path.read_text().splitlines()
    names = sorted({line.split("#", 1)[0] for line in lines})
    rewritten = []
    for line in lines:
        key, text = line.split("\t", 1)
        name, n = key.rsplit("#", 1)
        if name in names[:3] and int(n) in CHILD_CAPTIONS:
            text = f"a little boy holding {text}"
        rewritten.append(f"{key}\t{text}")
    path.write_text("\n".join(rewritten) + "\n")
    return out


def test_a_missing_data_folder_fails_clearly(tmp_path, capsys):
    assert _bench().main(["--data", str(tmp_path / "nowhere")]) == 2
    assert "data set is not at" in capsys.readouterr().err


@pytest.mark.slow
def test_measures_what_the_gateway_flagged(start_gateway, tmp_path):
    from withsense.client import SearchClient
    from withsense_train.data import load_dataset

    bench = _bench()
    dataset = load_dataset(_synthetic(tmp_path / "set"))
    photos = bench.photos_of(dataset, dataset.train_images)
    assert [p.kind for p in photos.values()].count("child") == 3
    queries = bench.build_queries(photos.values(), labelled=[])
    assert any(q.child for q in queries) and any(not q.child for q in queries)
    folder = tmp_path / "set" / "train_images"
    for described in (False, True):
        gateway = start_gateway(data_dir=tmp_path / f"store-{described}", restricted_regions=["RU"])
        with SearchClient(gateway.address, retries=False) as client:
            ids, report = bench.index_photos(client, folder, photos, described=described)
            tallies = bench.measure(client, ids, photos, queries, described=described,
                                    restricted="RU", unrestricted="US", top_k=20)
        shown = {name: bench.summarise(tally, photos) for name, tally in tallies.items()}
        open_, closed = shown["unrestricted"], shown["restricted"]
        # Every photo is surfaced (12 photos, 20 hits a search) and matched to its photo.
        for column in (open_, closed):
            assert sum(column[k]["surfaced"] for k in bench.KINDS) == len(photos)
            assert column["unaligned"] == 0
            assert sum(column[k]["both"] for k in bench.KINDS) == 0
        # Unrestricted: nothing blocked, nothing withheld.
        assert open_["hits_withheld"] == 0 and open_["child_queries"]["blocked"] == 0
        # Restricted: every child query blocked; the photos withheld are the ones flagged.
        assert closed["child_queries"]["blocked"] == closed["child_queries"]["queries"] > 0
        withheld = sum(closed[k]["withheld"] for k in bench.KINDS)
        assert withheld == report["flagged"]
        if described:  # a photo described with a child is never served: no leak
            assert report["flagged_by_description"] == sum(p.votes > 0 for p in photos.values())
            assert closed["leak_hits"] == 0 and closed["leak_photos"] == []
        else:  # without descriptions a leak is a served photo that shows a child
            served_children = closed["child"]["surfaced"] - closed["child"]["withheld"]
            assert len(set(closed["leak_photos"])) == served_children
        text = bench.format_table({"restricted": closed, "unrestricted": open_})
        assert "clear child photos withheld" in text and "(allowed)" in text
