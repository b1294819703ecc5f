"""The renderers routes name (``translation = "..."``), with the options each takes.

===============  ==========================================================================
name             options (``[route.translation_options]``)
===============  ==========================================================================
``ipaws``        sender, identifier_prefix, timezone, blockchannel (list), default_hours,
                 crosswalk (CSV path, "default" or "none"), widen (none, province)
``cap-cp``       sender, identifier_prefix, crosswalk, fallback_sgc
``same``         station (8 characters at most), country (auto, US, CA), crosswalk,
                 widen (none, province), over_31 (split, first)
``text``         radio (aprs, aprs-bulletin, pager, dmr, generic), lang (en, fr, both),
                 budget, ascii_only, forbidden, max_parts
``edxl``         version ("1.0" or "2.0"), sender_id
``incident``     (none) the alert as incident JSON
``incident-text`` (none) the alert as an incident radio line
===============  ==========================================================================
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from functools import wraps
from typing import Any

import structlog

from cap_schemas.model import Alert, MsgType
from cap_schemas.same import MAX_LOCATIONS
from cap_schemas.serialize import to_xml
from gateway.errors import ConfigError, TranslationError
from gateway.metrics import REGISTRY
from gateway.model import Incident, Location, Rendered
from gateway.translate.capcp_ipaws import IpawsOptions, capcp_to_ipaws
from gateway.translate.common import crosswalk_option, option_str
from gateway.translate.edxl import cap_to_edxl
from gateway.translate.incident import incident_to_json, incident_to_text
from gateway.translate.ipaws_capcp import CapCpOptions, ipaws_to_capcp
from gateway.translate.locations import widen_option
from gateway.translate.same import alert_to_same_headers, over_31_option
from gateway.translate.text import radio_options, render_radio_text

CAP = "application/cap+xml"

log = structlog.get_logger(__name__)

SAME_LOCATIONS_LEFT_OUT = REGISTRY.counter(
    "borderlink_same_locations_left_out_total",
    "Location codes past the 31st a SAME header left out (routes with over_31 = \"first\")",
)

RenderFunction = Callable[[Alert, Mapping[str, Any]], Rendered]


def _guarded(function: RenderFunction) -> RenderFunction:
    """Bad route options found while rendering fail that delivery, not the admission."""

    @wraps(function)
    def render(alert: Alert, options: Mapping[str, Any]) -> Rendered:
        try:
            return function(alert, options)
        except ConfigError as exc:
            msg = f"translation options: {exc}"
            raise TranslationError(msg) from exc

    return render


@_guarded
def render_ipaws(alert: Alert, options: Mapping[str, Any]) -> Rendered:
    result = capcp_to_ipaws(alert, IpawsOptions.from_mapping(options))
    return Rendered((to_xml(result),), CAP, {"profile": "ipaws", "derived_from": str(alert.key)})


@_guarded
def render_capcp(alert: Alert, options: Mapping[str, Any]) -> Rendered:
    result = ipaws_to_capcp(alert, CapCpOptions.from_mapping(options))
    return Rendered((to_xml(result),), CAP, {"profile": "cap-cp", "derived_from": str(alert.key)})


@_guarded
def render_same(alert: Alert, options: Mapping[str, Any]) -> Rendered:
    station = option_str(options, "station", "BORDERLK")
    now = options.get("now")
    if now is not None and not isinstance(now, datetime):
        msg = "translation option 'now' must be a datetime"
        raise ConfigError(msg)
    headers, dropped = alert_to_same_headers(
        alert,
        station=station,
        now=now or datetime.now(UTC),
        country=option_str(options, "country", "auto"),
        crosswalk=crosswalk_option(options),
        widen=widen_option(options),
        over_31=over_31_option(option_str(options, "over_31", "split")),
    )
    first = headers[0]
    attributes = {"event": first.event, "originator": first.originator, "eom": "NNNN"}
    attributes["headers"] = str(len(headers))
    if dropped:
        attributes["locations_left_out"] = str(dropped)
        log.warning(
            "same_locations_left_out", key=str(alert.key), left_out=dropped, kept=MAX_LOCATIONS
        )
        SAME_LOCATIONS_LEFT_OUT.inc(dropped)
    return Rendered(
        tuple(h.to_text().encode("ascii") for h in headers), "text/x-same-header", attributes
    )


@_guarded
def render_text(alert: Alert, options: Mapping[str, Any]) -> Rendered:
    kwargs = radio_options(options)
    text = render_radio_text(alert, **kwargs)
    charset = "us-ascii" if kwargs["ascii_only"] else "utf-8"
    return Rendered(
        tuple(p.encode(charset) for p in text.parts),
        f"text/plain; charset={charset}",
        {
            "language": text.language,
            "priority": text.priority,
            "radio": option_str(options, "radio", "generic"),
        },
    )


@_guarded
def render_edxl(alert: Alert, options: Mapping[str, Any]) -> Rendered:
    version = option_str(options, "version", "2.0")
    sender = options.get("sender_id")
    if sender is not None and not isinstance(sender, str):
        msg = "translation option 'sender_id' must be a string"
        raise ConfigError(msg)
    data = cap_to_edxl(alert, version=version, sender_id=sender)
    return Rendered((data,), "application/xml", {"edxl_version": version})


def alert_to_incident(alert: Alert) -> Incident:
    """An incident record summarising an alert (for incident topics and radio lines)."""
    info = alert.infos[0] if alert.infos else None
    location = None
    if info is not None:
        for area in info.areas:
            if area.circles:
                c = area.circles[0].center
                location = Location(c.lat, c.lon, area.area_desc)
                break
            if area.polygons:
                points = area.polygons[0].points[:-1] or area.polygons[0].points
                lat = sum(p.lat for p in points) / len(points)
                lon = sum(p.lon for p in points) / len(points)
                location = Location(round(lat, 5), round(lon, 5), area.area_desc)
                break
    status = "cancelled" if alert.msg_type is MsgType.CANCEL else "active"
    text = (info.headline or info.event) if info is not None else alert.note or ""
    return Incident(
        incident_id=alert.identifier.replace(" ", "_"),
        incident_type=info.event if info is not None else "alert",
        status=status,
        location=location,
        units=(),
        text=text,
        agency=(info.sender_name if info is not None and info.sender_name else alert.sender),
        created=alert.sent,
        updated=alert.sent,
    )


@_guarded
def render_incident(alert: Alert, _options: Mapping[str, Any]) -> Rendered:
    return Rendered((incident_to_json(alert_to_incident(alert)),), "application/json")


@_guarded
def render_incident_text(alert: Alert, _options: Mapping[str, Any]) -> Rendered:
    line = incident_to_text(alert_to_incident(alert))
    return Rendered((line.encode("utf-8"),), "text/plain; charset=utf-8")


def _check_same(options: Mapping[str, Any]) -> None:
    station = option_str(options, "station", "BORDERLK")
    if not station or len(station) > 8 or "-" in station or "+" in station:
        msg = f"station {station!r} must be 1 to 8 characters without '-' or '+'"
        raise ConfigError(msg)
    if option_str(options, "country", "auto") not in ("auto", "US", "CA"):
        msg = "country must be auto, US or CA"
        raise ConfigError(msg)
    crosswalk_option(options)
    widen_option(options)
    over_31_option(option_str(options, "over_31", "split"))


def _check_edxl(options: Mapping[str, Any]) -> None:
    if option_str(options, "version", "2.0") not in ("1.0", "2.0"):
        msg = 'version must be "1.0" or "2.0"'
        raise ConfigError(msg)


def _check_text(options: Mapping[str, Any]) -> None:
    kwargs = radio_options(options)
    if kwargs["lang"] not in ("en", "fr", "both"):
        msg = f"lang {kwargs['lang']!r} is not en, fr or both"
        raise ConfigError(msg)
    if kwargs["budget"] < 16:
        msg = f"budget {kwargs['budget']} is too small (at least 16 characters)"
        raise ConfigError(msg)


# The options each translation takes (a route naming another is refused with the list).
OPTION_NAMES: Mapping[str, frozenset[str]] = {
    "identity": frozenset(),
    "ipaws": frozenset(
        {
            "sender",
            "identifier_prefix",
            "timezone",
            "blockchannel",
            "default_hours",
            "crosswalk",
            "widen",
        }
    ),
    "cap-cp": frozenset({"sender", "identifier_prefix", "crosswalk", "fallback_sgc"}),
    "same": frozenset({"station", "country", "crosswalk", "widen", "over_31", "now"}),
    "text": frozenset({"radio", "lang", "budget", "ascii_only", "forbidden", "max_parts"}),
    "edxl": frozenset({"version", "sender_id"}),
    "incident": frozenset(),
    "incident-text": frozenset(),
}

OPTION_CHECKS: Mapping[str, Callable[[Mapping[str, Any]], object]] = {
    "ipaws": IpawsOptions.from_mapping,
    "cap-cp": CapCpOptions.from_mapping,
    "same": _check_same,
    "text": _check_text,
    "edxl": _check_edxl,
}
