"""A photo's minor flag from descriptions and pixels: sticky, recomputed only for a new detector."""

from __future__ import annotations

import pytest
from withsense.compliance.photo_flags import (
    UNAVAILABLE,
    VisualCheck,
    operating_threshold,
    photo_flags,
    withheld_reason,
)

CHECK = VisualCheck(version="minor-aaaa", threshold=0.5)
NEW_CHECK = VisualCheck(version="minor-bbbb", threshold=0.5)


def test_either_signal_flags():
    by_text = photo_flags(["a girl on a swing"], 0.1, CHECK)
    by_sight = photo_flags(["a swing in a park"], 0.9, CHECK)
    neither = photo_flags(["a swing in a park"], 0.1, CHECK)
    assert (by_text["minor"], by_text["minor_text"], by_text["minor_visual"]) == (True, True, False)
    assert (by_sight["minor"], by_sight["minor_text"], by_sight["minor_visual"]) == (True, False, True)
    assert neither["minor"] is False and neither["flag_reasons"] == []
    assert by_sight["minor_p"] == pytest.approx(0.9) and by_sight["minor_model"] == "minor-aaaa"
    assert any("pixels" in r for r in by_sight["flag_reasons"])
    assert withheld_reason(by_text) == "flagged minor by description"
    assert withheld_reason(by_sight) == "flagged minor by pixels"


def test_no_detector_output_fails_closed():
    for p, check in ((None, CHECK), (0.0, VisualCheck(version="", threshold=None))):
        flags = photo_flags([], p, check)
        assert flags["minor"] and flags["minor_visual"] and UNAVAILABLE in flags["flag_reasons"]
        assert not CHECK.current(flags)  # recomputed once a detector has seen it


def test_description_flag_survives_a_reupload_without_descriptions():
    first = {**photo_flags(["my daughter at the beach"], 0.1, CHECK), "content_hash": "h"}
    again = photo_flags([], 0.1, CHECK, stored=[first], content_hash="h")
    assert again["minor"] and again["minor_text"]
    assert any("daughter" in r and "earlier upload" in r for r in again["flag_reasons"])
    # ... and under a new detector, too: a description flag is sticky forever.
    later = photo_flags([], 0.1, NEW_CHECK, stored=[again], content_hash="h")
    assert later["minor"] and later["minor_text"]


def test_visual_flag_kept_by_the_same_detector_recomputed_by_a_new_one():
    first = {**photo_flags([], 0.9, CHECK), "content_hash": "h"}
    assert CHECK.current(first) and not NEW_CHECK.current(first)
    # The same detector never lowers it (even if a caller hands a lower p).
    same = photo_flags([], 0.2, CHECK, stored=[first], content_hash="h")
    assert same["minor_visual"]
    # A new detector re-evaluates the pixels: the one case where a flag may drop.
    new = photo_flags([], 0.2, NEW_CHECK, stored=[first], content_hash="h")
    assert not new["minor"] and new["minor_model"] == "minor-bbbb"
    # Other bytes at the same uri inherit description flags only, not the old pixels' verdict.
    other = photo_flags([], 0.2, CHECK, stored=[first], content_hash="other")
    assert not other["minor_visual"]


def test_operating_threshold():
    curve = [{"recall": 0.95, "threshold": 0.4, "adults_withheld": 0.2},
             {"recall": 0.97, "threshold": 0.3, "adults_withheld": 0.3},
             {"recall": 0.99, "threshold": 0.1, "adults_withheld": 0.5}]
    assert operating_threshold(0.33, curve) == 0.33
    assert operating_threshold(0.33, curve, recall_target=0.96) == 0.3
    assert operating_threshold(0.33, curve, recall_target=0.95) == 0.4
    assert operating_threshold(0.33, curve, recall_target=0.99, threshold=0.7) == 0.7
    with pytest.raises(ValueError, match="WITHSENSE_MINOR_THRESHOLD"):
        operating_threshold(0.33, curve, recall_target=0.999)
