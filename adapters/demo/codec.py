"""Fill the bundled demonstration alerts: identifiers, times relative to now, references.

A template is a CAP file with placeholders: ``{{identifier}}`` (unique per replay),
``{{sent}}``/``{{expires}}`` (UTC, written ``-00:00`` as CAP-CP producers do),
``{{sent_local}}``/``{{expires_local}}`` (US Eastern offset, as the IPAWS profile wants),
``{{expires_soon}}``/``{{expires_soon_local}}`` (the short lifetime of an alert that ends by
expiring rather than by a Cancel), and ``{{ref:NAME}}`` (the ``sender,identifier,sent`` of
the template NAME of the same replay).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from importlib import resources

from cap_schemas.model import format_cap_datetime

__all__ = ["Template", "bundled_templates", "render"]

_PLACEHOLDER = re.compile(r"\{\{([a-z_]+)(?::([A-Za-z0-9._-]+))?\}\}")
_SENDER = re.compile(rb"<sender>([^<]+)</sender>")
_IDENT = re.compile(rb"<identifier>([^<]+)</identifier>")
_SENT = re.compile(rb"<sent>([^<]+)</sent>")
# The demo areas (Windsor, Detroit) are on Eastern time.
EASTERN = timezone(timedelta(hours=-5), "EST")


@dataclass(frozen=True, slots=True)
class Template:
    name: str
    text: str


def bundled_templates() -> list[Template]:
    """The alerts shipped in ``adapters/demo/alerts``, in file-name order."""
    folder = resources.files("adapters.demo").joinpath("alerts")
    out = [
        Template(entry.name.rsplit(".", 1)[0], entry.read_text(encoding="utf-8"))
        for entry in folder.iterdir()
        if entry.name.endswith(".xml")
    ]
    return sorted(out, key=lambda t: t.name)


def _key_of(document: bytes) -> str:
    sender = _SENDER.search(document)
    ident = _IDENT.search(document)
    sent = _SENT.search(document)
    if sender is None or ident is None or sent is None:
        msg = "a rendered demo template lacks sender, identifier or sent"
        raise ValueError(msg)
    return b",".join((sender.group(1), ident.group(1), sent.group(1))).decode()


def render(
    template: Template,
    *,
    now: datetime,
    serial: str,
    lifetime: timedelta,
    earlier: Mapping[str, bytes],
    short_lifetime: timedelta | None = None,
) -> bytes:
    """One replayable document from ``template`` (``earlier``: this replay's documents)."""
    sent = now.replace(microsecond=0)
    soon = sent + (short_lifetime if short_lifetime is not None else lifetime)
    values = {
        "identifier": f"{template.name}.{serial}",
        "sent": format_cap_datetime(sent.astimezone(UTC)),
        "expires": format_cap_datetime((sent + lifetime).astimezone(UTC)),
        "sent_local": format_cap_datetime(sent.astimezone(EASTERN)),
        "expires_local": format_cap_datetime((sent + lifetime).astimezone(EASTERN)),
        "expires_soon": format_cap_datetime(soon.astimezone(UTC)),
        "expires_soon_local": format_cap_datetime(soon.astimezone(EASTERN)),
    }

    def fill(match: re.Match[str]) -> str:
        name, arg = match.group(1), match.group(2)
        if name == "ref":
            if arg not in earlier:
                msg = f"demo template {template.name}: {{{{ref:{arg}}}}} names no earlier alert"
                raise ValueError(msg)
            return _key_of(earlier[arg])
        if name not in values:
            msg = f"demo template {template.name}: unknown placeholder {{{{{name}}}}}"
            raise ValueError(msg)
        return values[name]

    return _PLACEHOLDER.sub(fill, template.text).encode("utf-8")
