"""A photo's ``minor`` flag from both signals, descriptions and pixels, and why it never drops.

Stored with each photo (payload fields, owned by the service):

- ``minor_text``: a description names a child (``flag_image``). Sticky forever: once any upload
  of these bytes (or of a file at the same uri) carried such a description, later uploads
  without it keep the flag and its reasons.
- ``minor_visual``: the visual detector's probability ``minor_p`` reached the threshold in force
  (``minor_threshold``) for detector ``minor_model``. Recomputed only when the detector or the
  threshold changes (re-indexing after a new model artifact); a later upload with the same
  detector keeps it (OR).
- ``minor``: ``minor_text or minor_visual``; what search obeys. When the detector is missing or
  gave no output, ``minor_visual`` is True ("unavailable"): withheld, never served, until a
  detector has looked at the photo.
- ``flag_reasons``: one line per finding, the audit log's ``rule``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from withsense.compliance.flags import flag_image

UNAVAILABLE = "minor detector unavailable: withheld until a detector has seen the photo"
FLAG_FIELDS = ("minor", "minor_text", "minor_visual", "minor_p", "minor_model",
               "minor_threshold", "flag_reasons")


@dataclass(frozen=True)
class VisualCheck:
    """The detector in force: its version ("" when the worker has none) and the threshold the
    gateway applies (the artifact's operating point or the deployment's choice)."""

    version: str
    threshold: float | None

    @property
    def available(self) -> bool:
        return bool(self.version) and self.threshold is not None

    def current(self, stored: Mapping[str, Any]) -> bool:
        """Was the stored visual flag computed by this detector at this threshold?"""
        return (self.available and stored.get("minor_model") == self.version
                and stored.get("minor_threshold") == self.threshold)


def operating_threshold(default: float | None, curve: list[dict[str, float]], *,
                        recall_target: float | None = None,
                        threshold: float | None = None) -> float | None:
    """The threshold in force: an explicit one, else the highest threshold of the curve whose
    measured recall reaches ``recall_target``, else the artifact's ``default``. ValueError when
    no point of the curve reaches the target (say which is the best)."""
    if threshold is not None:
        return float(threshold)
    if recall_target is None:
        return default
    reaching = [point for point in curve if point["recall"] >= recall_target]
    if not reaching:
        best = max((point["recall"] for point in curve), default=0.0)
        raise ValueError(f"minor recall target {recall_target}: no point of the detector's "
                         f"curve reaches it (best {best:.3f}); set WITHSENSE_MINOR_THRESHOLD")
    return float(max(point["threshold"] for point in reaching))


def _stored_text_reasons(stored: Mapping[str, Any] | None) -> list[str]:
    if not stored or not stored.get("minor_text"):
        return []
    reasons = [r for r in stored.get("flag_reasons", []) if r.startswith("description")]
    return reasons or ["an earlier upload's description named a child"]


def photo_flags(descriptions: Iterable[str], p: float | None, check: VisualCheck,
                stored: Iterable[Mapping[str, Any] | None] = (),
                content_hash: str | None = None) -> dict[str, Any]:
    """The flag fields of a photo being (re-)indexed.

    descriptions: this upload's; p: the detector's probability (None: no output);
    stored: the payloads this photo had before (same bytes, or an earlier file at its uri):
    their description flags carry over; a visual flag carries over only for the same bytes
    (``content_hash``) judged by the same detector at the same threshold.
    """
    previous = [s for s in stored if s]
    text = flag_image(descriptions)
    text_reasons = list(text.reasons)
    for old in previous:
        for reason in _stored_text_reasons(old):
            if reason not in text_reasons:
                text_reasons.append(reason if "earlier upload" in reason
                                    else f"{reason} (earlier upload)")
    minor_text = bool(text_reasons)
    if p is None or not check.available:
        minor_visual, visual_reason = True, UNAVAILABLE
    else:
        assert check.threshold is not None
        minor_visual = p >= check.threshold
        visual_reason = (f"pixels: p(child) {p:.3f} >= {check.threshold:.3f} ({check.version})"
                         if minor_visual else "")
    # A visual flag by the same detector and threshold is never lowered by a re-upload.
    for old in previous:
        same_bytes = content_hash is not None and old.get("content_hash") == content_hash
        if same_bytes and check.current(old) and old.get("minor_visual") and not minor_visual:
            minor_visual = True
            visual_reason = (f"pixels: p(child) {old.get('minor_p', 0):.3f} >= "
                             f"{check.threshold:.3f} ({check.version}, earlier upload)")
    reasons = text_reasons + ([visual_reason] if visual_reason else [])
    return {
        "minor": minor_text or minor_visual,
        "minor_text": minor_text,
        "minor_visual": minor_visual,
        "minor_p": None if p is None else round(float(p), 6),
        "minor_model": check.version if p is not None else "",
        "minor_threshold": check.threshold if p is not None else None,
        "flag_reasons": reasons,
    }


def withheld_reason(payload: Mapping[str, Any]) -> str:
    """Which signal withholds a photo, for a hit's reason: 'description', 'pixels' or both."""
    signals = [name for name, key in (("description", "minor_text"), ("pixels", "minor_visual"))
               if payload.get(key)]
    if not signals:
        return "flagged minor"  # an older payload without the signal fields
    return "flagged minor by " + " and ".join(signals)
