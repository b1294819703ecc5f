"""How much ground a location code covers, so that a translation never widens an alert silently.

A SAME location code (PSSCCC) is a US county (or part of one), a whole state or the whole
country; a Canadian CLC code is an Environment Canada forecast region (or sub-region), a
province (or a group of them: ``010000`` is the three Maritime provinces, ``090000`` the three
territories), a marine area or all of Canada. A CAP-CP location (Statistics Canada SGC) is a
census subdivision (7 digits), a census division (4), a province or territory (2), Canada
(``0``/``00``), or an ECCC marine area.

:class:`Scale` orders them (a subdivision is the smallest); :func:`code_area` names the area
of a SAME or CLC code and gives its scale (a CLC code missing from ``clc_names.csv`` is
named after Environment Canada's base zone table, ``clc_zones.csv``); :func:`sgc_scale`
gives the scale of an SGC code.
A code *widens* an alert when it covers a province, a state or more while the area it was
derived from is smaller (:func:`widens`).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass
from enum import IntEnum

from cap_schemas.location_shapes import clc_zones
from cap_schemas.tables import clc_names, fips_names, sgc_entries, sgc_entry, state_names

__all__ = ["CodeArea", "Scale", "code_area", "sgc_scale", "widens"]


class Scale(IntEnum):
    """The size class of an area, smallest first."""

    SUBDIVISION = 1  # census subdivision (municipality); part of a US county
    DIVISION = 2  # census division; US county; CLC forecast region; marine zone
    PROVINCE = 3  # province, territory or a group of them; US state; a whole marine area
    NATION = 4  # all of Canada; all of the United States


# SGC scale column of sgc_clc.csv -> Scale (marine: WB a whole area, WBD a zone in it).
_SGC_SCALES = {
    "N": Scale.NATION,
    "PT": Scale.PROVINCE,
    "WB": Scale.PROVINCE,
    "CD": Scale.DIVISION,
    "WBD": Scale.DIVISION,
    "CSD": Scale.SUBDIVISION,
}
_SGC_WORDS = {
    "N": "Canada",
    "PT": "province or territory",
    "WB": "marine area",
    "CD": "census division",
    "WBD": "marine zone",
    "CSD": "census subdivision",
}


@dataclass(frozen=True, slots=True)
class CodeArea:
    """The area a SAME location code covers: its country, scale and a readable name."""

    code: str
    country: str  # "CA" (a CLC code) or "US" (a county FIPS code)
    scale: Scale
    name: str
    kind: str  # what the area is, in words ("forecast region", "whole state", ...)

    @property
    def wide(self) -> bool:
        """A province, territory, state, whole marine area or the nation."""
        return self.scale >= Scale.PROVINCE

    def describe(self) -> str:
        return f"{self.code} {self.name} ({self.kind})"


def sgc_scale(sgc: str) -> tuple[Scale, str]:
    """The scale of an SGC (CAP-CP location) code and its kind in words: from ``sgc_clc.csv``
    when listed there, else from its length (2 digits a province, 4 a division, 7 a
    subdivision)."""
    entry = sgc_entry(sgc)
    if entry is not None and entry.scale in _SGC_SCALES:
        return _SGC_SCALES[entry.scale], _SGC_WORDS[entry.scale]
    by_length = {1: "N", 2: "PT", 4: "CD", 7: "CSD"}
    if sgc in ("0", "00"):
        return Scale.NATION, _SGC_WORDS["N"]
    scale = by_length.get(len(sgc), "CSD")
    return _SGC_SCALES[scale], _SGC_WORDS[scale]


@functools.cache
def _wide_clcs() -> Mapping[str, tuple[Scale, str, str]]:
    """CLC codes that cover a province or more: code -> (scale, name, kind). A code shared
    by several provinces or territories names all of them."""
    names: dict[str, list[str]] = {}
    kinds: dict[str, tuple[Scale, str]] = {}
    for sgc, entry in sgc_entries().items():
        level, name = entry.scale, entry.name
        if level not in ("N", "PT", "WB") or len(entry.clcs) != 1:
            continue
        code = entry.clcs[0]
        if name not in names.setdefault(code, []):
            names[code].append(name)
        if level == "N" or sgc in ("0", "00"):
            kinds[code] = (Scale.NATION, "all of Canada")
        elif level == "WB":
            kinds[code] = (Scale.PROVINCE, "whole marine area")
        else:
            kinds.setdefault(code, (Scale.PROVINCE, "whole province or territory"))
    out: dict[str, tuple[Scale, str, str]] = {}
    for code, (scale, words) in kinds.items():
        listed = names[code]
        several = len(listed) > 1 and scale is Scale.PROVINCE
        kind = f"{len(listed)} whole provinces or territories" if several else words
        out[code] = (scale, ", ".join(sorted(listed)), kind)
    return out


def _clc_area(code: str) -> CodeArea:
    wide = _wide_clcs().get(code)
    if wide is not None:
        return CodeArea(code, "CA", *wide)
    named = clc_names().get(code)
    if named is None:
        zone = clc_zones().get(code)
        if zone is None:
            return CodeArea(
                code, "CA", Scale.DIVISION, "unknown CLC region", "not in the CLC table"
            )
        return CodeArea(code, "CA", Scale.DIVISION, zone.name, "forecast region")
    kind = "marine zone" if code.startswith("00") else "forecast region"
    return CodeArea(code, "CA", Scale.DIVISION, named, kind)


def _fips_area(code: str) -> CodeArea:
    if code == "000000":
        return CodeArea(code, "US", Scale.NATION, "United States", "the whole country")
    state, county = code[1:3], code[3:]
    if county == "000":
        name = state_names().get(state, f"state {state}")
        return CodeArea(code, "US", Scale.PROVINCE, name, "whole state")
    name = fips_names().get(code[1:], f"county {code[1:]}")
    if code[0] != "0":
        return CodeArea(code, "US", Scale.SUBDIVISION, name, f"part {code[0]} of the county")
    return CodeArea(code, "US", Scale.DIVISION, name, "county")


def code_area(code: str, country: str) -> CodeArea:
    """The area of a 6-digit SAME location code: a CLC code when ``country`` is ``CA``, a US
    PSSCCC code otherwise."""
    return _clc_area(code) if country == "CA" else _fips_area(code)


def widens(area: CodeArea, source: Scale | None) -> bool:
    """Whether ``area`` covers much more than the area it was derived from: a province,
    state or more for something smaller. ``source`` None: the alert's own code (never)."""
    return source is not None and area.wide and area.scale > source
