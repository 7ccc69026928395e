"""The compliance audit log: one JSON line per decision on the ``withsense.audit`` logger.

Raw query text is never logged. Queries may describe children or be personal data (names,
places), and an audit log is kept long and read widely; what an audit needs is which rule
decided and whether the same query recurs, so a query is logged as ``query_sha256`` (the first
16 hex digits of the SHA-256 of its UTF-8 text, enough to correlate repeats and to check a
complaint about a given query) plus ``query_len`` (characters). An unsalted hash of a short
query can be confirmed by guessing, so the hash is a pseudonym, not anonymity: set a salt
(``set_query_salt``, e.g. from a secret) where that matters.
"""

from __future__ import annotations

import hashlib
import json
import logging
from datetime import UTC, datetime
from typing import Any

AUDIT_LOGGER = "withsense.audit"
logger = logging.getLogger(AUDIT_LOGGER)

# Field names whose values are raw user text: replaced by their hash and length.
_TEXT_FIELDS = ("query", "description", "text")
_salt = b""


def set_query_salt(salt: str | bytes) -> None:
    """A secret mixed into query hashes (the same salt gives the same hashes)."""
    global _salt
    _salt = salt.encode("utf-8") if isinstance(salt, str) else bytes(salt)


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


def audit_log(event: str, **fields: Any) -> dict[str, Any]:
    """Write one JSON line for a compliance event to the ``withsense.audit`` logger (INFO) and
    return the record. Typical fields: decision, rule, region, query, image_id, withheld."""
    record = audit_record(event, **fields)
    line = json.dumps(record, ensure_ascii=False, default=_jsonable, separators=(",", ":"))
    logger.info(line)
    return record
