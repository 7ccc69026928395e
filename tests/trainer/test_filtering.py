"""The legal filter: pairs with a flagged photo or a child-mentioning text are dropped, with
counts and reasons; nothing more."""

from __future__ import annotations

import pytest
from withsense_train.data import load_dataset
from withsense_train.filtering import legal_filter

from tests.helpers import SHARED_DATA


def child(text: str) -> bool:
    return "child" in text  # the synthetic captions' only child term ("a child drew ...")


def test_filter_counts_on_synthetic(synthetic_dataset) -> None:
    data = synthetic_dataset
    filtered = legal_filter(data)
    report = filtered.report
    captions = data.captions_by_image
    flagged = {image for image in data.train_images if any(child(c.text) for c in captions[image])}
    assert flagged, "the synthetic set must exercise the filter"
    assert filtered.flagged == flagged
    assert report.photos == len(data.train_images)
    assert report.photos_flagged == len(flagged)
    assert all(filtered.flags[image].reasons for image in flagged)

    # Positives: every caption of every unflagged photo, nothing of a flagged one.
    positives = report.kinds["caption_photo_positives"]
    assert positives.kept == 5 * (len(data.train_images) - len(flagged))
    assert positives.dropped_photo_flagged == 5 * len(flagged)
    assert positives.dropped_text_child == 0
    assert set(filtered.positives) == set(data.train_images) - flagged

    # Judgments: dropped exactly when the photo is flagged or the text mentions a child.
    judged = data.judgments()
    expected_kept = [j for j in judged if j.image not in flagged and not child(j.text)]
    assert [(j.image, j.query_id) for j in filtered.judgments] == \
        [(j.image, j.query_id) for j in expected_kept]
    by_photo = sum(j.image in flagged for j in judged)
    by_text = sum(j.image not in flagged and child(j.text) for j in judged)
    experts = report.kinds["expert_judgments"]
    crowd = report.kinds["crowd_only_judgments"]
    assert experts.dropped_photo_flagged + crowd.dropped_photo_flagged == by_photo
    assert experts.dropped_text_child + crowd.dropped_text_child == by_text
    assert by_text > 0, "the synthetic set must have child texts paired with unflagged photos"
    for count in report.kinds.values():
        assert count.kept + count.dropped_photo_flagged + count.dropped_text_child == count.total

    summary = report.as_dict()
    assert summary["photos_kept"] == len(data.train_images) - len(flagged)
    assert summary["top_terms"].get("child", 0) > 0
    assert any("photos flagged" in line for line in report.lines())


@pytest.mark.data
@pytest.mark.skipif(not SHARED_DATA.is_dir(), reason="the customer's data set is not here")
def test_filter_on_customer_data() -> None:
    data = load_dataset(SHARED_DATA, check_photos=False)
    filtered = legal_filter(data)
    report = filtered.report
    assert 0 < report.photos_flagged < report.photos
    for count in report.kinds.values():
        assert count.kept + count.dropped_photo_flagged + count.dropped_text_child == count.total
    assert sum(len(c) for c in filtered.positives.values()) == \
        report.kinds["caption_photo_positives"].kept
    assert not set(filtered.positives) & filtered.flagged
