"""IPAWS profile / NWS CAP (United States) -> CAP-CP 0.4 (Canada).

Rules, in the order applied:

* ``<code>profile:CAP-CP:0.4`` and ``layer:SOREM:1.0``; a new identity in the operator's
  namespace; ``references`` name the source and our translations of what it references.
* One ``profile:CAP-CP:Event:0.4`` eventCode: the SAME eventCode through ``capcp_same_map.csv``
  (else a SAME event whose name is the ``<event>`` text, else ``other``); the SAME eventCode is
  kept beside it, as Environment Canada does.
* ``layer:SOREM:1.0:Broadcast_Immediately`` is ``Yes`` when the source is Actual and either
  carries ``EAS-Must-Carry=True`` or is Extreme + Immediate (+ Observed or Likely) -- the
  combinations the Canadian Broadcast Immediate list reserves for threats to life; ``No``
  otherwise. An operator route can still hold it.
* Areas: every US area whose ``SAME``/``FIPS6`` geocodes meet the crosswalk gets the facing
  ``profile:CAP-CP:Location:0.3`` SGC codes (polygons, circles and US geocodes kept). Areas
  with no Canadian counterpart are left out; an alert with none is refused (CAP-CP requires a
  Canadian location code on every area).
* English blocks are kept (CMAMtext becomes the SOREM WirelessText); other languages dropped.
* An ``fr-CA`` block is always produced from structured fields only: the French event name
  from the event tables, a headline composed from event, areas and expiry, area names from
  the location tables; the English description and instruction travel unchanged under a
  French notice that they are untranslated; ``profile:CAP-CP:0.4:AutoTranslated=Yes`` marks
  the block as produced by automation (CAP-CP rule R17; the parameter name follows the
  profile's ``profile:CAP-CP:0.4:MinorChange`` pattern).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from cap_schemas.model import Alert, Area, Info, MsgType, Severity, Status, Urgency, ValuePair
from cap_schemas.model import Certainty as Cert
from cap_schemas.rules import SOREM_BI
from cap_schemas.tables import (
    Crosswalk,
    capcp_events,
    fips_names,
    same_events,
    same_to_capcp,
    sgc_names,
    state_names,
)
from gateway.errors import ConfigError, TranslationError
from gateway.translate.common import (
    AUTO_TRANSLATED,
    CAPCP_EVENT,
    CAPCP_LOCATION,
    SOREM_WIRELESS_TEXT,
    check_identity,
    crosswalk_option,
    derived_identifier,
    option_str,
    references_for,
    require_valid,
)

_MONTHS_FR = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
UNTRANSLATED_FR = "Texte original en anglais, non traduit :"
INSTRUCTION_FR = "Consignes originales en anglais, non traduites :"
_COUNTY_FR = (
    (" County", "comté de "),
    (" Parish", "paroisse de "),
    (" Borough", "arrondissement de "),
    (" Census Area", "région de recensement de "),
    (" Municipality", "municipalité de "),
    (" Municipio", "municipalité de "),
)
_VOWELS = "AEIOUÀÂÉÈÊÎÔÛ"


@dataclass(frozen=True, slots=True)
class CapCpOptions:
    """What the operator configures on a route with ``translation = "cap-cp"``."""

    sender: str = "borderlink@example.org"
    identifier_prefix: str = "borderlink"
    crosswalk: Crosswalk = field(default_factory=Crosswalk.default)
    #: SGC code given to areas the crosswalk does not place (e.g. a border EOC whose route
    #: already filters by region); None leaves such areas out.
    fallback_sgc: str | None = None

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> CapCpOptions:
        fallback = options.get("fallback_sgc")
        if fallback is not None and (not isinstance(fallback, str) or not fallback.isdigit()):
            msg = f"translation option 'fallback_sgc' must be SGC digits, not {fallback!r}"
            raise ConfigError(msg)
        made = cls(
            sender=option_str(options, "sender", _DEFAULTS.sender),
            identifier_prefix=option_str(options, "identifier_prefix", _DEFAULTS.identifier_prefix),
            crosswalk=crosswalk_option(options),
            fallback_sgc=fallback,
        )
        check_identity(made.sender, made.identifier_prefix)
        return made


_DEFAULTS = CapCpOptions(crosswalk=Crosswalk.empty())


def french_datetime(value: datetime) -> str:
    """``le 27 août 2020 à 13 h 00 (UTC-05:00)`` -- the offset the source wrote."""
    offset = value.utcoffset() or timedelta(0)
    total = int(offset.total_seconds()) // 60
    sign = "-" if total < 0 else "+"
    hours, minutes = divmod(abs(total), 60)
    return (
        f"le {value.day} {_MONTHS_FR[value.month - 1]} {value.year} à "
        f"{value.hour} h {value.minute:02d} (UTC{sign}{hours:02d}:{minutes:02d})"
    )


def french_county(same_code: str) -> str | None:
    """``comté de Whatcom (Washington, É.-U.)`` from a SAME PSSCCC code."""
    ssccc = same_code[1:] if len(same_code) == 6 else same_code
    state = state_names().get(ssccc[:2])
    if state is None:
        return None
    if ssccc.endswith("000"):
        return f"{state} (É.-U.)"
    name = fips_names().get(ssccc)
    if name is None:
        return None
    county = name.rsplit(", ", 1)[0]
    for suffix, article in _COUNTY_FR:
        if county.endswith(suffix):
            base = county[: -len(suffix)]
            elided = article[:-3] + "d'" if base[:1].upper() in _VOWELS else article
            county = elided + base
            break
    return f"{county} ({state}, É.-U.)"


def _us_codes(area: Area) -> tuple[str, ...]:
    out: dict[str, None] = {}
    for name in ("SAME", "FIPS6"):
        for value in area.geocode_values(name):
            if len(value) == 6 and value.isdigit():
                out.setdefault(value, None)
    return tuple(out)


def choose_capcp_event(info: Info) -> tuple[str, str | None]:
    """(CAP-CP event code, SAME code used)."""
    events = same_events()
    same = info.event_code("SAME")
    if not same:
        wanted = info.event.strip().lower()
        same = next((c for c, e in events.items() if e.name_en.lower() == wanted), None)
    if same is not None:
        mapping = same_to_capcp(same)
        if mapping is not None:
            return mapping.capcp, same
    return "other", same


def broadcast_immediately(alert: Alert) -> bool:
    """The documented rule for SOREM Broadcast_Immediately (see the module docstring)."""
    if alert.status is not Status.ACTUAL or alert.msg_type is MsgType.CANCEL:
        return False
    for info in alert.infos:
        if (info.parameter("EAS-Must-Carry") or "").lower() == "true":
            return True
        if (
            info.severity is Severity.EXTREME
            and info.urgency is Urgency.IMMEDIATE
            and info.certainty in (Cert.OBSERVED, Cert.LIKELY)
        ):
            return True
    return False


def _french_event(capcp: str, same: str | None, english: str) -> str:
    """The French event name; with no equivalent, "autre" and the English name, marked."""
    entry = capcp_events().get(capcp)
    if same is not None and same in same_events():
        return same_events()[same].name_fr
    if capcp == "other":
        return f"autre (en anglais : {english})"
    if entry is not None and entry.name_fr:
        return entry.name_fr
    return entry.name_en if entry is not None else capcp


def ipaws_to_capcp(
    alert: Alert, options: CapCpOptions | None = None, *, check: bool = True
) -> Alert:
    """Translate an IPAWS or NWS alert to CAP-CP 0.4 (see the module docstring)."""
    opts = options or CapCpOptions()
    if alert.msg_type in (MsgType.ACK, MsgType.ERROR):
        msg = f"a {alert.msg_type} message is not forwarded to the NAAD System"
        raise TranslationError(msg)
    english = [i for i in alert.infos if i.language.lower().startswith("en")]
    if not english:
        english = list(alert.infos[:1])
    if not english:
        msg = "the alert has no <info> block to translate"
        raise TranslationError(msg)
    first = english[0]
    capcp, same = choose_capcp_event(first)
    event_codes: tuple[ValuePair, ...] = (ValuePair(CAPCP_EVENT, capcp),)
    if same is not None:
        event_codes += (ValuePair("SAME", same),)
    bi = "Yes" if broadcast_immediately(alert) else "No"
    sgc_name = sgc_names()

    def canadian(area: Area) -> tuple[tuple[str, ...], tuple[str, ...]]:
        sgcs: dict[str, None] = {}
        us = _us_codes(area)
        for code in us:
            for s in opts.crosswalk.sgc_for_us(code):
                sgcs.setdefault(s, None)
        if not sgcs and opts.fallback_sgc:
            sgcs[opts.fallback_sgc] = None
        return tuple(sgcs), us

    en_infos = []
    fr_source: list[tuple[Area, tuple[str, ...], tuple[str, ...]]] = []
    for info in english:
        areas = []
        for area in info.areas:
            sgcs, us = canadian(area)
            if not sgcs:
                continue
            extra = tuple(ValuePair(CAPCP_LOCATION, s) for s in sgcs)
            areas.append(replace(area, geocodes=area.geocodes + extra))
            if info is first:
                fr_source.append((area, sgcs, us))
        if not areas:
            msg = (
                "no area of the alert meets a Canadian location through the crosswalk "
                "(CAP-CP needs an SGC code on every area)"
            )
            raise TranslationError(msg)
        params = [p for p in info.parameters if p.name not in (SOREM_BI, AUTO_TRANSLATED)]
        params.insert(0, ValuePair(SOREM_BI, bi))
        cmam = info.parameter("CMAMtext")
        if cmam and not info.parameter(SOREM_WIRELESS_TEXT):
            params.append(ValuePair(SOREM_WIRELESS_TEXT, cmam))
        en_infos.append(
            replace(
                info,
                language="en-US" if info.language.lower() == "en" else info.language,
                event_codes=event_codes,
                parameters=tuple(params),
                areas=tuple(areas),
            )
        )

    event_fr = _french_event(capcp, same, first.event)
    fr_areas = []
    names_fr: list[str] = []
    for area, sgcs, us in fr_source:
        us_names = [n for n in (french_county(c) for c in us) if n]
        facing = [sgc_name.get(s) or s for s in sgcs]
        desc = "; ".join(us_names) if us_names else area.area_desc
        names_fr.extend(us_names or [area.area_desc])
        fr_areas.append(
            replace(
                area,
                area_desc=f"{desc} — en face de : {', '.join(facing)}",
                geocodes=area.geocodes + tuple(ValuePair(CAPCP_LOCATION, s) for s in sgcs),
            )
        )
    shown = names_fr[:3] + (
        [f"et {len(names_fr) - 3} autres secteurs"] if len(names_fr) > 3 else []
    )
    headline = f"{event_fr[:1].upper()}{event_fr[1:]} en vigueur pour {', '.join(shown)}"
    if first.expires is not None:
        headline += f" jusqu'au {french_datetime(first.expires)[3:]}"
    if alert.msg_type is MsgType.CANCEL:
        headline = f"Annulé : {headline}"
    elif alert.msg_type is MsgType.UPDATE:
        headline = f"Mise à jour : {headline}"
    description = None
    if first.description or first.headline:
        original = f"{first.headline or ''}\n{first.description or ''}".strip()
        description = f"{UNTRANSLATED_FR}\n{original}"
    instruction = f"{INSTRUCTION_FR}\n{first.instruction}" if first.instruction else None
    fr_params = (
        ValuePair(SOREM_BI, bi),
        ValuePair(AUTO_TRANSLATED, "Yes"),
    )
    french = Info(
        categories=first.categories,
        event=event_fr,
        urgency=first.urgency,
        severity=first.severity,
        certainty=first.certainty,
        language="fr-CA",
        response_types=first.response_types,
        audience=first.audience,
        event_codes=event_codes,
        effective=first.effective,
        onset=first.onset,
        expires=first.expires,
        sender_name=first.sender_name,
        headline=headline,
        description=description,
        instruction=instruction,
        web=first.web,
        contact=first.contact,
        parameters=fr_params,
        resources=first.resources,
        areas=tuple(fr_areas),
    )
    note = f"Translated from {alert.sender} alert {alert.key} by borderlink."
    if alert.note:
        note = f"{note} Original note: {alert.note}"
    result = Alert(
        identifier=derived_identifier(opts.identifier_prefix, alert.key),
        sender=opts.sender,
        sent=alert.sent,
        status=alert.status,
        msg_type=alert.msg_type,
        scope=alert.scope,
        source=f"IPAWS {alert.sender}",
        restriction=alert.restriction,
        addresses=alert.addresses,
        codes=("profile:CAP-CP:0.4", "layer:SOREM:1.0"),
        note=note,
        references=references_for(
            alert, sender=opts.sender, prefix=opts.identifier_prefix, tz=None
        ),
        incidents=alert.incidents,
        infos=(*en_infos, french),
    )
    return require_valid(result, "cap-cp") if check else result
