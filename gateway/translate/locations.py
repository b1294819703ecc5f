"""SAME location codes for an alert, each with the area it covers and where it came from.

The codes of one ``<area>`` come, in this order, from

1. the alert's own codes: ``SAME`` (or CAP 1.1 ``FIPS6``) geocodes for a US station, the
   ECCC ``layer:EC-MSC-SMC:1.0:CLC`` geocodes for a Canadian one;
2. its CAP-CP locations (Statistics Canada SGC) through ``sgc_clc.csv`` (Canada) or the
   cross-border crosswalk (United States);
3. for a Canadian station, when its SGC codes give none, its US counties through the
   crosswalk, then SGC -> CLC;
4. for a Canadian station, when 2 and 3 give no code, its polygons and circles: the CLC
   zones whose Environment Canada reference points they contain
   (:func:`cap_schemas.location_shapes.shape_zones`); when 2 and 3 give codes that widen the
   alert, the shape's zones in the province (or group) such a code names replace those
   codes. A shape that reaches no such zone leaves the codes as they were.

An alert's own code is taken as it is. A derived code that covers a province, a state or more
while the area it was derived from is smaller (a whole-province CLC for a municipality, a
state-wide ``0SS000`` for a census division) *widens* the alert: :func:`refuse_widening`
refuses the translation with the reason, unless the route says ``widen = "province"`` (which
allows a province- or state-wide code, never a national one).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cap_schemas.location_areas import CodeArea, Scale, code_area, sgc_scale, widens
from cap_schemas.location_shapes import shape_zones
from cap_schemas.model import Area, Info
from cap_schemas.tables import Crosswalk, sgc_entry
from gateway.errors import ConfigError, LocationWideningError
from gateway.translate.common import CAPCP_LOCATION, ECCC_CLC, option_str

WIDEN_CHOICES = ("none", "province")
US_GEOCODES = ("SAME", "FIPS6")


@dataclass(frozen=True, slots=True)
class LocationCode:
    """One SAME location code: the area it covers, what in the alert it was derived from,
    and the scale of that (None: the alert's own code)."""

    area: CodeArea
    origin: str
    source_scale: Scale | None

    @property
    def code(self) -> str:
        return self.area.code

    @property
    def widens(self) -> bool:
        return widens(self.area, self.source_scale)

    def allowed(self, widen: str) -> bool:
        """Whether a route with ``widen`` may use this code."""
        if not self.widens:
            return True
        return widen == "province" and self.area.scale is Scale.PROVINCE

    def describe(self) -> str:
        return f"{self.area.describe()} from {self.origin}"


def widen_option(options: Mapping[str, Any]) -> str:
    """The route's ``widen`` option: ``none`` (the default) or ``province``."""
    value = option_str(options, "widen", "none")
    if value not in WIDEN_CHOICES:
        msg = f"widen {value!r} is not one of {', '.join(WIDEN_CHOICES)}"
        raise ConfigError(msg)
    return value


def _sgc_words(sgc: str, *, clc: bool = False) -> tuple[Scale, str]:
    """The scale of an SGC code and how to name it (``clc``: say when ``sgc_clc.csv`` gives
    it its census division's codes)."""
    scale, kind = sgc_scale(sgc)
    entry = sgc_entry(sgc)
    name = f" {entry.name}" if entry is not None and entry.name else ""
    via = ""
    if clc and entry is not None and entry.basis == "division":
        via = f", through its census division {sgc[:4]}"
    return scale, f"SGC {sgc}{name} ({kind}{via})"


def _own(values: Iterable[str], country: str, what: str) -> Iterator[LocationCode]:
    for value in values:
        if len(value) == 6 and value.isdigit():
            yield LocationCode(code_area(value, country), f"the alert's {what} geocode", None)


def _us_values(area: Area) -> list[str]:
    return [v for name in US_GEOCODES for v in area.geocode_values(name)]


def us_from_sgc(sgc: str, crosswalk: Crosswalk) -> Iterator[LocationCode]:
    """The US SAME codes the crosswalk pairs with an SGC code."""
    scale, origin = _sgc_words(sgc)
    for us in crosswalk.us_for_sgc(sgc):
        yield LocationCode(code_area(us, "US"), f"{origin} through the crosswalk", scale)


def _clc_from_sgc(sgc: str) -> Iterator[LocationCode]:
    entry = sgc_entry(sgc)
    if entry is None:
        return
    scale, origin = _sgc_words(sgc, clc=True)
    for clc in entry.clcs:
        yield LocationCode(code_area(clc, "CA"), origin, scale)


def _clc_from_us(us: str, crosswalk: Crosswalk) -> Iterator[LocationCode]:
    county = code_area(us, "US")
    for sgc in crosswalk.sgc_for_us(us):
        for found in _clc_from_sgc(sgc):
            origin = f"{county.describe()} through the crosswalk and {found.origin}"
            yield LocationCode(found.area, origin, county.scale)


def _area_codes(area: Area, country: str, crosswalk: Crosswalk) -> Iterator[LocationCode]:
    if country == "US":
        own = list(_own(_us_values(area), "US", "SAME"))
        if own:
            yield from own
            return
        for sgc in area.geocode_values(CAPCP_LOCATION):
            yield from us_from_sgc(sgc, crosswalk)
        return
    own = list(_own(area.geocode_values(ECCC_CLC), "CA", "CLC"))
    if own:
        yield from own
        return
    mapped = [loc for sgc in area.geocode_values(CAPCP_LOCATION) for loc in _clc_from_sgc(sgc)]
    if not mapped:
        mapped = [loc for us in _us_values(area) for loc in _clc_from_us(us, crosswalk)]
    widening = {m.code[:2] for m in mapped if m.widens}
    shaped = list(_clc_from_shape(area)) if not mapped or widening else []
    if mapped:  # the shape stands in for a widening code only in the province it names
        shaped = [s for s in shaped if s.code[:2] in widening]
    if not shaped:
        yield from mapped
        return
    yield from (m for m in mapped if not m.widens)
    yield from shaped


def _clc_from_shape(area: Area) -> Iterator[LocationCode]:
    """The CLC zones the area's polygons and circles reach (never a province-wide code)."""
    for found in shape_zones(area):
        if found.via == "zone":
            seen = "the zone's own reference point"
        else:
            _, words = _sgc_words(found.via, clc=True)
            seen = f"the reference point of {words}"
        origin = f"the alert's {_shape_words(area)}, which contains {seen}"
        yield LocationCode(code_area(found.clc, "CA"), origin, Scale.SUBDIVISION)


def _shape_words(area: Area) -> str:
    if area.polygons and area.circles:
        return "polygon or circle"
    return "polygon" if area.polygons else "circle"


def resolve(info: Info, country: str, crosswalk: Crosswalk) -> tuple[LocationCode, ...]:
    """The SAME location codes of an info block, in order, without repeats (not capped).

    ``country``: ``US`` (county codes), ``CA`` (CLC codes), or ``auto`` (the alert's own
    SAME/FIPS6 codes when it has any, else Canadian codes). A code met twice keeps the
    origin that does not widen the alert, if one does not.
    """
    if country == "auto":
        has_us = any(_us_values(area) for area in info.areas)
        country = "US" if has_us else "CA"
    found: dict[str, LocationCode] = {}
    for area in info.areas:
        for location in _area_codes(area, country, crosswalk):
            known = found.get(location.code)
            if known is None or (known.widens and not location.widens):
                found[location.code] = location
    return tuple(found.values())


def refuse_widening(locations: Iterable[LocationCode], widen: str, *, what: str) -> None:
    """Raise :class:`LocationWideningError` naming every code ``widen`` does not allow."""
    refused = [loc for loc in locations if not loc.allowed(widen)]
    if not refused:
        return
    listed = "; ".join(loc.describe() for loc in refused)
    hint = (
        "a national code is never allowed for a smaller area"
        if any(loc.area.scale is Scale.NATION for loc in refused)
        else 'a route may allow it with widen = "province"'
    )
    msg = f"{what}: location code would cover much more than the alert: {listed} ({hint})"
    raise LocationWideningError(msg)
