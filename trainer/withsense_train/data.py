"""Loader and validator of the customer's data set format (DESIGN.md, "Data set format").

A data set folder holds a train half and, optionally, a test half:

- ``train_dataset.csv``: ``image,query_id,query_text`` (header; comma separated, CSV quoting).
- ``ExpertAnnotations.tsv``: ``image, query_id, expert_1, expert_2, expert_3`` (no header), scores
  are integers 1..4.
- ``CrowdAnnotations.tsv``: ``image, query_id, share_yes, count_yes, count_no`` (no header), share
  in 0..1 and equal to ``count_yes / (count_yes + count_no)``, counts integers >= 0.
- ``train_images/``: the photos that the ``image`` columns name.
- ``extra/captions.txt`` (optional): ``<image>#<n><TAB><caption>``, every caption of each photo.
- ``test_queries.csv`` (optional): ``query_id|query_text|image``, separator ``|``, usually with a
  leading index column (pandas' ``to_csv(sep="|")``: header ``|query_id|query_text|image``).
- ``test_images/`` (with ``test_queries.csv``): the photos its ``image`` column names.

A ``query_id`` is ``<image>#<n>``: caption number n written for that photo. Every caption whose
``query_id`` names a photo is a positive of that photo.

``load_dataset`` checks everything and raises ``DatasetError`` naming the file, the line and the
problem: missing files or columns, malformed ids, scores out of range, duplicates, photos that
are unknown or unreadable, captions that contradict each other.
"""

from __future__ import annotations

import csv
import hashlib
import re
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

TRAIN_CSV = "train_dataset.csv"
EXPERT_TSV = "ExpertAnnotations.tsv"
CROWD_TSV = "CrowdAnnotations.tsv"
TRAIN_IMAGES = "train_images"
CAPTIONS_TXT = "extra/captions.txt"
TEST_CSV = "test_queries.csv"
TEST_IMAGES = "test_images"

EXPERT_COLUMNS = ("image", "query_id", "expert_1", "expert_2", "expert_3")
CROWD_COLUMNS = ("image", "query_id", "share_yes", "count_yes", "count_no")
TRAIN_COLUMNS = ("image", "query_id", "query_text")
TEST_COLUMNS = ("query_id", "query_text", "image")

EXPERT_MATCH = 3.0  # expert mean score at or above which a pair is a match
CROWD_MATCH = 0.5  # crowd share of "yes" at or above which a pair is a match (no expert score)
_QUERY_ID = re.compile(r"^(?P<image>[^#]+)#(?P<n>\d+)$")


class DatasetError(ValueError):
    """The data set breaks its format: ``str(error)`` is ``FILE:LINE: problem``."""

    def __init__(self, path: Path | str, line: int | None, problem: str) -> None:
        self.path = Path(path)
        self.line = line
        self.problem = problem
        where = f"{self.path}:{line}" if line is not None else f"{self.path}"
        super().__init__(f"{where}: {problem}")


# --- records ---------------------------------------------------------------------------------

def parse_query_id(query_id: str) -> tuple[str, int] | None:
    """``'123_ab.jpg#2' -> ('123_ab.jpg', 2)``; None if it is not ``<image>#<n>``."""
    match = _QUERY_ID.match(query_id)
    if match is None:
        return None
    return match.group("image"), int(match.group("n"))


@dataclass(frozen=True)
class Caption:
    """A caption written for one photo: ``query_id`` is ``<image>#<n>``."""

    query_id: str
    text: str
    source: str  # file it came from (first seen)
    line: int

    @property
    def image(self) -> str:
        return self.query_id.rsplit("#", 1)[0]

    @property
    def number(self) -> int:
        return int(self.query_id.rsplit("#", 1)[1])


@dataclass(frozen=True)
class TrainPair:
    image: str
    query_id: str
    query_text: str
    line: int


@dataclass(frozen=True)
class ExpertJudgment:
    image: str
    query_id: str
    scores: tuple[int, int, int]
    line: int

    @property
    def mean(self) -> float:
        return sum(self.scores) / len(self.scores)

    @property
    def match(self) -> bool:
        return self.mean >= EXPERT_MATCH


