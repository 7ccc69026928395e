"""Image flags, region rules and the audit log."""

import json
import logging

import pytest
from withsense.compliance import (
    AUDIT_LOGGER,
    ISO_3166_ALPHA2,
    ImageFlags,
    PolicyDecision,
    RegionRules,
    audit_log,
    flag_image,
    query_hash,
)


def test_flag_image_names_each_description_and_term() -> None:
    flags = flag_image(
        [
            "A woman is walking on a beach",
            "A woman walks with her dog",
            "A little girl and her mother",
            "Мальчик и девочка на пляже",
        ]
    )
    assert flags.minor
    assert flags.reasons == (
        "description 2 mentions 'girl'",
        "description 3 mentions 'мальчик'",
        "description 3 mentions 'девочка'",
    )


def test_flag_image_adults_only() -> None:
    assert flag_image(["A man on a bridge", "Two women walk a dog"]) == ImageFlags(False, ())
    assert flag_image([]) == ImageFlags(False, ())


def test_iso_list_is_complete() -> None:
    assert len(ISO_3166_ALPHA2) == 249
    assert {"DE", "FR", "GB", "US", "RU", "AQ", "SS", "BQ"} <= ISO_3166_ALPHA2


@pytest.mark.parametrize(("raw", "code"), [("de", "DE"), (" Fr ", "FR"), ("", ""), ("  ", "")])
def test_validate_normalises(raw: str, code: str) -> None:
    assert RegionRules([]).validate(raw) == code


@pytest.mark.parametrize("raw", ["USA", "D", "1A", "D-E", "ÄÖ", "*"])
def test_validate_rejects_malformed(raw: str) -> None:
    with pytest.raises(ValueError, match="is not an ISO 3166-1 alpha-2 code"):
        RegionRules([]).validate(raw)


def test_validate_message() -> None:
    with pytest.raises(ValueError) as info:
        RegionRules([]).validate("USA")
    assert str(info.value) == (
        "region 'USA' is not an ISO 3166-1 alpha-2 code (two letters, e.g. 'DE')"
    )


@pytest.mark.parametrize("raw", ["ZZ", "XX", "UK", "EU", "AA"])
def test_validate_rejects_unassigned(raw: str) -> None:
    with pytest.raises(ValueError, match="not an assigned"):
        RegionRules([]).validate(raw)


def test_uk_gets_a_hint() -> None:
    with pytest.raises(ValueError, match="use 'GB'"):
        RegionRules([]).validate("uk")


def test_star_restricts_everywhere() -> None:
    rules = RegionRules(["*"])
    assert rules.is_restricted("US") and rules.is_restricted("de") and rules.is_restricted("")


def test_listed_regions() -> None:
    rules = RegionRules(["de", "FR"])
    assert rules.restricted == frozenset({"DE", "FR"})
    assert rules.is_restricted("DE") and rules.is_restricted("fr")
    assert not rules.is_restricted("US")
    assert rules.is_restricted("")  # unknown: could be DE or FR
    with pytest.raises(ValueError):
        rules.is_restricted("Germany")


def test_nothing_restricted() -> None:
    rules = RegionRules([])
    assert not rules.is_restricted("") and not rules.is_restricted("DE")


@pytest.mark.parametrize("bad", ["ZZ", "Germany", "", "D"])
def test_bad_config_names_the_entry(bad: str) -> None:
    with pytest.raises(ValueError, match="restricted regions"):
        RegionRules(["DE", bad])


def test_audit_line_is_json_without_the_raw_query(caplog: pytest.LogCaptureFixture) -> None:
    query = "a boy at the beach"
    decision = PolicyDecision(blocked=True, rule="lexicon:child", matched="boy")
    with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER):
        audit_log("query", decision=decision, region="DE", query=query, image_id=None)
    records = [r for r in caplog.records if r.name == AUDIT_LOGGER]
    assert len(records) == 1
    line = records[0].getMessage()
    assert "\n" not in line and query not in line
    record = json.loads(line)
    assert record["event"] == "query"
    assert record["decision"] == "blocked"
    assert record["rule"] == "lexicon:child"
    assert record["matched"] == "boy"
    assert record["region"] == "DE"
    assert record["query_sha256"] == query_hash(query) and len(query_hash(query)) == 16
    assert record["query_len"] == len(query)
    assert record["image_id"] is None and "ts" in record


def test_audit_handles_unicode_and_odd_values(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger=AUDIT_LOGGER):
        audit_log("withheld", image_id="img\n1", reasons=("description 0 mentions 'сын'",))
    record = json.loads(caplog.records[-1].getMessage())
    assert record["reasons"] == ["description 0 mentions 'сын'"]
    assert record["image_id"] == "img\n1"
