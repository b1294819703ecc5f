"""One identity across feeds: recognising the same message arriving by another path.

The CAP identity of a message is ``(sender, identifier, sent)``; a second copy with the same
key is a duplicate. But the same NWS warning reaches us as IPAWS-OPEN writes it
(``NWS-IDP-PROD-...`` identifiers) and as api.weather.gov writes it (``urn:oid:...``), a relay
re-issues an alert under its own sender, and an off-air SAME header becomes an alert of its
own. This module gives every alert the **identity keys** that recognise such copies, and
picks the rule that links a new alert to a stored one (pure: facts in, match out).

Rules, strongest first (the first that matches wins):

``references``
    *relay*: the alert references a stored alert of **another sender** with the same
    msgType and the same event (a relay names what it relays), or such a stored alert
    references it (the relay came first); *chain*: an Update or Cancel
    with the same msgType and ``sent`` instant as a stored one, referencing the same events
    (each path's copies of what it updates are linked already, so the updates are too).
``vtec``
    the NWS VTEC event (product class, office, phenomenon, significance, event tracking
    number) with its zones (UGC, else SAME codes) and the issue time (``sent``, as both
    paths write it).
``same``
    the SAME header the alert stands for, without the station id: originator, event,
    locations (as a set) and issue time (JJJHHMM, with the year) -- between an alert made
    from a header heard off air (SAME -> CAP, marked ``borderlink:authenticated``) and
    another sender's alert (or header): two CAP alerts of their own with one header are two
    messages, and so are one sender's two identifiers.
``window``
    the same event (SAME code, CAP-CP event code, else the event name) for one of the same
    places within :data:`WINDOW` of each other: **logged and counted, never linking or
    suppressing by itself**. Its keys carry the number of the window ``sent`` falls in, so a
    lookup reads only the alerts sent in the windows around it, however many the place has.

A key is a string whose prefix names its rule (``vtec:``, ``same:`` -- ``heard:`` for a
header heard off air --, ``window:``, ``chain:``; ``relay:`` for a stored relay found through
its references); the ledger stores the keys of every alert and finds the stored alerts that
share one. Receipts (Ack, Error) have no identity keys.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from cap_schemas.model import Alert, AlertKey, MsgType
from cap_schemas.parse import parse_cap_time
from cap_schemas.same_cap import DERIVED_PARAMETER
from cap_schemas.tables import Crosswalk
from gateway.errors import TranslationError
from gateway.translate.same import alert_to_same

__all__ = [
    "MAX_WINDOW_KEYS",
    "SUPPRESSING",
    "WINDOW",
    "Probe",
    "Rule",
    "chain_key",
    "heard_off_air",
    "identity_keys",
    "probe",
    "relay_key",
    "rule_of",
    "same_key",
    "vtec_key",
    "window_keys",
]


class Rule(enum.StrEnum):
    """How an alert was recognised as a copy of a stored one."""

    REFERENCES = "references"
    VTEC = "vtec"
    SAME = "same"
    WINDOW = "window"  # logged only


# The rules that link a copy to its event (and keep it from being delivered again), in order.
SUPPRESSING = (Rule.REFERENCES, Rule.VTEC, Rule.SAME)
WINDOW = timedelta(minutes=30)
MAX_WINDOW_KEYS = 64  # an alert naming hundreds of places is looked up by the first 64

_PREFIX = {
    "relay": Rule.REFERENCES,
    "chain": Rule.REFERENCES,
    "vtec": Rule.VTEC,
    "same": Rule.SAME,
    "heard": Rule.SAME,
    "window": Rule.WINDOW,
}
# P-VTEC: /k.aaa.cccc.pp.s.####.yymmddThhnnZ-yymmddThhnnZ/ (NWSI 10-1703)
_VTEC = re.compile(
    r"/([OTEX])\.([A-Z]{3})\.([A-Z]{4})\.([A-Z]{2})\.([A-Z])\.(\d{4})\."
    r"\d{6}T\d{4}Z-\d{6}T\d{4}Z/"
)
_ZONE_NAMES = ("UGC",)
_SAME_NAMES = ("SAME", "FIPS6")
_PLACE_NAMES = (
    "SAME",
    "FIPS6",
    "UGC",
    "profile:CAP-CP:Location:0.3",
    "layer:EC-MSC-SMC:1.0:CLC",
)
_EVENT_NAMES = ("SAME", "profile:CAP-CP:Event:0.4")
_RECEIPTS = (MsgType.ACK, MsgType.ERROR)


def rule_of(key: str) -> Rule:
    """The rule an identity key belongs to (``chain:`` keys are the references rule)."""
    return _PREFIX[key.split(":", 1)[0]]


def _utc(when: datetime) -> str:
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def vtec_events(alert: Alert) -> tuple[str, ...]:
    """The VTEC events of an alert (``O.KLCH.HU.W.1013``), sorted, without repeats."""
    found = {
        ".".join((m.group(1), m.group(3), m.group(4), m.group(5), m.group(6)))
        for info in alert.infos
        for p in info.parameters
        if p.name == "VTEC"
        for m in _VTEC.finditer(p.value.strip())
    }
    return tuple(sorted(found))


def _geocodes(alert: Alert, names: Sequence[str], *, qualified: bool = False) -> list[str]:
    """The alert's geocode values of ``names`` (``name=value`` when ``qualified``), sorted."""
    return sorted(
        {
            f"{g.name}={g.value.strip()}" if qualified else g.value.strip()
            for info in alert.infos
            for area in info.areas
            for g in area.geocodes
            if g.name in names and g.value.strip()
        }
    )