@dataclass(frozen=True)
class CrowdJudgment:
    image: str
    query_id: str
    share_yes: float
    count_yes: int
    count_no: int
    line: int

    @property
    def match(self) -> bool:
        return self.share_yes >= CROWD_MATCH


@dataclass(frozen=True)
class Judgment:
    """One judged (photo, caption) pair, expert and crowd merged.

    ``label``: 1 if experts judge it a match (mean >= 3), else, where there is no expert score, if
    the crowd does (share >= 0.5). ``soft``: the expert mean mapped to 0..1 (``(mean - 1) / 3``),
    else the crowd share: the graded target of the customer's first approach and of RMSE.
    """

    image: str
    query_id: str
    text: str
    expert_mean: float | None
    crowd_share: float | None

    @property
    def label(self) -> int:
        if self.expert_mean is not None:
            return int(self.expert_mean >= EXPERT_MATCH)
        assert self.crowd_share is not None
        return int(self.crowd_share >= CROWD_MATCH)

    @property
    def soft(self) -> float:
        if self.expert_mean is not None:
            return (self.expert_mean - 1.0) / 3.0
        assert self.crowd_share is not None
        return self.crowd_share


@dataclass(frozen=True)
class TestQuery:
    query_id: str
    query_text: str
    image: str
    line: int


@dataclass
class Dataset:
    root: Path
    train_images: dict[str, Path] = field(default_factory=dict)
    pairs: list[TrainPair] = field(default_factory=list)
    experts: list[ExpertJudgment] = field(default_factory=list)
    crowd: list[CrowdJudgment] = field(default_factory=list)
    captions: dict[str, Caption] = field(default_factory=dict)
    test_queries: list[TestQuery] = field(default_factory=list)
    test_images: dict[str, Path] = field(default_factory=dict)

    @property
    def has_train(self) -> bool:
        return bool(self.train_images)

    @property
    def has_test(self) -> bool:
        return bool(self.test_queries)

    @cached_property
    def captions_by_image(self) -> dict[str, list[Caption]]:
        """Every known caption of each photo (any photo named by a query_id), by number."""
        grouped: dict[str, list[Caption]] = defaultdict(list)
        for caption in self.captions.values():
            grouped[caption.image].append(caption)
        return {image: sorted(caps, key=lambda c: c.number) for image, caps in grouped.items()}

    def positives(self) -> dict[str, list[Caption]]:
        """Photo of train_images/ -> its captions (the positives of training)."""
        return {image: caps for image, caps in self.captions_by_image.items()
                if image in self.train_images}

    def judgments(self) -> list[Judgment]:
        """Expert and crowd judgments merged by (image, query_id); pairs whose caption text is
        unknown (a query_id in neither train_dataset.csv nor extra/captions.txt) are left out."""
        merged: dict[tuple[str, str], list[float | None]] = {}
        for expert in self.experts:
            merged[(expert.image, expert.query_id)] = [expert.mean, None]
        for crowd in self.crowd:
            merged.setdefault((crowd.image, crowd.query_id), [None, None])[1] = crowd.share_yes
        out = []
        for (image, query_id), (expert_mean, share) in sorted(merged.items()):
            caption = self.captions.get(query_id)
            if caption is None:
                continue
            out.append(Judgment(image, query_id, caption.text, expert_mean, share))
        return out

    def file_hashes(self) -> dict[str, str]:
        """sha256 of every file of the data set, by path relative to the root."""
        hashes = {}
        for name in (TRAIN_CSV, EXPERT_TSV, CROWD_TSV, CAPTIONS_TXT, TEST_CSV):
            path = self.root / name
            if path.is_file():
                hashes[name] = file_sha256(path)
        for folder, images in ((TRAIN_IMAGES, self.train_images), (TEST_IMAGES, self.test_images)):
            for name, path in sorted(images.items()):
                hashes[f"{folder}/{name}"] = file_sha256(path)
        return hashes

    def data_hash(self) -> str:
        """One sha256 over all files (names and contents): what the model card records."""
        digest = hashlib.sha256()
        for name, value in sorted(self.file_hashes().items()):
            digest.update(f"{name}\t{value}\n".encode())
        return digest.hexdigest()

    def summary(self) -> dict[str, int]:
        return {
            "train_images": len(self.train_images), "train_pairs": len(self.pairs),
            "expert_judgments": len(self.experts), "crowd_judgments": len(self.crowd),
            "captions": len(self.captions),
            "photos_with_captions": len(self.positives()),
            "test_queries": len(self.test_queries), "test_images": len(self.test_images),
        }


