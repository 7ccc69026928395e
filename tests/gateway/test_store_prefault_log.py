"""A gateway on the embedded store faults in the store's pages at start-up and says so."""

from __future__ import annotations

import logging
import re

import pytest


@pytest.mark.parametrize("budget_mb", ["512", "0"])
def test_the_gateway_logs_its_store_prefault(start_gateway, caplog, monkeypatch, budget_mb) -> None:
    monkeypatch.setenv("WITHSENSE_STORE_PREFAULT_MB", budget_mb)
    with caplog.at_level(logging.INFO, logger="withsense"):
        start_gateway()
    lines = [r.getMessage() for r in caplog.records if "store pages" in r.getMessage()]
    assert len(lines) == 1, caplog.text
    if budget_mb == "0":
        assert "not faulted in: off" in lines[0]
    else:
        assert re.search(r"store pages faulted in: \d+ of \d+ MB mapped", lines[0]), lines[0]
