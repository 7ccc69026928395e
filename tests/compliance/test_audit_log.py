"""The audit log: JSON lines without raw text, a salted hash, and no accidental silencing."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import logging.config
from collections.abc import Iterator
from pathlib import Path

import pytest
from withsense.cli.main import build_parser, log_level
from withsense.compliance import AUDIT_LOGGER, PolicyDecision, audit_log, query_hash
from withsense.compliance.audit import (
    AUDIT_HANDLER,
    configure_query_salt,
    set_audit_stream,
    set_query_salt,
)
from withsense.config import AuditSettings, LoggingSettings


@pytest.fixture
def audit_stream() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    previous = set_audit_stream(stream)
    yield stream
    set_audit_stream(previous)


def _records(stream: io.StringIO) -> list[dict]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_audit_line_is_json_without_the_raw_query(audit_stream: io.StringIO) -> None:
    query = "a boy at the beach"
    decision = PolicyDecision(blocked=True, rule="lexicon:child", matched="boy")
    audit_log("query", decision=decision, region="DE", query=query, image_id=None)
    assert query not in audit_stream.getvalue()
    [record] = _records(audit_stream)
    assert record["event"] == "query"
    assert record["decision"] == "blocked"
    assert record["rule"] == "lexicon:child"
    assert record["matched"] == "boy"
    assert record["region"] == "DE"
    assert record["query_sha256"] == query_hash(query) and len(query_hash(query)) == 16
    assert record["query_len"] == len(query)
    assert record["image_id"] is None and "ts" in record


def test_audit_handles_unicode_and_odd_values(audit_stream: io.StringIO) -> None:
    audit_log("withheld", image_id="img\n1", reasons=("description 0 mentions 'сын'",))
    [record] = _records(audit_stream)
    assert record["reasons"] == ["description 0 mentions 'сын'"]
    assert record["image_id"] == "img\n1"


def test_audit_survives_every_usual_way_of_silencing_logs(audit_stream: io.StringIO) -> None:
    audit = logging.getLogger(AUDIT_LOGGER)
    root_stream = io.StringIO()
    root_handler = logging.StreamHandler(root_stream)
    logging.getLogger().addHandler(root_handler)
    # dictConfig disables every logger that exists: note which were on, to turn them back on.
    loggers = [lg for lg in logging.root.manager.loggerDict.values()
               if isinstance(lg, logging.Logger) and not lg.disabled]
    try:
        logging.config.dictConfig({"version": 1, "disable_existing_loggers": True})
        logging.disable(logging.CRITICAL)
        audit.setLevel(logging.CRITICAL)
        audit.removeHandler(AUDIT_HANDLER)
        audit_log("search", decision="blocked", rule="lexicon:child")
    finally:
        logging.disable(logging.NOTSET)
        for logger in loggers:
            logger.disabled = False
        audit.disabled = False
        audit.setLevel(logging.INFO)
        logging.getLogger().removeHandler(root_handler)
    assert [r["rule"] for r in _records(audit_stream)] == ["lexicon:child"]
    assert root_stream.getvalue() == ""  # not duplicated into the process log


def test_query_hash_uses_the_secret_salt(tmp_path: Path) -> None:
    secret = tmp_path / "salt"
    secret.write_text("s3cret\n")
    try:
        assert configure_query_salt(AuditSettings(salt_file=secret))
        assert query_hash("a dog") == hashlib.sha256(b"s3creta dog").hexdigest()[:16]
        assert configure_query_salt(AuditSettings(salt="other"))
        assert query_hash("a dog") == hashlib.sha256(b"othera dog").hexdigest()[:16]
    finally:
        set_query_salt("")


def test_salt_from_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("WITHSENSE_AUDIT_SALT", "from-env")
    assert AuditSettings().load_salt() == "from-env"
    (tmp_path / "salt").write_text("from-file")
    monkeypatch.setenv("WITHSENSE_AUDIT_SALT_FILE", str(tmp_path / "salt"))
    assert AuditSettings().load_salt() == "from-file"
    assert "from-env" not in repr(AuditSettings())  # a SecretStr: never printed


def test_unusable_salt_file_is_named(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="WITHSENSE_AUDIT_SALT_FILE .*missing"):
        configure_query_salt(AuditSettings(salt_file=tmp_path / "missing"))
    (tmp_path / "latin1").write_bytes(b"caf\xe9")
    with pytest.raises(ValueError, match="WITHSENSE_AUDIT_SALT_FILE .*latin1"):
        configure_query_salt(AuditSettings(salt_file=tmp_path / "latin1"))


def test_comment_lines_of_the_secret_file_are_not_salt(tmp_path: Path) -> None:
    (tmp_path / "salt").write_text("# PLACEHOLDER: replace\n  abc \n")
    assert AuditSettings(salt_file=tmp_path / "salt").load_salt() == "abc"


@pytest.mark.parametrize("content", ["", "# only a comment\n"])
def test_unsalted_hashes_are_warned_about(caplog: pytest.LogCaptureFixture, tmp_path: Path,
                                          content: str) -> None:
    (tmp_path / "salt").write_text(content)
    with caplog.at_level(logging.WARNING):
        assert not configure_query_salt(AuditSettings())
        assert not configure_query_salt(AuditSettings(salt_file=tmp_path / "salt"))
    assert "unsalted" in caplog.text


@pytest.mark.parametrize(
    ("argv", "env", "expected"),
    [
        (["serve", "gateway"], None, "INFO"),
        (["serve", "all"], None, "INFO"),
        (["stats"], None, "WARNING"),
        (["serve", "gateway"], "debug", "DEBUG"),
        (["--log-level", "error", "serve", "gateway"], "debug", "ERROR"),
    ],
)
def test_log_level(monkeypatch: pytest.MonkeyPatch, argv: list[str], env: str | None,
                   expected: str) -> None:
    monkeypatch.delenv("WITHSENSE_LOG_LEVEL", raising=False)
    if env is not None:
        monkeypatch.setenv("WITHSENSE_LOG_LEVEL", env)
    assert log_level(build_parser().parse_args(argv)) == expected


def test_bad_log_level_is_rejected(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WITHSENSE_LOG_LEVEL", "LOUD")
    with pytest.raises(ValueError, match="log_level"):
        LoggingSettings()
