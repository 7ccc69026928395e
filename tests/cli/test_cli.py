"""The `withsense` command as a user runs it: a real process against real services."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from withsense.config.gateway import DISCLAIMER
from withsense.gallery import GALLERY

pytestmark = pytest.mark.slow
ENV = {**os.environ, "COLUMNS": "120"}


def withsense(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "withsense.cli.main", *args], capture_output=True,
                          text=True, timeout=timeout, env=ENV, check=False)


def test_every_subcommand_has_help():
    for command in ["demo", "serve", "index", "search", "stats", "train", "evaluate", "loadtest"]:
        result = withsense(command, "--help")
        assert result.returncode == 0, result.stderr
        assert "usage: withsense" in result.stdout


def test_index_and_search_json(start_gateway, gallery_photos, tmp_path):
    gateway = start_gateway(restricted_regions=["DE"])
    folder = tmp_path / "photos"
    folder.mkdir()
    for name in ["coffee", "rocket", "chelsea"]:
        (folder / f"{name}.jpg").write_bytes(gallery_photos[name])
    (folder / "broken.jpg").write_bytes(b"\xff\xd8\xff not really a jpeg")
    descriptions = tmp_path / "descriptions.csv"
    descriptions.write_text("image,description\nchelsea.jpg,My son's cat\ncoffee.jpg,Coffee\n")

    result = withsense("index", str(folder), "--descriptions", str(descriptions),
                       "--target", gateway.address, "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert (report["indexed"], report["failed"], report["flagged"]) == (3, 1, 1)
    assert report["failures"][0]["uri"] == "broken.jpg" and report["failures"][0]["reason"]

    again = json.loads(withsense("index", str(folder), "--target", gateway.address, "--json",
                                 "--descriptions", str(descriptions)).stdout)
    assert (again["indexed"], again["unchanged"]) == (0, 3)

    result = withsense("search", "a cup of coffee", "--target", gateway.address, "--region", "US",
                       "--top-k", "2", "--json")
    assert result.returncode == 0, result.stderr
    found = json.loads(result.stdout)
    assert found["hits"][0]["uri"] == "coffee.jpg" and len(found["hits"]) == 2

    result = withsense("search", "a cat", "--target", gateway.address, "--region", "DE", "--json")
    hits = json.loads(result.stdout)["hits"]
    assert hits[0]["withheld"] and hits[0]["disclaimer"] == DISCLAIMER and not hits[0]["uri"]

    table = withsense("search", "a cup of coffee", "--target", gateway.address, "--region", "US")
    assert "coffee.jpg" in table.stdout


def test_client_errors_are_clear(start_gateway, tmp_path):
    gateway = start_gateway()
    result = withsense("search", "a cat", "--target", gateway.address, "--region", "USA")
    assert result.returncode == 2
    assert "INVALID_ARGUMENT" in result.stderr and "region" in result.stderr

    bad = tmp_path / "bad.csv"
    bad.write_bytes(b"image,description\nx.jpg,caf\xe9\n")
    (tmp_path / "photos").mkdir()
    result = withsense("index", str(tmp_path / "photos"), "--descriptions", str(bad),
                       "--target", gateway.address)
    assert result.returncode == 2
    assert "bad.csv, line 2: not valid UTF-8" in result.stderr


def test_demo_prints_hits_and_the_disclaimer():
    result = withsense("demo", "--json", "--query", "a cup of coffee on a table",
                       "--query", "A man is crossing a mountain pass on a metal bridge",
                       "--query", "маленькая девочка с мамой", timeout=600)
    assert result.returncode == 0, result.stderr
    demo = json.loads(result.stdout)
    assert demo["index"]["indexed"] == len(GALLERY)
    coffee, bridge, child = demo["searches"]
    assert coffee["hits"][0]["uri"] == "coffee.jpg"
    assert len(bridge["hits"]) == 3 and not bridge["blocked"]
    assert child["blocked"] and child["disclaimer"] == DISCLAIMER and not child["hits"]


def test_loadtest_prints_percentiles(gateway_target):
    result = withsense("loadtest", "--target", gateway_target, "--qps", "4", "--duration", "2",
                       "--region", "US", "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["requests"] == 8 and report["ok"] == 8
    table = withsense("loadtest", "--target", gateway_target, "--concurrency", "2", "--duration", "1")
    assert "p99" in table.stdout


def test_api_key_from_a_file(start_gateway, tmp_path):
    gateway = start_gateway(api_keys=["sesame"])
    key_file = tmp_path / "key"
    key_file.write_text("sesame\n")
    result = withsense("stats", "--target", gateway.address, "--api-key-file", str(key_file), "--json")
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["store_backend"] == "qdrant-edge"
    result = withsense("stats", "--target", gateway.address)
    assert result.returncode == 1 and "UNAUTHENTICATED" in result.stderr
