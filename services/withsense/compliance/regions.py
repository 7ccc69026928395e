"""Regions: ISO 3166-1 alpha-2 codes, and which of them restrict photos of children."""

from __future__ import annotations

import re
from collections.abc import Iterable

# The 249 officially assigned ISO 3166-1 alpha-2 codes (checked against tzdata's iso3166.tab).
_ISO_CODES = """
    AD AE AF AG AI AL AM AO AQ AR AS AT AU AW AX AZ BA BB BD BE BF BG BH BI BJ BL BM BN BO
    BQ BR BS BT BV BW BY BZ CA CC CD CF CG CH CI CK CL CM CN CO CR CU CV CW CX CY CZ DE DJ
    DK DM DO DZ EC EE EG EH ER ES ET FI FJ FK FM FO FR GA GB GD GE GF GG GH GI GL GM GN GP
    GQ GR GS GT GU GW GY HK HM HN HR HT HU ID IE IL IM IN IO IQ IR IS IT JE JM JO JP KE KG
    KH KI KM KN KP KR KW KY KZ LA LB LC LI LK LR LS LT LU LV LY MA MC MD ME MF MG MH MK ML
    MM MN MO MP MQ MR MS MT MU MV MW MX MY MZ NA NC NE NF NG NI NL NO NP NR NU NZ OM PA PE
    PF PG PH PK PL PM PN PR PS PT PW PY QA RE RO RS RU RW SA SB SC SD SE SG SH SI SJ SK SL
    SM SN SO SR SS ST SV SX SY SZ TC TD TF TG TH TJ TK TL TM TN TO TR TT TV TW TZ UA UG UM
    US UY UZ VA VC VE VG VI VN VU WF WS YE YT ZA ZM ZW
"""
ISO_3166_ALPHA2: frozenset[str] = frozenset(_ISO_CODES.split())

# Codes that are not assigned but that clients send in practice: Kosovo's user-assigned XK
# (used by the EU, Unicode CLDR and most phone/locale data). Accepted as a region of its own.
USER_ASSIGNED_IN_USE: frozenset[str] = frozenset({"XK"})

# Exceptionally reserved or withdrawn codes people type by mistake, with the code to use.
_HINTS: dict[str, str] = {
    "UK": "GB",
    "EL": "GR",
    "SU": "RU",
    "YU": "RS",
    "TP": "TL",
    "ZR": "CD",
    "BU": "MM",
    "FX": "FR",
    "AN": "CW, SX or BQ",
    "CS": "RS or ME",
}

ALL_REGIONS = "*"
UNKNOWN_REGION = ""
_TWO_LETTERS = re.compile(r"^[A-Z]{2}$")


def normalise_region(region: str) -> str:
    """The upper-case ISO 3166-1 alpha-2 code of region; "" (unknown) for an empty one.

    Raises ValueError for anything that is not an assigned two-letter code ("USA", "D", "ZZ").
    """
    if not isinstance(region, str):
        raise ValueError(f"region {region!r} is not a string")
    code = region.strip().upper()
    if code == UNKNOWN_REGION:
        return UNKNOWN_REGION
    if not (code.isascii() and _TWO_LETTERS.match(code)):
        raise ValueError(
            f"region {region!r} is not an ISO 3166-1 alpha-2 code (two letters, e.g. 'DE')"
        )
    if code not in ISO_3166_ALPHA2 and code not in USER_ASSIGNED_IN_USE:
        hint = f"; use {_HINTS[code]!r}" if code in _HINTS else ""
        raise ValueError(f"region {region!r} is not an assigned ISO 3166-1 alpha-2 code{hint}")
    return code


class RegionRules:
    """Which regions restrict photos of children.

    restricted: ISO 3166-1 alpha-2 codes (any case), or "*" for every region; the list
    is validated here, so a typo in the config stops the service at start instead of silently
    serving a region the law covers. An empty list restricts nothing.

    An unknown region (empty) is restricted whenever any region is: the service cannot tell
    that the client is not in one of them.
    """

    def __init__(self, restricted: Iterable[str]) -> None:
        if isinstance(restricted, str):
            restricted = [restricted]
        codes: set[str] = set()
        for entry in restricted:
            text = entry.strip() if isinstance(entry, str) else entry
            if text == ALL_REGIONS:
                codes.add(ALL_REGIONS)
                continue
            if text == UNKNOWN_REGION:
                raise ValueError("restricted regions: empty entry in config")
            try:
                codes.add(normalise_region(text))
            except ValueError as exc:
                raise ValueError(
                    f"restricted regions: bad entry {entry!r} in config: {exc}"
                ) from exc
        self.restricted: frozenset[str] = frozenset(codes)
        self.everywhere = ALL_REGIONS in codes

    def validate(self, region: str) -> str:
        """The normalised upper-case code; "" means unknown. ValueError for malformed input."""
        return normalise_region(region)

    def is_restricted(self, region: str) -> bool:
        code = self.validate(region)
        if not self.restricted:
            return False
        if self.everywhere or code == UNKNOWN_REGION:
            return True
        return code in self.restricted

    def __repr__(self) -> str:
        return f"RegionRules(restricted={sorted(self.restricted)!r})"