_HASHES: dict[tuple[str, int, int], str] = {}


def file_sha256(path: Path) -> str:
    """sha256 of a file's bytes, remembered per (path, size, mtime) for this process."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if key not in _HASHES:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
        _HASHES[key] = digest.hexdigest()
    return _HASHES[key]


# --- reading ---------------------------------------------------------------------------------

def _read_lines(path: Path) -> list[str]:
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise DatasetError(path, None, f"cannot read: {exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DatasetError(path, line, f"not UTF-8 text ({exc.reason})") from exc
    return text.splitlines()


def _csv_records(path: Path, delimiter: str) -> Iterator[tuple[int, list[str]]]:
    """(first line number, fields) per CSV record; quoted fields may span lines."""
    lines = _read_lines(path)
    reader = csv.reader(lines, delimiter=delimiter)
    previous = 0
    try:
        for row in reader:
            start = previous + 1
            previous = reader.line_num
            if not row or all(not cell.strip() for cell in row):
                continue
            yield start, row
    except csv.Error as exc:
        raise DatasetError(path, reader.line_num, f"malformed CSV: {exc}") from exc


def _header_columns(path: Path, line: int, header: list[str], required: tuple[str, ...]) -> dict[str, int]:
    names = [cell.strip() for cell in header]
    missing = [name for name in required if name not in names]
    if missing:
        raise DatasetError(
            path, line,
            f"missing column(s) {', '.join(missing)}: the header is {'|'.join(names)!r} "
            f"but must name {', '.join(required)}",
        )
    return {name: names.index(name) for name in required}


def _tsv_records(path: Path, columns: tuple[str, ...]) -> Iterator[tuple[int, list[str]]]:
    """Tab-separated records without a header (a header naming the columns is skipped)."""
    for number, raw in enumerate(_read_lines(path), start=1):
        if not raw.strip():
            continue
        fields = [cell.strip() for cell in raw.split("\t")]
        if number == 1 and fields[: len(columns)] == list(columns):
            continue
        if len(fields) != len(columns):
            raise DatasetError(
                path, number,
                f"expected {len(columns)} tab-separated columns ({', '.join(columns)}), "
                f"found {len(fields)}",
            )
        for name, value in zip(columns, fields, strict=True):
            if not value:
                raise DatasetError(path, number, f"column {name} is empty")
        yield number, fields


def _check_query_id(path: Path, line: int, query_id: str) -> None:
    if parse_query_id(query_id) is None:
        raise DatasetError(path, line, f"query_id {query_id!r} is not '<image>#<n>'")


def _check_photo(path: Path, line: int, image: str, images: dict[str, Path], folder: str) -> None:
    if image not in images:
        raise DatasetError(path, line, f"unknown photo {image!r}: not in {folder}/")


def _int(path: Path, line: int, name: str, value: str) -> int:
    try:
        number = float(value)
    except ValueError:
        raise DatasetError(path, line, f"{name} is {value!r}, not a number") from None
    if not number.is_integer():
        raise DatasetError(path, line, f"{name} is {value!r}, not a whole number")
    return int(number)


def _list_photos(folder: Path, *, check: bool) -> dict[str, Path]:
    if not folder.is_dir():
        raise DatasetError(folder, None, "photo folder is missing")
    photos = {}
    for path in sorted(folder.iterdir()):
        if path.name.startswith(".") or not path.is_file():
            continue
        if check:
            _check_readable(path)
        photos[path.name] = path
    if not photos:
        raise DatasetError(folder, None, "photo folder is empty")
    return photos


def _check_readable(path: Path) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as image:
            image.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise DatasetError(path, None, f"unreadable photo: {exc}") from exc


def _add_caption(
    captions: dict[str, Caption], path: Path, line: int, query_id: str, text: str,
) -> None:
    known = captions.get(query_id)
    if known is None:
        captions[query_id] = Caption(query_id, text, path.name, line)
    elif " ".join(known.text.split()) != " ".join(text.split()):
        raise DatasetError(
            path, line,
            f"query_id {query_id!r} has text {text!r} here but {known.text!r} in "
            f"{known.source} line {known.line}",
        )


def _read_train_csv(path: Path, dataset: Dataset) -> None:
    records = _csv_records(path, ",")
    first = next(records, None)
    if first is None:
        raise DatasetError(path, 1, f"empty file: expected a header {','.join(TRAIN_COLUMNS)}")
    index = _header_columns(path, first[0], first[1], TRAIN_COLUMNS)
    width = len(first[1])
    seen: dict[tuple[str, str], int] = {}
    for line, row in records:
        if len(row) != width:
            raise DatasetError(path, line, f"expected {width} columns, found {len(row)}")
        image, query_id, text = (row[index[name]].strip() for name in TRAIN_COLUMNS)
        for name, value in (("image", image), ("query_id", query_id), ("query_text", text)):
            if not value:
                raise DatasetError(path, line, f"column {name} is empty")
        _check_query_id(path, line, query_id)
        _check_photo(path, line, image, dataset.train_images, TRAIN_IMAGES)
        key = (image, query_id)
        if key in seen:
            raise DatasetError(
                path, line, f"duplicate pair ({image}, {query_id}): first on line {seen[key]}"
            )
        seen[key] = line
        _add_caption(dataset.captions, path, line, query_id, text)
        dataset.pairs.append(TrainPair(image, query_id, text, line))


def _read_expert_tsv(path: Path, dataset: Dataset) -> None:
    seen: dict[tuple[str, str], int] = {}
    for line, (image, query_id, *raw_scores) in _tsv_records(path, EXPERT_COLUMNS):
        _check_query_id(path, line, query_id)
        _check_photo(path, line, image, dataset.train_images, TRAIN_IMAGES)
        scores = []
        for name, value in zip(EXPERT_COLUMNS[2:], raw_scores, strict=True):
            score = _int(path, line, name, value)
            if not 1 <= score <= 4:
                raise DatasetError(path, line, f"{name} is {value}, outside the scale 1..4")
            scores.append(score)
        key = (image, query_id)
        if key in seen:
            raise DatasetError(
                path, line, f"duplicate pair ({image}, {query_id}): first on line {seen[key]}"
            )
        seen[key] = line
        dataset.experts.append(ExpertJudgment(image, query_id, (scores[0], scores[1], scores[2]), line))


def _read_crowd_tsv(path: Path, dataset: Dataset) -> None:
    seen: dict[tuple[str, str], int] = {}
    for line, (image, query_id, share_text, yes_text, no_text) in _tsv_records(path, CROWD_COLUMNS):
        _check_query_id(path, line, query_id)
        _check_photo(path, line, image, dataset.train_images, TRAIN_IMAGES)
        try:
            share = float(share_text)
        except ValueError:
            raise DatasetError(path, line, f"share_yes is {share_text!r}, not a number") from None
        if not 0.0 <= share <= 1.0:
            raise DatasetError(path, line, f"share_yes is {share_text}, outside 0..1")
        count_yes = _int(path, line, "count_yes", yes_text)
        count_no = _int(path, line, "count_no", no_text)
        for name, count in (("count_yes", count_yes), ("count_no", count_no)):
            if count < 0:
                raise DatasetError(path, line, f"{name} is {count}, must be >= 0")
        total = count_yes + count_no
        if total == 0:
            raise DatasetError(path, line, "count_yes + count_no is 0: no crowd votes")
        if abs(share - count_yes / total) > 0.01:
            raise DatasetError(
                path, line,
                f"share_yes {share_text} does not match count_yes / (count_yes + count_no) "
                f"= {count_yes}/{total}",
            )
        key = (image, query_id)
        if key in seen:
            raise DatasetError(
                path, line, f"duplicate pair ({image}, {query_id}): first on line {seen[key]}"
            )
        seen[key] = line
        dataset.crowd.append(CrowdJudgment(image, query_id, share, count_yes, count_no, line))


def _read_captions(path: Path, dataset: Dataset) -> None:
    seen: dict[str, int] = {}
    for line, raw in enumerate(_read_lines(path), start=1):
        if not raw.strip():
            continue
        if "\t" not in raw:
            raise DatasetError(path, line, "expected '<image>#<n><TAB><caption>', found no tab")
        query_id, text = (part.strip() for part in raw.split("\t", 1))
        _check_query_id(path, line, query_id)
        if not text:
            raise DatasetError(path, line, f"caption of {query_id} is empty")
        if query_id in seen:
            raise DatasetError(path, line, f"duplicate caption {query_id}: first on line {seen[query_id]}")
        seen[query_id] = line
        _add_caption(dataset.captions, path, line, query_id, text)


def _read_test_csv(path: Path, dataset: Dataset) -> None:
    records = _csv_records(path, "|")
    first = next(records, None)
    if first is None:
        raise DatasetError(path, 1, f"empty file: expected a header {'|'.join(TEST_COLUMNS)}")
    index = _header_columns(path, first[0], first[1], TEST_COLUMNS)
    width = len(first[1])
    seen: dict[str, int] = {}
    for line, row in records:
        if len(row) != width:
            raise DatasetError(
                path, line, f"expected {width} '|'-separated columns, found {len(row)}"
            )
        query_id, text, image = (row[index[name]].strip() for name in TEST_COLUMNS)
        for name, value in (("query_id", query_id), ("query_text", text), ("image", image)):
            if not value:
                raise DatasetError(path, line, f"column {name} is empty")
        _check_query_id(path, line, query_id)
        _check_photo(path, line, image, dataset.test_images, TEST_IMAGES)
        if query_id in seen:
            raise DatasetError(path, line, f"duplicate query {query_id}: first on line {seen[query_id]}")
        seen[query_id] = line
        dataset.test_queries.append(TestQuery(query_id, text, image, line))


def load_dataset(
    root: Path | str, *, check_photos: bool = True, require_train: bool = True,
) -> Dataset:
    """Reads and validates a data set folder; raises DatasetError (file, line, problem).

    ``check_photos`` opens every photo (PIL verify) so that an unreadable one fails here, not
    half way through feature extraction. ``require_train=False`` accepts a folder with only
    the test half (``test_queries.csv`` and ``test_images/``).
    """
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(root, None, "data set folder does not exist")
    dataset = Dataset(root=root)
    has_train = (root / TRAIN_CSV).exists()
    if has_train or require_train:
        for name in (TRAIN_CSV, EXPERT_TSV, CROWD_TSV):
            if not (root / name).is_file():
                raise DatasetError(root / name, None, "required file is missing")
        dataset.train_images = _list_photos(root / TRAIN_IMAGES, check=check_photos)
        _read_train_csv(root / TRAIN_CSV, dataset)
        _read_expert_tsv(root / EXPERT_TSV, dataset)
        _read_crowd_tsv(root / CROWD_TSV, dataset)
        if (root / CAPTIONS_TXT).is_file():
            _read_captions(root / CAPTIONS_TXT, dataset)
    if (root / TEST_CSV).is_file():
        dataset.test_images = _list_photos(root / TEST_IMAGES, check=check_photos)
        _read_test_csv(root / TEST_CSV, dataset)
    elif not has_train:
        raise DatasetError(root, None, f"neither {TRAIN_CSV} nor {TEST_CSV} is here")
    return dataset


def main(argv: list[str] | None = None) -> int:
    """``python -m withsense_train.data DIR``: validate a data set and print its summary."""
    import argparse
    import json
    import sys

    parser = argparse.ArgumentParser(prog="python -m withsense_train.data", description=main.__doc__)
    parser.add_argument("data", type=Path)
    parser.add_argument("--no-photo-check", action="store_true", help="do not open every photo")
    args = parser.parse_args(argv)
    try:
        dataset = load_dataset(args.data, check_photos=not args.no_photo_check, require_train=False)
    except DatasetError as exc:
        print(f"invalid data set: {exc}", file=sys.stderr)
        return 2
    print(json.dumps(dataset.summary(), indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
