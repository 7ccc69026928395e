"""The data set loader and validator: typed records, and errors that name file, line, problem."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from withsense_train.data import DatasetError, ExpertJudgment, load_dataset, parse_query_id

from tests.helpers import SHARED_DATA
from tests.trainer.conftest import SYNTHETIC_IMAGES, SYNTHETIC_TEST_IMAGES


@pytest.fixture
def copy(synthetic_dir: Path, tmp_path: Path) -> Path:
    """A private copy of the synthetic data set to break."""
    target = tmp_path / "data"
    shutil.copytree(synthetic_dir, target)
    return target


def edit_line(path: Path, line: int, new: str) -> None:
    lines = path.read_text(encoding="utf-8").splitlines()
    lines[line - 1] = new
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def line_of(path: Path, line: int) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines()[line - 1].split("\t")


def expect_error(root: Path, file: str, line: int | None, *words: str) -> DatasetError:
    with pytest.raises(DatasetError) as caught:
        load_dataset(root)
    error = caught.value
    message = str(error)
    assert error.path == root / file, message
    assert error.line == line, message
    where = f"{root / file}:{line}:" if line is not None else f"{root / file}:"
    assert message.startswith(where), message
    for word in words:
        assert word in message, message
    return error


def test_synthetic_set_loads_as_typed_records(synthetic_dataset) -> None:
    data = synthetic_dataset
    assert len(data.train_images) == SYNTHETIC_IMAGES
    assert len(data.test_images) == SYNTHETIC_TEST_IMAGES
    assert len(data.test_queries) == 5 * SYNTHETIC_TEST_IMAGES
    assert len(data.captions) == 5 * SYNTHETIC_IMAGES
    assert all(isinstance(e, ExpertJudgment) and 1 <= e.mean <= 4 for e in data.experts)
    positives = data.positives()
    assert len(positives) == SYNTHETIC_IMAGES
    assert all(len(caps) == 5 and all(c.image == image for c in caps) for image, caps in positives.items())
    judged = data.judgments()
    assert {j.label for j in judged} == {0, 1}
    assert all(0.0 <= j.soft <= 1.0 for j in judged)
    # The own photo of each expert query is judged a match.
    own = [e for e in data.experts if parse_query_id(e.query_id)[0] == e.image]
    assert own and all(e.match for e in own)
    assert len(data.data_hash()) == 64


def test_missing_column(copy: Path) -> None:
    edit_line(copy / "train_dataset.csv", 1, "image,query_id,text")
    expect_error(copy, "train_dataset.csv", 1, "missing column", "query_text")


def test_missing_tsv_column(copy: Path) -> None:
    fields = line_of(copy / "ExpertAnnotations.tsv", 7)
    edit_line(copy / "ExpertAnnotations.tsv", 7, "\t".join(fields[:4]))
    expect_error(copy, "ExpertAnnotations.tsv", 7, "expected 5 tab-separated columns", "found 4")


def test_unknown_photo(copy: Path) -> None:
    fields = line_of(copy / "CrowdAnnotations.tsv", 12)
    edit_line(copy / "CrowdAnnotations.tsv", 12, "\t".join(["nowhere.jpg", *fields[1:]]))
    expect_error(copy, "CrowdAnnotations.tsv", 12, "unknown photo 'nowhere.jpg'", "train_images/")


def test_unknown_photo_in_train_csv(copy: Path) -> None:
    path = copy / "train_dataset.csv"
    row = path.read_text().splitlines()[3].split(",", 1)
    edit_line(path, 4, f"missing.jpg,{row[1]}")
    expect_error(copy, "train_dataset.csv", 4, "unknown photo 'missing.jpg'")


@pytest.mark.parametrize("score, words", [("5", ("expert_2", "outside the scale 1..4")),
                                          ("0", ("outside the scale 1..4",)),
                                          ("2.5", ("not a whole number",)),
                                          ("x", ("not a number",))])
def test_expert_score_out_of_range(copy: Path, score: str, words: tuple[str, ...]) -> None:
    fields = line_of(copy / "ExpertAnnotations.tsv", 3)
    fields[3] = score
    edit_line(copy / "ExpertAnnotations.tsv", 3, "\t".join(fields))
    expect_error(copy, "ExpertAnnotations.tsv", 3, *words)


@pytest.mark.parametrize("values, words", [
    (("1.5", "3", "0"), ("share_yes", "outside 0..1")),
    (("0", "-1", "3"), ("count_yes", ">= 0")),
    (("0.5", "1", "2"), ("does not match",)),
    (("0", "0", "0"), ("no crowd votes",)),
])
def test_crowd_values_out_of_range(copy: Path, values: tuple[str, str, str], words: tuple[str, ...]) -> None:
    fields = line_of(copy / "CrowdAnnotations.tsv", 5)
    edit_line(copy / "CrowdAnnotations.tsv", 5, "\t".join([*fields[:2], *values]))
    expect_error(copy, "CrowdAnnotations.tsv", 5, *words)


def test_duplicate_pair(copy: Path) -> None:
    path = copy / "CrowdAnnotations.tsv"
    lines = path.read_text().splitlines()
    lines.insert(9, lines[2])  # line 3 again as line 10
    path.write_text("\n".join(lines) + "\n")
    expect_error(copy, "CrowdAnnotations.tsv", 10, "duplicate pair", "first on line 3")


def test_duplicate_row_in_train_csv(copy: Path) -> None:
    path = copy / "train_dataset.csv"
    lines = path.read_text().splitlines()
    lines.append(lines[1])
    path.write_text("\n".join(lines) + "\n")
    expect_error(copy, "train_dataset.csv", len(lines), "duplicate pair", "first on line 2")


def test_bad_query_id(copy: Path) -> None:
    fields = line_of(copy / "ExpertAnnotations.tsv", 2)
    fields[1] = "no-number-here.jpg"
    edit_line(copy / "ExpertAnnotations.tsv", 2, "\t".join(fields))
    expect_error(copy, "ExpertAnnotations.tsv", 2, "is not '<image>#<n>'")


def test_contradicting_caption(copy: Path) -> None:
    path = copy / "extra" / "captions.txt"
    query_id = line_of(path, 3)[0]
    edit_line(path, 3, f"{query_id}\tsomething else entirely")
    # Caption #2 (line 3) is also in train_dataset.csv with its original text.
    expect_error(copy, "extra/captions.txt", 3, "has text", "train_dataset.csv line")


def test_duplicate_caption(copy: Path) -> None:
    path = copy / "extra" / "captions.txt"
    lines = path.read_text().splitlines()
    lines.append(lines[0])
    path.write_text("\n".join(lines) + "\n")
    expect_error(copy, "extra/captions.txt", len(lines), "duplicate caption", "first on line 1")


def test_unreadable_photo(copy: Path) -> None:
    photo = sorted((copy / "train_images").iterdir())[4]
    photo.write_bytes(b"this is not a JPEG")
    expect_error(copy, f"train_images/{photo.name}", None, "unreadable photo")


def test_missing_file(copy: Path) -> None:
    (copy / "CrowdAnnotations.tsv").unlink()
    expect_error(copy, "CrowdAnnotations.tsv", None, "required file is missing")


def test_test_queries_missing_column_and_unknown_photo(copy: Path) -> None:
    path = copy / "test_queries.csv"
    original = path.read_text()
    edit_line(path, 1, "|query_id|text|image")
    expect_error(copy, "test_queries.csv", 1, "missing column", "query_text")
    path.write_text(original)
    fields = original.splitlines()[6].split("|")
    fields[-1] = "elsewhere.jpg"
    edit_line(path, 7, "|".join(fields))
    expect_error(copy, "test_queries.csv", 7, "unknown photo 'elsewhere.jpg'", "test_images/")


def test_test_queries_with_and_without_index_column(copy: Path) -> None:
    with_index = load_dataset(copy).test_queries
    path = copy / "test_queries.csv"
    rows = [line.split("|", 1)[1] for line in path.read_text().splitlines()]
    path.write_text("\n".join(rows) + "\n")
    without = load_dataset(copy).test_queries
    assert [(q.query_id, q.query_text, q.image) for q in with_index] == \
        [(q.query_id, q.query_text, q.image) for q in without]
    assert with_index[0].line == 2


def test_test_half_alone(copy: Path) -> None:
    for name in ("train_dataset.csv", "ExpertAnnotations.tsv", "CrowdAnnotations.tsv"):
        (copy / name).unlink()
    shutil.rmtree(copy / "train_images")
    data = load_dataset(copy, require_train=False)
    assert data.has_test and not data.has_train
    with pytest.raises(DatasetError, match="required file is missing"):
        load_dataset(copy)


def test_synthetic_command_writes_a_valid_set(tmp_path: Path) -> None:
    out = tmp_path / "set"
    subprocess.run([sys.executable, "-m", "withsense_train.synthetic", str(out), "--images", "12",
                    "--test-images", "3", "--seed", "5"], check=True, capture_output=True)
    data = load_dataset(out)
    assert len(data.train_images) == 12 and len(data.test_images) == 3
    checked = subprocess.run([sys.executable, "-m", "withsense_train.data", str(out)],
                             capture_output=True, text=True)
    assert checked.returncode == 0 and '"train_images": 12' in checked.stdout


@pytest.mark.data
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the customer's data set is not here")
def test_customer_data_set_is_valid() -> None:
    data = load_dataset(SHARED_DATA, check_photos=False)
    summary = data.summary()
    assert summary["train_images"] == 1000
    assert summary["train_pairs"] == 5822 == summary["expert_judgments"]
    assert summary["crowd_judgments"] == 47830
    assert summary["captions"] == 5000 and summary["photos_with_captions"] == 1000
