"""Photo descriptions files: CSV `image,description` (several rows per photo allowed), or the
Flickr8k captions format `<image>#<n>\t<caption>` that the customer's extra/captions.txt uses."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from pathlib import Path


class DescriptionsError(ValueError):
    """The file cannot be read; the message names the file and line."""


def _decode(path: Path) -> str:
    data = path.read_bytes()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise DescriptionsError(
            f"{path}, line {line}: not valid UTF-8 (byte 0x{data[exc.start]:02x} at offset "
            f"{exc.start}); save the file as UTF-8"
        ) from None


def read_descriptions(path: Path) -> dict[str, list[str]]:
    """Photo name -> its descriptions, in file order."""
    path = Path(path)
    try:
        text = _decode(path)
    except OSError as exc:
        raise DescriptionsError(f"{path}: cannot read ({exc.strerror})") from None
    first = text.split("\n", 1)[0]
    if "\t" in first and "#" in first.split("\t", 1)[0]:
        return _read_flickr(path, text)
    return _read_csv(path, text)


def _read_flickr(path: Path, text: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = defaultdict(list)
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        key, sep, caption = line.partition("\t")
        if not sep or "#" not in key:
            raise DescriptionsError(f"{path}, line {number}: expected '<image>#<n><TAB><caption>'")
        out[key.rsplit("#", 1)[0]].append(caption.strip())
    return dict(out)


def _read_csv(path: Path, text: str) -> dict[str, list[str]]:
    reader = csv.DictReader(io.StringIO(text))
    missing = {"image", "description"} - set(reader.fieldnames or [])
    if missing:
        raise DescriptionsError(
            f"{path}, line 1: missing column(s) {sorted(missing)}; the header must be 'image,description'"
        )
    out: dict[str, list[str]] = defaultdict(list)
    for row in reader:
        image, description = (row.get("image") or "").strip(), (row.get("description") or "").strip()
        if not image:
            raise DescriptionsError(f"{path}, line {reader.line_num}: empty 'image'")
        if description:
            out[image].append(description)
    return dict(out)
