"""The evidence fusion model: trained on synthetic pairs, calibrated per group, comparable across
photos with and without descriptions, saved and loaded as the artifact's fusion.json."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from withsense.keywords import document_vector, keyword_coverage, query_vector
from withsense.model.fusion import (
    FEATURES,
    FusionError,
    FusionModel,
    feature_matrix,
    image_logits,
    load_fusion,
)
from withsense_train.fusion import TextEvidence, draw_descriptions, fit_fusion, listwise_logit
from withsense_train.metrics import expected_calibration_error


def synthetic_pairs(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Pairs whose match the (calibrated) pixel logit predicts, and descriptions, when there are
    any, predict better: a match has a higher description cosine and keyword coverage."""
    rng = np.random.default_rng(seed)
    logit = rng.normal(-2.0, 1.5, n)
    label = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    counts = rng.integers(0, 5, n)
    cosines = [rng.normal(np.where(y, 0.7, 0.25), 0.1, c) for y, c in zip(label, counts, strict=True)]
    keyword = np.clip(np.where(label == 1, 0.6, 0.1) + rng.normal(0, 0.15, n), 0, 1)
    return feature_matrix(logit, cosines, keyword), label


GALLERY = 20  # synthetic pairs per query for the listwise objective


@pytest.fixture(scope="module")
def fusion() -> FusionModel:
    train_x, train_y = synthetic_pairs(6000, 0)
    calib_x, calib_y = synthetic_pairs(3000, 1)
    groups = np.arange(len(train_y)) // GALLERY
    return fit_fusion(train_x, train_y, calib_x, calib_y, groups=groups, seed=0)


