"""CAP-CP (Canadian Profile of CAP, version 0.4) rules, with the NAAD System (SOREM) layer.

Rule numbers follow the "CAP-CP Intro & Rules" document (beta 0.4) as encoded in
google/cap-library's ``CanadianProfile``; that validator leaves event codes, location codes
and layers unchecked, which this module adds:

* event codes against the CAP-CP event list (``cap_schemas/data/capcp_events.csv``);
* ``profile:CAP-CP:Location:0.3`` geocodes as Statistics Canada SGC digits;
* the SOREM layer parameters used by NAAD last-mile distributors.

Rule ids start with ``capcp.``.
"""

from __future__ import annotations

import csv
import functools
import io
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from importlib import resources

from cap_schemas.model import Alert, Info, MsgType, Status, ValuePair
from cap_schemas.rules import ERROR, INFO, SOREM_BI, WARNING, Finding, area_path, info_path

PROFILE_CODE_PREFIX = "profile:CAP-CP:"
PROFILE_CODE = "profile:CAP-CP:0.4"
EVENT_PREFIX = "profile:CAP-CP:Event:"
EVENT_NAME = "profile:CAP-CP:Event:0.4"
LOCATION_PREFIX = "profile:CAP-CP:Location:"

SOREM_BROADCAST_TEXT = "layer:SOREM:1.0:Broadcast_Text"
SOREM_WIRELESS_IMMEDIATE = "layer:SOREM:2.0:WirelessImmediate"
SOREM_WIRELESS_TEXT = "layer:SOREM:2.0:WirelessText"
MINOR_CHANGE = "profile:CAP-CP:0.4:MinorChange"

EC_CLC = "layer:EC-MSC-SMC:1.0:CLC"
EC_BROADCAST_INTRUSIVE = "layer:EC-MSC-SMC:1.0:Broadcast_Intrusive"
_CLC = re.compile(r"^\d{6}$")

# Wireless Public Alerting text: 600 characters, the limit last-mile implementations quote for
# WPA text (the NAAD System guide itself was not available to us), hence only a warning.
WIRELESS_TEXT_MAX = 600

# SGC codes: 2 digits province/territory, 4 census division, 7 census subdivision; ECCC also
# uses 1, 3 and 5 digit codes for all of Canada and marine regions/zones.
_SGC = re.compile(r"^\d{1,5}$|^\d{7}$")


@dataclass(frozen=True, slots=True)
class CapCpEvent:
    """One entry of the CAP-CP event list."""

    code: str
    name_en: str
    name_fr: str


@functools.cache
def capcp_events() -> Mapping[str, CapCpEvent]:
    """The CAP-CP event list, code -> :class:`CapCpEvent` (read once from the data file)."""
    text = (
        resources.files("cap_schemas").joinpath("data/capcp_events.csv").read_text(encoding="utf-8")
    )
    lines = [line for line in text.splitlines() if line and not line.startswith("#")]
    events: dict[str, CapCpEvent] = {}
    for row in csv.DictReader(io.StringIO("\n".join(lines))):
        code = row["code"].strip()
        events[code] = CapCpEvent(code, row["name_en"].strip(), row["name_fr"].strip())
    return events


def is_capcp(alert: Alert) -> bool:
    return any(code.startswith(PROFILE_CODE_PREFIX) for code in alert.codes)


