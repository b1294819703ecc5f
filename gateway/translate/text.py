"""CAP -> radio text sized for a radio link (APRS, pager, DMR talkgroup text, generic).

Rules (deterministic: the same alert and options always give the same parts):

* The author's short text comes first: SOREM ``WirelessText``, IPAWS ``CMAMtext``, NWS
  ``NWSheadline``. Without one the text is composed from the event name (SAME or CAP-CP
  tables), the area descriptions (three at most, then "+N") and the expiry in UTC.
* Update and Cancel say so first (``UPD``/``MAJ``, ``CANCELLED``/``ANNULE``).
* ``lang``: ``en``, ``fr`` or ``both`` (English then French, ``//`` between). A language the
  alert lacks is composed from the structured fields in that language.
* Every part starts with the priority word -- ``EMERG`` (Broadcast Immediately, must-carry,
  or Extreme + Immediate), ``URGENT`` (Extreme or Severe, or Immediate), ``ALERT``, or
  ``TEST`` (status other than Actual) -- and ``k/n`` when there are several parts.
* Parts are cut on word boundaries to fit ``budget`` characters (a word longer than a part is
  cut). ``ascii_only`` transliterates to 7-bit ASCII (é -> e, ’ -> ', « -> "); characters in
  ``forbidden`` are removed (APRS messages forbid ``|``, ``~`` and ``{``). The defaults of
  ``budget``, ``ascii_only`` and ``forbidden`` come from the ``radio`` profile
  (:data:`gateway.plaintext.PROFILES`); a radio sink declares its own profile, and the daemon
  refuses at start a route whose text would not fit it (:func:`profile_mismatch`), so the
  text is sized here once and the sink sends the parts as they are.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from cap_schemas.model import Alert, Info, MsgType, Severity, Status, Urgency
from cap_schemas.rules import broadcast_immediately
from cap_schemas.tables import capcp_events, same_events
from gateway.errors import ConfigError, TranslationError
from gateway.model import RadioText
from gateway.plaintext import PROFILES, TextProfile, clean, wrap
from gateway.translate.common import (
    CAPCP_EVENT,
    SOREM_WIRELESS_TEXT,
    option_int,
    option_str,
)

_MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTHS_FR = (
    "janv.",
    "févr.",
    "mars",
    "avr.",
    "mai",
    "juin",
    "juil.",
    "août",
    "sept.",
    "oct.",
    "nov.",
    "déc.",
)
# The named profiles of radio links (gateway.plaintext): a route's ``radio = "..."``.
RADIO_PROFILES: Mapping[str, TextProfile] = PROFILES


def to_ascii(text: str) -> str:
    """7-bit printable ASCII, single spaces (:func:`gateway.plaintext.clean`)."""
    return clean(text, ascii_only=True)


def priority_word(alert: Alert) -> str:
    if alert.status is not Status.ACTUAL:
        return "TEST"
    if broadcast_immediately(alert):
        return "EMERG"
    infos = alert.infos
    if any(i.severity is Severity.EXTREME and i.urgency is Urgency.IMMEDIATE for i in infos):
        return "EMERG"
    if any(
        i.severity in (Severity.EXTREME, Severity.SEVERE) or i.urgency is Urgency.IMMEDIATE
        for i in infos
    ):
        return "URGENT"
    return "ALERT"


def _event_name(info: Info, lang: str) -> str:
    same = info.event_code("SAME")
    events = same_events()
    if same and same in events:
        return events[same].name_fr if lang == "fr" else events[same].name_en
    capcp = info.event_code(CAPCP_EVENT)
    entry = capcp_events().get(capcp or "")
    if entry is not None:
        name = entry.name_fr if lang == "fr" and entry.name_fr else entry.name_en
        return name[:1].upper() + name[1:]
    return info.event


def _when(value: datetime, lang: str) -> str:
    utc = value.astimezone(UTC)
    if lang == "fr":
        return f"jusqu'au {utc.day} {_MONTHS_FR[utc.month - 1]} {utc:%H}h{utc:%M} UTC"
    return f"until {utc.day} {_MONTHS_EN[utc.month - 1]} {utc:%H:%M} UTC"


def _composed(info: Info, lang: str, *, until: bool = True) -> str:
    areas = [a.area_desc.strip() for a in info.areas if a.area_desc.strip()]
    shown = ", ".join(areas[:3]) + (f" +{len(areas) - 3}" if len(areas) > 3 else "")
    words = [_event_name(info, lang)]
    if shown:
        words.append(("pour " if lang == "fr" else "for ") + shown)
    if until and info.expires is not None:
        words.append(_when(info.expires, lang))
    return " ".join(words)


def short_text(alert: Alert, lang: str) -> str:
    """The text for one language (``en`` or ``fr``) before sizing."""
    if not alert.infos:
        msg = "the alert has no <info> block to render"
        raise TranslationError(msg)
    own = alert.info_for(lang)
    info = own or alert.infos[0]
    body = None
    if alert.msg_type is MsgType.CANCEL:
        # What was cancelled, for where; never the original's call to act (a cancel's wireless
        # text and headline often repeat it), nor an expiry that no longer applies.
        body = _composed(info, lang, until=False)
    elif own is not None:
        for name in (SOREM_WIRELESS_TEXT, "CMAMtext", "NWSheadline"):
            value = own.parameter(name)
            if value and value.strip():
                body = value
                break
    if body is None:
        body = _composed(info, lang)
    if alert.msg_type is MsgType.CANCEL:
        body = ("ANNULE: " if lang == "fr" else "CANCELLED: ") + body
    elif alert.msg_type is MsgType.UPDATE:
        body = ("MAJ: " if lang == "fr" else "UPD: ") + body
    return " ".join(body.split())


def split_parts(text: str, *, budget: int, prefix: str) -> tuple[str, ...]:
    """Numbered parts of at most ``budget`` characters, cut on word boundaries."""
    single = f"{prefix} "
    if len(single) + len(text) <= budget:
        return (f"{single}{text}".rstrip(),)
    count = 2
    for _ in range(8):
        header = len(f"{prefix} {count}/{count} ")
        width = budget - header
        if width < 1:
            msg = f"a budget of {budget} characters leaves no room after {prefix!r}"
            raise TranslationError(msg)
        chunks = wrap(text, width)
        if len(str(len(chunks))) <= len(str(count)):
            total = len(chunks)
            return tuple(f"{prefix} {i}/{total} {chunk}" for i, chunk in enumerate(chunks, 1))
        count = len(chunks)
    msg = "radio text could not be split"  # unreachable for budgets above a few characters
    raise TranslationError(msg)


def render_radio_text(
    alert: Alert,
    *,
    budget: int,
    lang: str = "en",
    ascii_only: bool = False,
    forbidden: str = "",
    max_parts: int = 16,
) -> RadioText:
    """The alert as radio text parts (see the module docstring)."""
    if lang not in ("en", "fr", "both"):
        msg = f"lang {lang!r} is not en, fr or both"
        raise ConfigError(msg)
    if budget < 16:
        msg = f"radio budget {budget} is too small (at least 16 characters)"
        raise ConfigError(msg)
    if lang == "both":
        text = f"{short_text(alert, 'en')} // {short_text(alert, 'fr')}"
        language = "en,fr"
    else:
        text = short_text(alert, lang)
        language = lang
    text = clean(text, ascii_only=ascii_only, forbidden=forbidden)
    prio = priority_word(alert)
    parts = split_parts(text, budget=budget, prefix=prio)
    if len(parts) > max_parts:
        kept = list(parts[:max_parts])
        kept[-1] = kept[-1][: budget - 3].rstrip() + "..."
        parts = tuple(kept)
    return RadioText(parts, language, prio)


def radio_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """Route options -> keyword arguments of :func:`render_radio_text`."""
    radio = option_str(options, "radio", "generic")
    if radio not in RADIO_PROFILES:
        msg = f"radio {radio!r} is not one of {', '.join(sorted(RADIO_PROFILES))}"
        raise ConfigError(msg)
    profile = RADIO_PROFILES[radio]
    ascii_only = options.get("ascii_only", profile.ascii_only)
    if not isinstance(ascii_only, bool):
        msg = "translation option 'ascii_only' must be true or false"
        raise ConfigError(msg)
    return {
        "budget": option_int(options, "budget", profile.budget),
        "lang": option_str(options, "lang", "en"),
        "ascii_only": ascii_only,
        "forbidden": option_str(options, "forbidden", profile.forbidden),
        "max_parts": option_int(options, "max_parts", 16),
    }


def profile_mismatch(options: Mapping[str, Any], profile: TextProfile) -> str | None:
    """Why text rendered with a route's ``options`` would not fit a sink's ``profile`` as it
    is (None when it fits): a larger budget, non-ASCII text for an ASCII radio, or characters
    the radio forbids."""
    kwargs = radio_options(options)
    if kwargs["budget"] > profile.budget:
        return f"parts of up to {kwargs['budget']} characters; it takes {profile.budget}"
    if profile.ascii_only and not kwargs["ascii_only"]:
        return "text that is not ASCII; it takes ASCII only (set ascii_only = true)"
    missing = "".join(c for c in profile.forbidden if c not in kwargs["forbidden"])
    if missing:
        return f"text that may contain {missing!r}, which it forbids"
    return None
