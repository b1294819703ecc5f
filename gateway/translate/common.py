"""Helpers shared by the translations: derived identities, option reading, event choice."""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import replace
from datetime import datetime, tzinfo
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from cap_schemas.errors import CapParseError
from cap_schemas.model import Alert, AlertKey, Info, format_cap_datetime
from cap_schemas.parse import parse_cap_time
from cap_schemas.rules import Finding
from cap_schemas.tables import Crosswalk, TableError
from gateway.errors import ConfigError, TranslationError

ECCC_SENDERS = frozenset({"cap-pac@canada.ca", "cap-pac@ec.gc.ca", "cap@ec.gc.ca"})
CAPCP_EVENT = "profile:CAP-CP:Event:0.4"
CAPCP_LOCATION = "profile:CAP-CP:Location:0.3"
ECCC_CLC = "layer:EC-MSC-SMC:1.0:CLC"
ECCC_ALERT_TYPE = "layer:EC-MSC-SMC:1.0:Alert_Type"
SOREM_WIRELESS_TEXT = "layer:SOREM:2.0:WirelessText"
AUTO_TRANSLATED = "profile:CAP-CP:0.4:AutoTranslated"
_BAD_ID = re.compile(r"[\s,<&]")


def derived_identifier(prefix: str, key: AlertKey) -> str:
    """A stable identifier in the operator's namespace for the translation of ``key``.

    The same source always yields the same identifier (a restart, a second feed or a
    heartbeat backfill produce no new alert downstream).
    """
    digest = hashlib.sha256(str(key).encode("utf-8")).hexdigest()[:24]
    return f"{prefix}-{digest}"


def check_identity(sender: str, prefix: str) -> None:
    for name, value in (("sender", sender), ("identifier_prefix", prefix)):
        if not value or _BAD_ID.search(value):
            msg = f"{name} {value!r} must be non-empty without spaces, commas, '<' or '&'"
            raise ConfigError(msg)


def derived_reference(
    ref: AlertKey, *, sender: str, prefix: str, tz: tzinfo | None
) -> AlertKey | None:
    """The key our translation of ``ref`` has (None when its time cannot be read)."""
    try:
        sent = parse_cap_time(ref.sent, where="reference")
    except CapParseError:
        return None
    if tz is not None:
        sent = sent.astimezone(tz)
    return AlertKey(sender, derived_identifier(prefix, ref), format_cap_datetime(sent))


def references_for(
    alert: Alert, *, sender: str, prefix: str, tz: tzinfo | None
) -> tuple[AlertKey, ...]:
    """The source itself, then our translations of everything the source references."""
    out: dict[AlertKey, None] = {alert.key: None}
    for ref in alert.references:
        derived = derived_reference(ref, sender=sender, prefix=prefix, tz=tz)
        if derived is not None:
            out.setdefault(derived, None)
    return tuple(out)


def zone(name: str) -> ZoneInfo:
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        msg = f"timezone {name!r} is not an IANA zone name (e.g. America/New_York)"
        raise ConfigError(msg) from None


def local(value: datetime | None, tz: tzinfo) -> datetime | None:
    return None if value is None else value.astimezone(tz)


def option_str(options: Mapping[str, Any], key: str, default: str) -> str:
    value = options.get(key, default)
    if not isinstance(value, str):
        msg = f"translation option {key!r} must be a string, not {type(value).__name__}"
        raise ConfigError(msg)
    return value


def option_int(options: Mapping[str, Any], key: str, default: int) -> int:
    value = options.get(key, default)
    if isinstance(value, bool) or not isinstance(value, int):
        msg = f"translation option {key!r} must be an integer, not {value!r}"
        raise ConfigError(msg)
    return value


def option_list(options: Mapping[str, Any], key: str) -> tuple[str, ...]:
    value = options.get(key, ())
    if isinstance(value, str):
        return (value,)
    if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
        msg = f"translation option {key!r} must be a list of strings"
        raise ConfigError(msg)
    return tuple(value)


def crosswalk_option(options: Mapping[str, Any]) -> Crosswalk:
    """``crosswalk = "path.csv"`` (or ``"none"``); the shipped border example otherwise."""
    value = options.get("crosswalk")
    if value is None or value == "default":
        return Crosswalk.default()
    if isinstance(value, Crosswalk):
        return value
    if value == "none":
        return Crosswalk.empty()
    if not isinstance(value, str):
        msg = "translation option 'crosswalk' must be a file path, 'default' or 'none'"
        raise ConfigError(msg)
    try:
        stamp = Path(value).stat().st_mtime_ns
    except OSError as exc:
        msg = f"crosswalk {value}: {exc.strerror or exc}"
        raise ConfigError(msg) from exc
    try:
        return _crosswalk_file(value, stamp)
    except TableError as exc:
        raise ConfigError(str(exc)) from exc


@functools.lru_cache(maxsize=32)
def _crosswalk_file(path: str, _stamp: int) -> Crosswalk:
    """A crosswalk file, read once per version (its modification time is part of the key)."""
    return Crosswalk.from_file(path)


def first_info(alert: Alert, language: str = "en") -> Info:
    if not alert.infos:
        msg = "the alert has no <info> block (a heartbeat, Ack or Error carries no event)"
        raise TranslationError(msg)
    return alert.info_for(language) or alert.infos[0]


def errors_of(findings: Iterable[Finding]) -> list[Finding]:
    return [f for f in findings if f.severity == "error"]


def require_valid(alert: Alert, profile: str) -> Alert:
    """Validate a translated alert against its target profile; raise on any error."""
    from cap_schemas.validate import validate  # noqa: PLC0415 -- validation pulls in the XSD

    checked = replace(alert, raw=b"")
    errors = errors_of(validate(checked, profile=profile))
    if errors:
        listed = "; ".join(f"{f.rule} at {f.xpath}: {f.message}" for f in errors[:5])
        msg = f"the {profile} translation breaks its profile: {listed}"
        raise TranslationError(msg)
    return alert
