"""The IANA time zone of a US county, for IPAWS times "in the area's zone".

By state (two-digit FIPS) with the counties of split states listed apart, as the US time
zone boundaries (49 CFR part 71) draw them: the Idaho panhandle on Pacific time, Michigan's
four Upper Peninsula counties on the Wisconsin line on Central time, south-western North
Dakota on Mountain, north-western and south-western Indiana on Central, western Kansas and
Texas's El Paso corner on Mountain, Oregon's Malheur County on Mountain, Florida's panhandle
on Central. States split in ways not listed here (Kentucky, Tennessee, South Dakota,
Nebraska) get the zone of most of their people.
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["county_zone", "zone_of_same_codes"]

EASTERN, CENTRAL = "America/New_York", "America/Chicago"
MOUNTAIN, PACIFIC = "America/Denver", "America/Los_Angeles"

STATES: dict[str, str] = {
    "01": CENTRAL, "02": "America/Anchorage", "04": "America/Phoenix", "05": CENTRAL,
    "06": PACIFIC, "08": MOUNTAIN, "09": EASTERN, "10": EASTERN, "11": EASTERN,
    "12": EASTERN, "13": EASTERN, "15": "Pacific/Honolulu", "16": "America/Boise",
    "17": CENTRAL, "18": "America/Indiana/Indianapolis", "19": CENTRAL, "20": CENTRAL,
    "21": "America/Kentucky/Louisville", "22": CENTRAL, "23": EASTERN, "24": EASTERN,
    "25": EASTERN, "26": "America/Detroit", "27": CENTRAL, "28": CENTRAL, "29": CENTRAL,
    "30": MOUNTAIN, "31": CENTRAL, "32": PACIFIC, "33": EASTERN, "34": EASTERN,
    "35": MOUNTAIN, "36": EASTERN, "37": EASTERN, "38": CENTRAL, "39": EASTERN,
    "40": CENTRAL, "41": PACIFIC, "42": EASTERN, "44": EASTERN, "45": EASTERN,
    "46": CENTRAL, "47": CENTRAL, "48": CENTRAL, "49": MOUNTAIN, "50": EASTERN,
    "51": EASTERN, "53": PACIFIC, "54": EASTERN, "55": CENTRAL, "56": MOUNTAIN,
    "60": "Pacific/Pago_Pago", "66": "Pacific/Guam", "69": "Pacific/Saipan",
    "72": "America/Puerto_Rico", "78": "America/St_Thomas",
}  # fmt: skip

_COUNTIES: dict[str, tuple[str, ...]] = {
    # Idaho north of the Salmon River.
    PACIFIC: ("16009", "16017", "16021", "16035", "16049", "16055", "16057", "16061",
              "16069", "16079"),
    "America/Menominee": ("26043", "26053", "26071", "26109"),
    "America/Boise": ("41045",),
    MOUNTAIN: ("38001", "38007", "38011", "38025", "38033", "38037", "38041", "38087",
               "38089", "20071", "20075", "20181", "20199", "48141", "48229"),
    CENTRAL: ("18051", "18073", "18089", "18091", "18111", "18123", "18127", "18129",
              "18147", "18149", "18163", "18173", "12005", "12013", "12033", "12059",
              "12063", "12091", "12113", "12131", "12133"),
}  # fmt: skip
COUNTIES: dict[str, str] = {fips: tz for tz, counties in _COUNTIES.items() for fips in counties}


def county_zone(fips: str) -> str | None:
    """The zone of a five-digit county FIPS code (None for an unknown state)."""
    return COUNTIES.get(fips) or STATES.get(fips[:2])


def zone_of_same_codes(codes: Iterable[str]) -> str | None:
    """The zone of the first county among SAME location codes (``PSSCCC``); a whole-state
    code (``SS000``) takes the state's zone."""
    for code in codes:
        if len(code) == 6 and code.isdigit():
            found = county_zone(code[1:])
            if found is not None:
                return found
    return None
