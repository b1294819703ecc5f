"""CAP -> SAME header by the ECIG "CAP to EAS" rules, and SAME header -> CAP.

CAP -> SAME (:func:`alert_to_same`), refusing with :class:`TranslationError` (the reason in the
message) any alert that may not be aired: no ``<info>``, status other than ``Actual``, scope
other than ``Public``, msgType Cancel/Ack/Error, no or past ``expires``, no event, no location.

* ORG: ``EAS-ORG``; ``WXR`` for Environment Canada senders; else ``CIV`` (ECIG 3.10).
* EEE: the ``SAME`` eventCode; for a CAP-CP alert without one, the CAP-CP event through the
  event map (the ECCC alert type refines watch/warning). An IPAWS/NWS alert without a SAME
  eventCode SHALL NOT be aired (ECIG) and is refused.
* PSSCCC: ``SAME`` (and CAP 1.1 ``FIPS6``) geocodes in the order met; for Canadian alerts, area
  by area, the ECCC ``CLC`` geocodes, else the SGC codes through ``sgc_clc.csv``. A header
  carries 31 codes at most: :func:`alert_to_same_headers` splits more into several headers
  (``over_31 = "split"``, the default: every area is alerted) or keeps the first 31 as the
  ECIG guide says (``over_31 = "first"``, and says how many it left out).
  A station in the other country (``country="US"``/``"CA"``) gets its own country's codes
  through the cross-border crosswalk (:mod:`gateway.translate.locations`). A derived code that
  covers a whole province or state (or the nation) for a smaller area is refused with the
  reason, unless the route allows ``widen = "province"``.
* TTTT: ``expires - sent`` rounded up (15-minute steps to one hour, then 30-minute steps).
* JJJHHMM: ``sent`` in UTC. LLLLLLLL: the station id from the route.

SAME -> CAP (:func:`same_to_alert`): event and area names from the tables, ``sent`` from
JJJHHMM (year inferred), ``expires`` = sent + TTTT, status ``Test`` for RWT/RMT/NPT/DMO, and a
``note``/``source`` plus the parameter ``borderlink:authenticated=false`` marking it as
derived from an unauthenticated broadcast. Its identifier is a digest of the header without
the station field, so the same header heard from two stations is one alert (ECIG duplicate
rule).
"""

from __future__ import annotations

from datetime import UTC, datetime

from cap_schemas.errors import CapParseError
from cap_schemas.model import (
    Alert,
    MsgType,
    Scope,
    Status,
)
from cap_schemas.same import MAX_LOCATIONS, ORIGINATORS, SameHeader, round_duration
from cap_schemas.tables import (
    Crosswalk,
    capcp_to_same,
    same_events,
)
from gateway.errors import ConfigError, TranslationError
from gateway.translate.common import (
    CAPCP_EVENT,
    ECCC_ALERT_TYPE,
    ECCC_SENDERS,
    first_info,
)
from gateway.translate.locations import WIDEN_CHOICES, refuse_widening, resolve


def _refuse(reason: str) -> TranslationError:
    return TranslationError(f"no SAME header: {reason}")


#: What a header does with more than 31 location codes (the route's ``over_31`` option).
OVER_31_CHOICES = ("split", "first")


def over_31_option(value: str) -> str:
    """``value`` checked as an ``over_31`` choice (ConfigError naming the choices)."""
    if value not in OVER_31_CHOICES:
        msg = f"over_31 {value!r} is not one of {', '.join(OVER_31_CHOICES)}"
        raise ConfigError(msg)
    return value


def alert_to_same(
    alert: Alert,
    *,
    station: str,
    now: datetime | None = None,
    country: str = "auto",
    crosswalk: Crosswalk | None = None,
    widen: str = "none",
) -> SameHeader:
    """The first SAME header for ``alert`` (its first 31 location codes)."""
    headers, _ = alert_to_same_headers(
        alert,
        station=station,
        now=now,
        country=country,
        crosswalk=crosswalk,
        widen=widen,
        over_31="first",
    )
    return headers[0]