def check(alert: Alert, profile: str) -> Iterator[Finding]:
    yield from _alert_level(alert)
    event_sets: list[frozenset[tuple[str, str]]] = []
    for i, info in enumerate(alert.infos):
        base = info_path(i)
        codes = frozenset((c.name, c.value) for c in info.event_codes)
        if event_sets and codes != event_sets[0]:
            yield Finding(
                ERROR,
                "capcp.R2-event-codes-match",
                base,
                "all <info> blocks must carry the same <eventCode>s (one event per alert)",
            )
        event_sets.append(codes)
        yield from _event_code(info.event_codes, base)
        yield from _event_name(info.event, info.language, info.event_codes, base)
        if not info.areas:
            yield Finding(ERROR, "capcp.R10-area", base, "at least one <area> is required")
        for j, area in enumerate(info.areas):
            apath = area_path(i, j)
            locations = [g for g in area.geocodes if g.name.startswith(LOCATION_PREFIX)]
            if not locations:
                yield Finding(
                    ERROR,
                    "capcp.R9-location-code",
                    apath,
                    f"each <area> needs a <geocode> {LOCATION_PREFIX}0.3 (SGC code)",
                )
            for code in locations:
                if not _SGC.match(code.value):
                    yield Finding(
                        ERROR if not code.value.isdigit() else WARNING,
                        "capcp.location-syntax",
                        f"{apath}/geocode",
                        f"{code.name} value {code.value!r} is not a Statistics Canada SGC code "
                        "(2, 4 or 7 digits)"
                        + (" — it looks like an ECCC CLC" if len(code.value) == 6 else ""),
                    )
            if not area.area_desc.strip():
                yield Finding(
                    ERROR, "capcp.area-desc", f"{apath}/areaDesc", "<areaDesc> must not be empty"
                )
        yield from _sorem(info.parameters, base)
        yield from _eccc_layer(info, i)
        yield from _recommendations(alert, i)
        if any(p.name == MINOR_CHANGE for p in info.parameters) and (
            alert.msg_type is not MsgType.UPDATE
        ):
            yield Finding(
                WARNING,
                "capcp.R16-minor-change",
                f"{base}/parameter",
                f"{MINOR_CHANGE} flags a non-substantive Update but msgType is {alert.msg_type}",
            )
    yield from _languages(alert)


def _alert_level(alert: Alert) -> Iterator[Finding]:
    versions = [c for c in alert.codes if c.startswith(PROFILE_CODE_PREFIX)]
    if not versions:
        yield Finding(
            ERROR,
            "capcp.R3-version-code",
            "/alert",
            f"<code>{PROFILE_CODE}</code> (the CAP-CP version) is required",
        )
    elif PROFILE_CODE not in versions:
        yield Finding(
            WARNING,
            "capcp.R3-version-code",
            "/alert/code",
            f"CAP-CP version {versions[0]!r} is not {PROFILE_CODE}, the version checked here",
        )
    public = alert.msg_type not in (MsgType.ACK, MsgType.ERROR) and alert.status is not (
        Status.SYSTEM
    )
    if public and not alert.infos:
        yield Finding(
            ERROR,
            "capcp.R5-info",
            "/alert",
            "an alert for public distribution needs at least one <info>",
        )


def _event_code(codes: tuple[ValuePair, ...], base: str) -> Iterator[Finding]:
    events = capcp_events()
    found = [c for c in codes if c.name.startswith(EVENT_PREFIX)]
    if not found:
        yield Finding(
            ERROR,
            "capcp.R8-event-code",
            base,
            f"an <eventCode> {EVENT_NAME} from the CAP-CP event list is required",
        )
        return
    for code in found:
        name = code.name
        value = code.value
        if name != EVENT_NAME:
            yield Finding(
                WARNING,
                "capcp.R8-event-code",
                f"{base}/eventCode",
                f"event list version {name!r} is not {EVENT_NAME}",
            )
        elif value not in events:
            yield Finding(
                WARNING,
                "capcp.event-list",
                f"{base}/eventCode",
                f"event code {value!r} is not in the CAP-CP event list we carry",
            )


def _event_name(
    event: str, language: str, codes: tuple[ValuePair, ...], base: str
) -> Iterator[Finding]:
    """Rule 7: use the established <event> name of the event code, in the block's language."""
    known = capcp_events().get(next((c.value for c in codes if c.name == EVENT_NAME), ""))
    if known is None:
        return
    lang = language.lower()
    expected = known.name_fr if lang.startswith("fr") else known.name_en
    if lang.startswith(("en", "fr")) and expected and event.strip().lower() != expected.lower():
        yield Finding(
            INFO,
            "capcp.R7-event-name",
            f"{base}/event",
            f"<event> {event!r} differs from the established name {expected!r} of event code "
            f"{known.code!r}",
        )


def _yes_no(params: tuple[ValuePair, ...], name: str, base: str) -> Iterator[Finding]:
    for p in params:
        if p.name == name and p.value not in ("Yes", "No"):
            yield Finding(
                ERROR,
                "capcp.sorem",
                f"{base}/parameter",
                f"{name} must be Yes or No, not {p.value!r}",
            )


