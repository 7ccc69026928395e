"""Descriptions files for the indexer: CSV and Flickr captions, with clear errors."""

from __future__ import annotations

import pytest
from withsense.descriptions import DescriptionsError, read_descriptions


def test_csv_with_several_rows_per_photo(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text('image,description\na.jpg,"A man, on a bridge"\na.jpg,Mountains\nb.jpg,\n')
    assert read_descriptions(path) == {"a.jpg": ["A man, on a bridge", "Mountains"]}


def test_flickr_captions_format(tmp_path):
    path = tmp_path / "captions.txt"
    path.write_text("x.jpg#0\tA dog runs .\nx.jpg#1\tA brown dog .\ny.jpg#0\tA bridge .\n")
    assert read_descriptions(path) == {"x.jpg": ["A dog runs .", "A brown dog ."], "y.jpg": ["A bridge ."]}


def test_invalid_utf8_names_file_and_line(tmp_path):
    path = tmp_path / "bad.csv"
    path.write_bytes(b"image,description\na.jpg,fine\nb.jpg,caf\xe9 au lait\n")
    with pytest.raises(DescriptionsError, match=r"bad\.csv, line 3: not valid UTF-8"):
        read_descriptions(path)


def test_missing_column_is_named(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text("photo,text\na.jpg,x\n")
    with pytest.raises(DescriptionsError, match=r"line 1: missing column\(s\) \['description', 'image'\]"):
        read_descriptions(path)