def vtec_key(alert: Alert) -> str | None:
    """``vtec:<events>|<zones>|<sent UTC>``, or None without a VTEC event or a zone."""
    events = vtec_events(alert)
    zones = _geocodes(alert, _ZONE_NAMES) or _geocodes(alert, _SAME_NAMES)
    if not events or not zones:
        return None
    return f"vtec:{','.join(events)}|{','.join(zones)}|{_utc(alert.sent)}"


def same_key(alert: Alert) -> str | None:
    """``same:ORG-EEE-<locations>-<YYYYJJJHHMM>``: the SAME header the gateway would air for
    the alert, without its station and duration; None when it would air none."""
    try:
        header = alert_to_same(alert, station="", now=alert.sent, crosswalk=Crosswalk.empty())
    except TranslationError:
        return None
    places = "-".join(sorted(header.locations))
    return f"same:{header.originator}-{header.event}-{places}-{header.issued:%Y%j%H%M}"


def _event_code(alert: Alert) -> str:
    for info in alert.infos:
        for name in _EVENT_NAMES:
            code = info.event_code(name)
            if code:
                return f"{name}={code.strip()}"
    first = alert.infos[0].event.strip().lower() if alert.infos else ""
    return f"event={first}" if first else ""


def _bucket(when: datetime) -> int:
    return int(when.timestamp() // WINDOW.total_seconds())


def window_keys(alert: Alert, *, around: bool = False) -> tuple[str, ...]:
    """``window:<event>|<place>|<n>`` for each place of the alert (at most
    :data:`MAX_WINDOW_KEYS`), ``n`` numbering the :data:`WINDOW` its ``sent`` falls in;
    ``around``: also the windows before and after (what a lookup asks for, so that it reads
    only alerts sent near it). The exact time difference is checked when two alerts meet."""
    event = _event_code(alert)
    if not event:
        return ()
    places = _geocodes(alert, _PLACE_NAMES, qualified=True)[:MAX_WINDOW_KEYS]
    now = _bucket(alert.sent)
    buckets = (now - 1, now, now + 1) if around else (now,)
    return tuple(f"window:{event}|{place}|{n}" for place in places for n in buckets)


def relay_key(key: AlertKey) -> str:
    """``relay:<key>``: how a stored relay that references ``key`` is found (looked up in the
    stored references, never stored as a key itself)."""
    return f"relay:{key}"


def chain_key(msg_type: str, sent: datetime, events: Iterable[str]) -> str | None:
    """``chain:<msgType>|<sent UTC>|<events>`` for an Update or Cancel whose references are
    stored (``events``: the event of each); None for any other message."""
    found = sorted(set(events))
    if msg_type not in (MsgType.UPDATE.value, MsgType.CANCEL.value) or not found:
        return None
    return f"chain:{msg_type}|{_utc(sent)}|{' '.join(found)}"


def heard_off_air(alert: Alert) -> bool:
    """Whether the alert was made from a SAME header heard off air (SAME -> CAP)."""
    return any(p.name == DERIVED_PARAMETER for info in alert.infos for p in info.parameters)


def identity_keys(alert: Alert) -> tuple[str, ...]:
    """The keys of an alert that do not depend on what is stored (the chain key does); the
    SAME key of a header heard off air is stored as ``heard:``."""
    if alert.msg_type in _RECEIPTS:
        return ()
    same = same_key(alert)
    if same and heard_off_air(alert):
        same = "heard:" + same.removeprefix("same:")
    keys = [vtec_key(alert), same]
    return (*(k for k in keys if k), *window_keys(alert))


def _lookup(key: str) -> tuple[str, ...]:
    """What a key looks for: a CAP alert's SAME key finds headers heard off air, a heard
    header's finds both."""
    if key.startswith("same:"):
        return ("heard:" + key.removeprefix("same:"),)
    if key.startswith("heard:"):
        return (key, "same:" + key.removeprefix("heard:"))
    return (key,)


@dataclass(frozen=True, slots=True)
class Probe:
    """What the ledger looks up for an alert being admitted: its own identity keys (stored
    with it), the keys it looks for (its own, with the neighbouring time windows), and the
    msgType and ``sent`` its chain key is made of once its references' events are read."""

    keys: tuple[str, ...]
    lookup: tuple[str, ...]
    msg_type: str
    sent: datetime

    def chain(self, events: Iterable[str]) -> str | None:
        return chain_key(self.msg_type, self.sent, events)


def probe(alert: Alert) -> Probe | None:
    """The probe of an alert; None for a receipt (never linked to an event).

    An admission asks for the probe of its alert three times (the facts it reads, the
    decision, the record); the last alert's probe is kept, so it is made once. Alerts are
    immutable, and the one kept is held, so its identity cannot name another alert.
    """
    last = _LAST_PROBE[0]
    if last is not None and last[0] is alert:
        return last[1]
    made = _probe(alert)
    _LAST_PROBE[0] = (alert, made)  # one store: a thread reads a whole pair or the other
    return made


_LAST_PROBE: list[tuple[Alert, Probe | None] | None] = [None]


def _probe(alert: Alert) -> Probe | None:
    if alert.msg_type in _RECEIPTS:
        return None
    keys = identity_keys(alert)
    linking = (found for k in keys if not k.startswith("window:") for found in _lookup(k))
    lookup = (*linking, *window_keys(alert, around=True))
    return Probe(keys, lookup, alert.msg_type.value, alert.sent)


@functools.lru_cache(maxsize=4096)  # the same stored keys come back admission after admission
def sent_of(key_sent: str) -> datetime | None:
    """A stored key's ``sent`` as a time (None when it does not read as one)."""
    try:
        return parse_cap_time(key_sent, lenient=True)
    except ValueError:
        return None
