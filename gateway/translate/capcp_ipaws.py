"""CAP-CP (Canada, NAAD System) -> IPAWS profile 1.0 (United States).

The result is a new alert in the operator's namespace (``sender``, ``identifier_prefix``)
that references its source, so a US consumer can trace it and a later Update or Cancel of the
source replaces or withdraws it (the references of the source are carried through as the keys
our translations of them have). Rules, in the order applied:

* ``<code>IPAWSv1.0``; status, msgType, scope, restriction and addresses kept.
* Times in the area's zone (the IPAWS profile wants the local offset): ``timezone = "auto"``
  (the default) takes the zone of the first US county the alert is translated to, a Surrey
  alert reaching Whatcom County in Pacific time; an IANA name fixes it for the route. The
  parameter ``timezone`` (its abbreviation, e.g. ``PDT``) as IPAWS origination tools write it.
* Exactly one ``SAME`` eventCode: the source's own when a US EAS participant may emit it,
  else the CAP-CP event through ``capcp_same_map.csv`` (the ECCC alert type -- watch, warning,
  statement -- refines it), else ``CEM``. The CAP-CP eventCode is kept beside it.
* ``EAS-ORG``: the source's own, ``WXR`` for Environment Canada, else ``CIV``.
* ``EAS-Must-Carry=True`` when the source is SOREM Broadcast_Immediately=Yes.
* ``CMAMtext`` (<= 90 characters) and ``CMAMlongtext`` (<= 360) from the author's SOREM
  WirelessText of the English block, cut on a word boundary when longer. Never composed.
* ``BLOCKCHANNEL`` values from the route options.
* ``expires`` always set: the source's, else ``sent + default_hours``.
* Areas keep their description, polygons, circles and geocodes; US ``SAME`` geocodes are added
  through the crosswalk (SGC census divisions facing US counties). A crosswalk row that gives
  a whole state (``0SS000``) or the nation for a smaller area is refused with the reason,
  unless the route allows ``widen = "province"``.
* The French block is kept beside the English one (same event codes and parameters).
* SOREM and NAADS layer parameters are dropped: they instruct Canadian last-mile distributors.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from cap_schemas.model import Alert, Area, Info, MsgType, ValuePair
from cap_schemas.rules import broadcast_immediately
from cap_schemas.tables import Crosswalk, capcp_to_same, same_events
from gateway.errors import ConfigError, TranslationError
from gateway.translate.common import (
    CAPCP_EVENT,
    CAPCP_LOCATION,
    ECCC_ALERT_TYPE,
    ECCC_SENDERS,
    SOREM_WIRELESS_TEXT,
    check_identity,
    crosswalk_option,
    derived_identifier,
    first_info,
    local,
    option_int,
    option_list,
    option_str,
    references_for,
    require_valid,
    zone,
)
from gateway.translate.locations import refuse_widening, us_from_sgc, widen_option
from gateway.translate.us_zones import zone_of_same_codes

CMAM_TEXT_MAX = 90
CMAM_LONG_TEXT_MAX = 360
_DROPPED_PREFIXES = ("layer:SOREM:", "NAADS:", "layer:NAADS:")
_OURS = frozenset({"EAS-ORG", "EAS-Must-Carry", "CMAMtext", "CMAMlongtext", "BLOCKCHANNEL"})
BLOCKCHANNELS = frozenset({"EAS", "NWEM", "CMAS", "PUBLIC", "CAPEXCH"})
AUTO_ZONE = "auto"
FALLBACK_ZONE = "America/New_York"  # "auto" with no US county to go by


@dataclass(frozen=True, slots=True)
class IpawsOptions:
    """What the operator configures on a route with ``translation = "ipaws"``."""

    sender: str = "borderlink@example.org"
    identifier_prefix: str = "borderlink"
    # "auto": the zone of the alert's first US county (see us_zones); or an IANA name.
    timezone: str = AUTO_ZONE
    blockchannels: tuple[str, ...] = ()
    default_hours: int = 6
    crosswalk: Crosswalk = field(default_factory=Crosswalk.default)
    # "province": a crosswalk row may give a whole state for a smaller Canadian area.
    widen: str = "none"

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> IpawsOptions:
        made = cls(
            sender=option_str(options, "sender", _DEFAULTS.sender),
            identifier_prefix=option_str(options, "identifier_prefix", _DEFAULTS.identifier_prefix),
            timezone=option_str(options, "timezone", _DEFAULTS.timezone),
            blockchannels=option_list(options, "blockchannel"),
            default_hours=option_int(options, "default_hours", _DEFAULTS.default_hours),
            crosswalk=crosswalk_option(options),
            widen=widen_option(options),
        )
        made.check()
        return made

    def check(self) -> None:
        check_identity(self.sender, self.identifier_prefix)
        if self.timezone != AUTO_ZONE:
            zone(self.timezone)
        bad = [b for b in self.blockchannels if b not in BLOCKCHANNELS]
        if bad:
            msg = f"blockchannel {bad[0]!r} is not one of {', '.join(sorted(BLOCKCHANNELS))}"
            raise ConfigError(msg)


_DEFAULTS = IpawsOptions(crosswalk=Crosswalk.empty())


def cut_words(text: str, limit: int) -> str:
    """``text`` with whitespace collapsed, cut at the last word boundary within ``limit``."""
    words = " ".join(text.split())
    if len(words) <= limit:
        return words
    cut = words[: limit + 1].rsplit(" ", 1)[0] if " " in words[:limit] else words[:limit]
    return cut[:limit].rstrip()


def choose_same_event(alert: Alert, *, us_only: bool = True) -> str:
    """The SAME event code for an alert: its own (if allowed), else the CAP-CP mapping."""
    info = first_info(alert)
    events = same_events()
    own = info.event_code("SAME")
    if own and own in events and (events[own].us_eas or not us_only):
        return own
    capcp = info.event_code(CAPCP_EVENT)
    if capcp is None:
        if own:
            msg = f"SAME event {own!r} may not be emitted by US EAS and no CAP-CP event is given"
            raise TranslationError(msg)
        msg = "the alert has neither a SAME nor a CAP-CP event code"
        raise TranslationError(msg)
    mapping = capcp_to_same(capcp, info.parameter(ECCC_ALERT_TYPE))
    return mapping.same if mapping is not None else "CEM"


def eas_org(alert: Alert) -> str:
    info = first_info(alert)
    own = info.parameter("EAS-ORG")
    if own in ("EAS", "CIV", "WXR", "PEP"):
        return own
    if alert.sender.lower() in ECCC_SENDERS:
        return "WXR"
    return "CIV"


def _areas(info: Info, crosswalk: Crosswalk, widen: str) -> tuple[Area, ...]:
    out = []
    for area in info.areas:
        same: dict[str, None] = {}
        for code in area.geocode_values(CAPCP_LOCATION):
            found = list(us_from_sgc(code, crosswalk))
            refuse_widening(found, widen, what="not translated to IPAWS")
            for location in found:
                same.setdefault(location.code, None)
        existing = set(area.geocode_values("SAME"))
        added = tuple(ValuePair("SAME", c) for c in same if c not in existing)
        out.append(replace(area, geocodes=area.geocodes + added))
    return tuple(out)


def _wireless(info: Info) -> tuple[ValuePair, ...]:
    text = info.parameter(SOREM_WIRELESS_TEXT)
    if not text or not text.strip():
        return ()
    pairs = [ValuePair("CMAMtext", cut_words(text, CMAM_TEXT_MAX))]
    if len(" ".join(text.split())) > CMAM_TEXT_MAX:
        pairs.append(ValuePair("CMAMlongtext", cut_words(text, CMAM_LONG_TEXT_MAX)))
    return tuple(pairs)


def _zone_name(configured: str, areas: Iterable[tuple[Area, ...]]) -> str:
    """The configured zone, or with ``auto`` the zone of the first US county translated."""
    if configured != AUTO_ZONE:
        return configured
    codes = (code for group in areas for area in group for code in area.geocode_values("SAME"))
    return zone_of_same_codes(codes) or FALLBACK_ZONE


def capcp_to_ipaws(
    alert: Alert, options: IpawsOptions | None = None, *, check: bool = True
) -> Alert:
    """Translate a CAP-CP alert to the IPAWS profile (see the module docstring)."""
    opts = options or IpawsOptions()
    if alert.msg_type in (MsgType.ACK, MsgType.ERROR):
        msg = f"a {alert.msg_type} message is not forwarded to IPAWS"
        raise TranslationError(msg)
    areas = {id(info): _areas(info, opts.crosswalk, opts.widen) for info in alert.infos}
    tz = zone(_zone_name(opts.timezone, areas.values()))
    same_code = choose_same_event(alert)
    org = eas_org(alert)
    must_carry = broadcast_immediately(alert)
    sent = alert.sent.astimezone(tz)
    default_expires = sent + timedelta(hours=opts.default_hours)
    tz_name = sent.tzname() or opts.timezone
    categories: dict[Any, None] = {}
    codes: dict[ValuePair, None] = {}
    for info in alert.infos:
        for c in info.categories:
            categories.setdefault(c, None)
        for ec in info.event_codes:
            if ec.name != "SAME":
                codes.setdefault(ec, None)
    event_codes = (*codes, ValuePair("SAME", same_code))
    english = first_info(alert)
    infos = []
    for info in alert.infos:
        params = [
            p
            for p in info.parameters
            if p.name not in _OURS
            and p.name != "timezone"
            and not p.name.startswith(_DROPPED_PREFIXES)
        ]
        params.append(ValuePair("EAS-ORG", org))
        if must_carry:
            params.append(ValuePair("EAS-Must-Carry", "True"))
        if info is english:
            params.extend(_wireless(info))
        params.extend(ValuePair("BLOCKCHANNEL", b) for b in opts.blockchannels)
        params.append(ValuePair("timezone", tz_name))
        expires: datetime = local(info.expires, tz) or default_expires
        infos.append(
            replace(
                info,
                categories=tuple(categories),
                event_codes=event_codes,
                effective=local(info.effective, tz),
                onset=local(info.onset, tz),
                expires=expires,
                parameters=tuple(params),
                areas=areas[id(info)],
            )
        )
    note = f"Translated from CAP-CP alert {alert.key} (sender {alert.sender}) by borderlink."
    if alert.note:
        note = f"{note} Original note: {alert.note}"
    result = Alert(
        identifier=derived_identifier(opts.identifier_prefix, alert.key),
        sender=opts.sender,
        sent=sent,
        status=alert.status,
        msg_type=alert.msg_type,
        scope=alert.scope,
        source=f"CAP-CP {alert.sender}",
        restriction=alert.restriction,
        addresses=alert.addresses,
        codes=("IPAWSv1.0",),
        note=note,
        references=references_for(alert, sender=opts.sender, prefix=opts.identifier_prefix, tz=tz),
        incidents=alert.incidents,
        infos=tuple(infos),
    )
    return require_valid(result, "ipaws") if check else result