def alert_to_same_headers(
    alert: Alert,
    *,
    station: str,
    now: datetime | None = None,
    country: str = "auto",
    crosswalk: Crosswalk | None = None,
    widen: str = "none",
    over_31: str = "split",
) -> tuple[tuple[SameHeader, ...], int]:
    """The SAME headers for ``alert`` (see the module docstring) and how many location
    codes were left out (only with ``over_31 = "first"``), or TranslationError.

    Split headers share event, originator, duration and issue time; each carries the next
    31 codes in the order met.

    ``country`` is where the header is aired: ``US`` takes FIPS codes (a Canadian alert's
    SGC codes through the crosswalk) and only event codes US EAS may emit; ``CA`` takes CLC
    codes (a US alert's counties through the crosswalk); ``auto`` uses the alert's own codes.
    ``widen = "province"`` lets a derived code cover a whole province or state for a smaller
    area (:class:`LocationWideningError` otherwise).
    """
    if widen not in WIDEN_CHOICES:
        msg = f"widen {widen!r} is not one of {', '.join(WIDEN_CHOICES)}"
        raise ConfigError(msg)
    over_31_option(over_31)
    if country not in ("auto", "US", "CA"):
        msg = f"country {country!r} is not auto, US or CA"
        raise ConfigError(msg)
    if not alert.infos:
        raise _refuse("the alert has no <info> block")
    if alert.status is not Status.ACTUAL:
        raise _refuse(f"status {alert.status} (only Actual alerts are aired)")
    if alert.scope is not Scope.PUBLIC:
        raise _refuse(f"scope {alert.scope} (only Public alerts are aired)")
    if alert.msg_type not in (MsgType.ALERT, MsgType.UPDATE):
        raise _refuse(f"msgType {alert.msg_type} is never aired")
    info = first_info(alert)
    expires = info.expires or alert.expires
    if expires is None:
        raise _refuse("no <expires>: the valid time cannot be set")
    if expires <= (now or datetime.now(UTC)):
        raise _refuse(f"expired at {expires.isoformat()}")
    event = info.event_code("SAME")
    if event and country == "US" and event in same_events() and not same_events()[event].us_eas:
        event = None  # a Canada-only code: map the CAP-CP event instead
    if not event:
        capcp = info.event_code(CAPCP_EVENT)
        mapping = capcp_to_same(capcp, info.parameter(ECCC_ALERT_TYPE)) if capcp else None
        if mapping is None:
            raise _refuse("no SAME eventCode and no CAP-CP event that maps to one")
        event = mapping.same
    if len(event) != 3 or not event.isalpha() or not event.isupper():
        raise _refuse(f"SAME event {event!r} is not three upper-case letters")
    org = info.parameter("EAS-ORG")
    if org not in ORIGINATORS:
        org = "WXR" if alert.sender.lower() in ECCC_SENDERS else "CIV"
    walk = crosswalk if crosswalk is not None else Crosswalk.default()
    found = resolve(info, country, walk)
    if not found:
        raise _refuse("no SAME, CLC or mapped SGC location code")
    refuse_widening(found, widen, what="no SAME header")
    codes = tuple(loc.code for loc in found)
    chunks = [codes[i : i + MAX_LOCATIONS] for i in range(0, len(codes), MAX_LOCATIONS)]
    dropped = 0
    if over_31 == "first":
        dropped = len(codes) - len(chunks[0])
        chunks = chunks[:1]
    try:
        duration = round_duration(expires - alert.sent)
        issued = alert.sent.astimezone(UTC).replace(second=0, microsecond=0)
        headers = tuple(
            SameHeader(org, event, chunk, duration, issued, station.ljust(8)[:8])
            for chunk in chunks
        )
    except CapParseError as exc:
        raise _refuse(str(exc)) from exc
    return headers, dropped
