"""The visual minor detector's training stage on small synthetic features, and its artifact file."""

from __future__ import annotations

import json

import numpy as np
import pytest
from withsense.model.artifact import ArtifactError
from withsense.model.minor import MINOR_FILE, attach_minor_detector, load_minor_detector
from withsense_train.minor import (
    MinorConfig,
    label_kinds,
    threshold_at_recall,
    tradeoff_curve,
    train_minor_detector,
    training_rows,
)

POOLED, CLASSES = 24, 10


def synthetic(n: int = 240, seed: int = 0):
    """Tower-like features where one pooled direction carries 'a child is shown', with votes of
    5 captions: children get 3-5, others 0, and some photos are ambiguous (1-2)."""
    rng = np.random.default_rng(seed)
    child = rng.random(n) < 0.4
    ambiguous = ~child & (rng.random(n) < 0.15)
    pooled = np.abs(rng.normal(0, 1, (n, POOLED))).astype(np.float32)
    pooled[:, 0] += np.where(child, 2.5, np.where(ambiguous, 1.0, 0.0))
    logits = rng.normal(0, 1, (n, CLASSES)).astype(np.float32)
    votes = np.where(child, rng.integers(3, 6, n), np.where(ambiguous, rng.integers(1, 3, n), 0))
    return pooled, logits, votes, np.full(n, 5)


def test_labels_and_training_rows():
    votes = np.array([0, 1, 2, 3, 5])
    assert label_kinds(votes).tolist() == [0, -1, -1, 1, 1]
    rows, labels, weights = training_rows(votes, np.full(5, 5), "soft")
    assert rows.tolist() == [0, 1, 1, 2, 2, 3, 4]
    assert labels.tolist() == [0, 1, 0, 1, 0, 1, 1]
    assert weights.tolist() == pytest.approx([1, 0.2, 0.8, 0.4, 0.6, 1, 1])
    assert training_rows(votes, np.full(5, 5), "exclude")[0].tolist() == [0, 3, 4]
    assert training_rows(votes, np.full(5, 5), "positive")[1].tolist() == [0, 1, 1, 1, 1]


def test_threshold_and_curve():
    p_child = np.array([0.9, 0.8, 0.7, 0.2])
    assert threshold_at_recall(p_child, 0.75) == 0.7
    assert threshold_at_recall(p_child, 1.0) == 0.2
    kinds = np.array([1, 1, 1, 1, 0, 0, -1])
    p = np.array([0.9, 0.8, 0.7, 0.2, 0.75, 0.1, 0.5])
    curve = {c["recall"]: c for c in tradeoff_curve(p, kinds, (0.75, 1.0))}
    assert curve[0.75]["adults_withheld"] == 0.5 and curve[1.0]["adults_withheld"] == 0.5
    assert curve[1.0]["ambiguous_withheld"] == 1.0


def test_detector_learns_and_meets_its_recall_target():
    pooled, logits, votes, counts = synthetic()
    result = train_minor_detector(pooled, logits, votes, counts, MinorConfig(c=1.0, margin=0.0))
    detector, report = result.detector, result.report
    cv = report["cross_validation"]
    assert cv["auc"] > 0.9
    kinds = label_kinds(votes)
    p = detector.probability(pooled, logits)
    assert p.shape == (len(votes),) and np.all((p >= 0) & (p <= 1))
    # The trained detector, on its own training photos, catches at least the target share.
    assert np.mean(p[kinds == 1] >= detector.threshold) >= 0.97
    assert [c["recall"] for c in detector.curve] == sorted(c["recall"] for c in detector.curve)
    assert report["labels"]["ambiguous"] == int(np.sum(kinds == -1))
    # Deterministic: the same data and config give the same detector.
    again = train_minor_detector(pooled, logits, votes, counts, MinorConfig(c=1.0, margin=0.0))
    assert np.array_equal(again.detector.weight, detector.weight)


def test_too_few_labelled_photos_is_a_clear_error():
    pooled, logits, votes, counts = synthetic(20)
    with pytest.raises(ValueError, match="show a child"):
        train_minor_detector(pooled, logits, np.zeros_like(votes), counts)


def test_artifact_round_trip_and_damage(tmp_path):
    pooled, logits, votes, counts = synthetic()
    detector = train_minor_detector(pooled, logits, votes, counts, MinorConfig(c=1.0)).detector
    (tmp_path / "config.json").write_text(json.dumps({"files": {}}))
    attach_minor_detector(tmp_path, detector)
    config = json.loads((tmp_path / "config.json").read_text())
    section = config["minor_detector"]
    assert config["files"][MINOR_FILE] and section["threshold"] == detector.threshold
    assert section["version"].startswith("minor-") and section["curve"] == detector.curve
    loaded = load_minor_detector(tmp_path, config)
    assert loaded is not None and loaded.version == section["version"]
    np.testing.assert_allclose(loaded.probability(pooled, logits),
                               detector.probability(pooled, logits), rtol=1e-6)
    # Another deployment point from the stored curve, or an explicit threshold.
    assert loaded.threshold_for(threshold=0.42) == 0.42
    assert loaded.threshold_for(recall_target=0.9) >= loaded.threshold_for(recall_target=1.0)
    # No section: no detector (the gateway then withholds every photo).
    assert load_minor_detector(tmp_path, {"files": {}}) is None
    # A detector file that config.json does not list (so no hash was checked by load_artifact),
    # or that is missing, is refused, naming it.
    unlisted = {**config, "files": {}}
    with pytest.raises(ArtifactError, match="not listed"):
        load_minor_detector(tmp_path, unlisted)
    (tmp_path / MINOR_FILE).unlink()
    with pytest.raises(ArtifactError, match="missing"):
        load_minor_detector(tmp_path, config)


@pytest.mark.slow
def test_a_run_without_clear_child_photos_ships_no_detector(trained_synthetic):
    """The synthetic set names a child in one caption of a photo (ambiguous, never 3 of 5): the
    stage is skipped and says why; the artifact has no detector, so the gateway withholds every
    photo indexed with it (tests/gateway/test_minor_sight.py)."""
    result, _ = trained_synthetic
    assert "needs at least" in result.card["minor_detector"]["skipped"]
    config = json.loads((result.artifact_dir / "config.json").read_text())
    assert "minor_detector" not in config and MINOR_FILE not in config["files"]
    assert load_minor_detector(result.artifact_dir, config) is None
