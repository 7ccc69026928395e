"""The compliance audit log: one JSON line per decision on the ``withsense.audit`` logger.

The audit trail is evidence that the law was applied, so it must reach the operator whatever the
process's log level is. It therefore does not ride on the ordinary logging set-up:

- it has its own handler (``AUDIT_HANDLER``, stderr by default, bare JSON lines without the
  "time level name:" prefix, so a log shipper can parse every line as it is);
- ``propagate`` is off, so the root handlers neither drop nor duplicate it;
- ``audit_log`` hands each record to the audit logger's handlers itself, so neither the logger's
  level (``--log-level WARNING``, ``setLevel``), nor ``logging.disable``, nor
  ``logging.config.dictConfig``'s ``disable_existing_loggers`` silences it, and a removed
  ``AUDIT_HANDLER`` is attached again. Extra handlers an operator adds to ``withsense.audit``
  (a file, syslog) receive every line too.

Raw query text is never logged. Queries may describe children or be personal data (names,
places), and an audit log is kept long and read widely; what an audit needs is which rule
decided and whether the same query recurs, so a query is logged as ``query_sha256`` (the first
16 hex digits of the SHA-256 of the salt and its UTF-8 text, enough to correlate repeats and to
check a complaint about a given query) plus ``query_len`` (characters). An unsalted hash of a
short query can be confirmed by guessing, so deployments set a secret salt
(``WITHSENSE_AUDIT_SALT_FILE``, see ``withsense.config.audit``).
"""

from __future__ import annotations

import hashlib
import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from withsense.config.audit import AuditSettings

AUDIT_LOGGER = "withsense.audit"
logger = logging.getLogger(AUDIT_LOGGER)
logger.setLevel(logging.INFO)
logger.propagate = False

AUDIT_HANDLER = logging.StreamHandler(sys.stderr)
AUDIT_HANDLER.setFormatter(logging.Formatter("%(message)s"))
logger.addHandler(AUDIT_HANDLER)

# Field names whose values are raw user text: replaced by their hash and length.
_TEXT_FIELDS = ("query", "description", "text")
_salt = b""


def set_query_salt(salt: str | bytes) -> None:
    """A secret mixed into query hashes (the same salt gives the same hashes)."""
    global _salt
    _salt = salt.encode("utf-8") if isinstance(salt, str) else bytes(salt)


def configure_query_salt(settings: AuditSettings | None = None) -> bool:
    """Sets the salt from ``WITHSENSE_AUDIT_SALT_FILE`` / ``WITHSENSE_AUDIT_SALT`` (a clear
    ValueError if the file is unusable); warns when there is none. Returns whether it is salted."""
    salt = (settings or AuditSettings()).load_salt()
    set_query_salt(salt)
    if not salt:
        logging.getLogger(__name__).warning(
            "audit query hashes are unsalted: set WITHSENSE_AUDIT_SALT_FILE to a secret"
        )
    return bool(salt)


def set_audit_stream(stream: IO[str]) -> IO[str]:
    """Where ``AUDIT_HANDLER`` writes (stderr by default); returns the previous stream."""
    return AUDIT_HANDLER.setStream(stream) or stream


def query_hash(text: str) -> str:
    """The first 16 hex digits of SHA-256(salt + UTF-8 text)."""
    return hashlib.sha256(_salt + text.encode("utf-8")).hexdigest()[:16]


def _jsonable(value: Any) -> Any:
    if hasattr(value, "item") and callable(value.item):  # numpy scalars
        return value.item()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    return str(value)


def audit_record(event: str, **fields: Any) -> dict[str, Any]:
    """The record ``audit_log`` writes: ``ts``, ``event``, then the fields, with raw text
    fields (``query``, ``description``, ``text``) replaced by ``<name>_sha256`` and
    ``<name>_len``, and a ``decision`` given as a ``PolicyDecision`` unpacked into
    ``decision`` ("blocked"/"allowed"), ``rule`` and ``matched``."""
    record: dict[str, Any] = {
        "ts": datetime.now(UTC).isoformat(timespec="milliseconds"),
        "event": event,
    }
    for name, value in fields.items():
        if name in _TEXT_FIELDS and isinstance(value, str):
            record[f"{name}_sha256"] = query_hash(value)
            record[f"{name}_len"] = len(value)
        elif name == "decision" and hasattr(value, "blocked") and hasattr(value, "rule"):
            record["decision"] = "blocked" if value.blocked else "allowed"
            record["rule"] = value.rule
            if getattr(value, "matched", None) is not None:
                record["matched"] = value.matched
        else:
            record[name] = value
    return record


def _emit(line: str) -> None:
    """Every audit handler gets the line, whatever the logger's level or disabled state."""
    if AUDIT_HANDLER not in logger.handlers:
        logger.addHandler(AUDIT_HANDLER)
    logger.propagate = False
    record = logger.makeRecord(AUDIT_LOGGER, logging.INFO, __file__, 0, line, None, None)
    for handler in list(logger.handlers):
        handler.handle(record)


def audit_log(event: str, **fields: Any) -> dict[str, Any]:
    """Write one JSON line for a compliance event to the audit handlers and return the record.
    Typical fields: decision, rule, region, query, image_id, withheld."""
    record = audit_record(event, **fields)
    _emit(json.dumps(record, ensure_ascii=False, default=_jsonable, separators=(",", ":")))
    return record