def galleries(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """n queries x GALLERY candidates, 3 features: the own photo is ahead in the first by 1 on
    average; the second is noise; the third is a per-query level that says nothing about which
    candidate is the own photo (it shifts whole galleries, as a query's wording does)."""
    rng = np.random.default_rng(seed)
    label = (np.arange(n * GALLERY) % GALLERY == 0).astype(np.int64)
    level = np.repeat(rng.normal(0, 2, n), GALLERY)
    x = np.stack([rng.normal(0, 1, n * GALLERY) + label, rng.normal(0, 1, n * GALLERY), level], 1)
    return x, label, np.arange(n * GALLERY) // GALLERY


def test_listwise_weighs_what_ranks_within_a_query() -> None:
    x, y, groups = galleries(3000, 0)
    weights, intercept = listwise_logit(x, y, groups)
    assert weights[0] > 0.5
    assert abs(weights[1]) < 0.1 and abs(weights[2]) < 0.1  # noise and per-query level: ~0
    assert abs((x @ np.asarray(weights) + intercept).mean()) < 1e-6  # centred logit
    test_x, test_y, _ = galleries(500, 1)
    z = (test_x @ np.asarray(weights)).reshape(-1, GALLERY)
    assert np.mean(z.argmax(axis=1) == 0) > 1.5 / GALLERY  # well above chance


def test_fit_fusion_checks_its_objective() -> None:
    x, y = synthetic_pairs(200, 0)
    with pytest.raises(ValueError, match="groups"):
        fit_fusion(x, y, x, y, objective="listwise")
    with pytest.raises(ValueError, match="objective"):
        fit_fusion(x, y, x, y, objective="pairwise")
    pointwise = fit_fusion(x, y, x, y, objective="pointwise")
    assert pointwise.metrics["objective"] == "pointwise"


def test_features_are_zero_without_descriptions() -> None:
    x = feature_matrix(np.array([1.5, 1.5]), [np.zeros(0), np.array([0.2, 0.6])], np.array([0.9, 0.5]))
    no_desc = dict(zip(FEATURES, x[0], strict=True))
    assert no_desc["image_logit"] == 1.5
    assert all(v == 0 for k, v in no_desc.items() if k != "image_logit")  # keyword masked too
    desc = dict(zip(FEATURES, x[1], strict=True))
    assert desc["described"] == 1 and desc["best_description_cosine"] == pytest.approx(0.6)
    assert desc["mean_description_cosine"] == pytest.approx(0.4)
    assert desc["log1p_descriptions"] == pytest.approx(np.log(3))
    np.testing.assert_allclose(image_logits(np.array([0.5, 0.9])), [0.0, np.log(9)])


def test_fusion_is_calibrated_in_each_group(fusion: FusionModel) -> None:
    test_x, test_y = synthetic_pairs(6000, 2)
    p = fusion.probability(test_x)
    described = test_x[:, FEATURES.index("described")] == 1
    for group in (described, ~described):
        assert expected_calibration_error(p[group], test_y[group]) < 0.03
    # Descriptions are evidence: they separate matches better than the pixels alone.
    from sklearn.metrics import roc_auc_score

    with_desc = roc_auc_score(test_y[described], p[described])
    assert with_desc > roc_auc_score(test_y[~described], p[~described]) + 0.05


def test_undescribed_match_is_not_pushed_below_described_non_matches(fusion: FusionModel) -> None:
    """A photo that shows the scene (high image logit) but has no descriptions keeps the pixel
    model's probability and scores above described photos whose pixels and descriptions both
    say they do not show it."""
    shows_it = feature_matrix(np.array([1.0]), [np.zeros(0)], np.array([0.0]))
    assert fusion.probability(shows_it)[0] == pytest.approx(1 / (1 + np.exp(-1.0)))
    does_not = feature_matrix(np.array([-2.5] * 3), [np.array([0.25, 0.3]), np.array([0.2]),
                                                    np.array([0.3, 0.2, 0.25, 0.2])],
                              np.array([0.0, 0.1, 0.0]))
    assert fusion.probability(shows_it)[0] > fusion.probability(does_not).max()
    assert fusion.evidence(shows_it) == [["pixels"]]
    described_match = feature_matrix(np.array([0.0]), [np.array([0.75, 0.7])], np.array([1.0]))
    assert "descriptions" in fusion.evidence(described_match)[0]


def test_fusion_file_round_trip_and_errors(fusion: FusionModel, tmp_path: Path) -> None:
    path = fusion.save(tmp_path)
    loaded = load_fusion(tmp_path)
    assert loaded == fusion
    x, _ = synthetic_pairs(50, 3)
    np.testing.assert_array_equal(loaded.probability(x), fusion.probability(x))
    assert load_fusion(tmp_path / "none") is None
    with pytest.raises(FusionError, match="config.json says"):
        load_fusion(tmp_path, expected_sha256="0" * 64)
    data = json.loads(path.read_text())
    path.write_text(json.dumps({**data, "features": ["image_logit"]}))
    with pytest.raises(FusionError, match="features"):
        load_fusion(tmp_path)


def test_leave_captions_out_draws_never_include_the_query() -> None:
    rng = np.random.default_rng(0)
    counts = set()
    for _ in range(200):
        drawn = draw_descriptions(rng, [10, 11, 12, 13, 14], exclude=12)
        assert 12 not in drawn and len(set(drawn)) == len(drawn)
        counts.add(len(drawn))
    assert counts == {0, 1, 2, 3, 4}


def test_keyword_features_match_exact_terms() -> None:
    texts = ["Shot on a Nikon D750 in Brighton", "dogs running on the beach", "a nikon d750"]
    evidence = TextEvidence.build(texts, np.eye(3))
    assert evidence.coverage(2, [0]) == 1.0  # "nikon", "d750" both found
    assert evidence.coverage(2, [1]) == 0.0
    assert evidence.coverage(2, []) == 0.0
    doc = document_vector([texts[1]])
    assert keyword_coverage("a dog runs", doc.indices) == 1.0  # lemmas: dogs/dog, running/run
    assert keyword_coverage("the", doc.indices) == 0.0  # stop words only: no content
    assert not query_vector("the a of")


def test_training_writes_the_fusion_component(trained_synthetic) -> None:
    """`withsense train` saves fusion.json, records its hash and a model card section; the
    runtime's loader accepts it against that hash."""
    result, _ = trained_synthetic
    out = Path(result.artifact_dir)
    recorded = json.loads((out / "config.json").read_text())["files"]["fusion.json"]
    fusion = load_fusion(out, recorded)
    assert fusion is not None and fusion.metrics["train_positives"] > 0
    assert result.card["fusion"]["files"] == {"fusion.json": recorded}