def _sorem(params: tuple[ValuePair, ...], base: str) -> Iterator[Finding]:
    yield from _yes_no(params, SOREM_BI, base)
    yield from _yes_no(params, SOREM_WIRELESS_IMMEDIATE, base)
    names = [p.name for p in params]
    for name in (SOREM_BI, SOREM_WIRELESS_IMMEDIATE):
        if names.count(name) > 1:
            yield Finding(
                ERROR, "capcp.sorem", f"{base}/parameter", f"{name} appears more than once"
            )
    for p in params:
        name = p.name
        value = p.value
        if name == SOREM_WIRELESS_TEXT:
            if not value.strip():
                yield Finding(ERROR, "capcp.sorem", f"{base}/parameter", f"{name} is empty")
            elif len(value) > WIRELESS_TEXT_MAX:
                # A warning: the limit is quoted by implementers, not read in the NAAD guide.
                yield Finding(
                    WARNING,
                    "capcp.sorem",
                    f"{base}/parameter",
                    f"{name} is {len(value)} characters, over the {WIRELESS_TEXT_MAX} "
                    "characters of a wireless public alert",
                )
        elif name == SOREM_BROADCAST_TEXT and not value.strip():
            yield Finding(WARNING, "capcp.sorem", f"{base}/parameter", f"{name} is empty")
    wireless_yes = any(p.name == SOREM_WIRELESS_IMMEDIATE and p.value == "Yes" for p in params)
    if wireless_yes and SOREM_WIRELESS_TEXT not in names:
        yield Finding(
            WARNING,
            "capcp.sorem",
            f"{base}/parameter",
            f"{SOREM_WIRELESS_IMMEDIATE}=Yes without {SOREM_WIRELESS_TEXT}: phones will show "
            "text derived from the headline",
        )


def _eccc_layer(info: Info, i: int) -> Iterator[Finding]:
    """Environment Canada layer (``layer:EC-MSC-SMC``): 6-digit CLC geocodes (what Canadian
    SAME encoders use as location codes) and the yes/no Broadcast_Intrusive flag."""
    base = info_path(i)
    for value in info.parameter_values(EC_BROADCAST_INTRUSIVE):
        if value.lower() not in ("yes", "no"):
            yield Finding(
                WARNING,
                "capcp.eccc-layer",
                f"{base}/parameter",
                f"{EC_BROADCAST_INTRUSIVE} must be yes or no, not {value!r}",
            )
    for j, area in enumerate(info.areas):
        for value in area.geocode_values(EC_CLC):
            if not _CLC.match(value):
                yield Finding(
                    WARNING,
                    "capcp.eccc-layer",
                    f"{area_path(i, j)}/geocode",
                    f"{EC_CLC} value {value!r} is not a 6-digit Canadian Location Code",
                )


def _recommendations(alert: Alert, i: int) -> Iterator[Finding]:
    info = alert.infos[i]
    base = info_path(i)
    if info.expires is None:
        yield Finding(WARNING, "capcp.R13-expires", base, "<expires> is strongly recommended")
    if not info.sender_name:
        yield Finding(
            WARNING, "capcp.R14-sender-name", base, "<senderName> is strongly recommended"
        )
    if not info.response_types:
        yield Finding(INFO, "capcp.R15-response", base, "<responseType> is recommended")
    if not info.instruction:
        yield Finding(INFO, "capcp.R15-response", base, "<instruction> is recommended")
    if info.areas and not any(a.polygons or a.circles for a in info.areas):
        yield Finding(
            INFO,
            "capcp.R18-polygon",
            f"{base}/area[1]",
            "a <polygon> or <circle> is encouraged as the more accurate area",
        )


def _languages(alert: Alert) -> Iterator[Finding]:
    if not alert.infos:
        return
    langs = {info.language.lower() for info in alert.infos}
    english = any(lang == "en" or lang.startswith("en-") for lang in langs)
    french = any(lang == "fr" or lang.startswith("fr-") for lang in langs)
    if not (english and french):
        missing = "French (fr-CA)" if english else "English (en-CA)"
        if not english and not french:
            missing = "English (en-CA) and French (fr-CA)"
        yield Finding(
            WARNING,
            "capcp.R6-languages",
            "/alert",
            f"CAP-CP asks for English and French <info> blocks; {missing} is missing",
        )
