"""CAP alerts for the feed simulators, and the rewrite that makes an old alert live again.

``naad/`` holds CAP-CP alerts (bilingual en-CA/fr-CA, SOREM layer), ``ipaws/`` IPAWS-profile
alerts (extra IPAWS namespaces on ``alert``, one CAP 1.1 document declared ISO-8859-1) and
``nws/`` National Weather Service alerts (SAME/UGC geocodes, VTEC). All were written for
these simulators; none is a real message.

:func:`make_live` shifts ``sent``, ``effective``, ``onset`` and ``expires`` so the alert is
sent *now* and keeps its original duration, optionally renames the identifier (for replays
that must not be duplicates), and rewrites ``references`` to earlier alerts that were made
live the same way — the byte-level edit keeps everything else exactly as written.
"""

from __future__ import annotations

import re
from collections.abc import MutableMapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cap_schemas.parse import parse_cap_time

FEED_ALERTS = Path(__file__).resolve().parent

_NAME = rb"(?:[A-Za-z_][A-Za-z0-9_.\-]{0,63}:)?"
_TIME_ELEMENT = re.compile(rb"(<" + _NAME + rb"(sent|effective|onset|expires)>)\s*([^<]+?)\s*(</)")
_FIELD = {
    name: re.compile(rb"(<" + _NAME + name + rb">)\s*([^<]+?)\s*(</)")
    for name in (b"identifier", b"sender", b"sent")
}
_ZONE = re.compile(r"(?:Z|[+-]\d{2}:\d{2})$")
_REFERENCES = re.compile(rb"(<" + _NAME + rb"references>)([^<]*)(</)")


def alert_files(kind: str, folder: Path | None = None) -> list[Path]:
    """The CAP files of one simulator (``naad``, ``ipaws``, ``nws``) or of ``folder``."""
    base = folder if folder is not None else FEED_ALERTS / kind
    return sorted(p for p in base.iterdir() if p.suffix.lower() in (".xml", ".cap"))


def _field(raw: bytes, name: bytes) -> str:
    match = _FIELD[name].search(raw)
    if match is None:
        msg = f"alert has no <{name.decode()}>"
        raise ValueError(msg)
    return match.group(2).decode("latin-1")


def triple_of(raw: bytes) -> tuple[str, str, str]:
    """``(sender, identifier, sent)`` as written in the document."""
    return _field(raw, b"sender"), _field(raw, b"identifier"), _field(raw, b"sent")


def sent_of(raw: bytes) -> datetime:
    return parse_cap_time(_field(raw, b"sent"), lenient=True)


def load_alerts(kind: str, folder: Path | None = None) -> list[bytes]:
    """The documents of a folder, oldest ``sent`` first (so updates follow what they update)."""
    docs = [p.read_bytes() for p in alert_files(kind, folder)]
    return sorted(docs, key=sent_of)


@dataclass(frozen=True, slots=True)
class LiveAlert:
    raw: bytes
    original: tuple[str, str, str]
    live: tuple[str, str, str]


def make_live(
    raw: bytes,
    *,
    now: datetime,
    identifier_suffix: str = "",
    renamed: MutableMapping[tuple[str, str, str], tuple[str, str, str]] | None = None,
    lifetime: timedelta | None = None,
) -> LiveAlert:
    """Shift the alert's times so it is sent at ``now``; see the module docstring.

    ``renamed`` maps original triples to their live form; it is read for ``references`` and
    this alert's own mapping is added to it. With ``lifetime``, no ``expires`` is later than
    that after ``now`` (a replay that renames its alerts on every pass keeps one or two
    copies of each in force, not one per pass).
    """
    original = triple_of(raw)
    sent = now.replace(microsecond=0)
    delta = sent - sent_of(raw)

    def shift(match: re.Match[bytes]) -> bytes:
        text = match.group(3).decode("ascii", "replace")
        try:
            when = parse_cap_time(text, lenient=True)
        except ValueError:
            return match.group(0)
        moved_at = when + delta
        if lifetime is not None and match.group(2) == b"expires" and when.tzinfo is not None:
            moved_at = min(moved_at, sent + lifetime).astimezone(when.tzinfo)
        # Keep the zone exactly as written (``+00:00``, ``-00:00``, ``Z``, ``-05:00``): the
        # profiles read meaning into it.
        zone = _ZONE.search(text)
        moved = moved_at.strftime("%Y-%m-%dT%H:%M:%S") + (zone.group(0) if zone else "")
        return match.group(1) + moved.encode() + match.group(4)

    out = _TIME_ELEMENT.sub(shift, raw)
    if identifier_suffix:
        out = _FIELD[b"identifier"].sub(
            lambda m: m.group(1) + m.group(2) + identifier_suffix.encode() + m.group(3),
            out,
            count=1,
        )
    if renamed:

        def relink(match: re.Match[bytes]) -> bytes:
            triples = match.group(2).decode("latin-1").split()
            new = []
            for triple in triples:
                parts = tuple(triple.split(","))
                mapped = renamed.get(parts) if len(parts) == 3 else None
                new.append(",".join(mapped) if mapped else triple)
            return match.group(1) + " ".join(new).encode("latin-1") + match.group(3)

        out = _REFERENCES.sub(relink, out)
    live = triple_of(out)
    if renamed is not None:
        renamed[original] = live
    return LiveAlert(out, original, live)


def expires_in(raw: bytes, now: datetime) -> timedelta | None:
    """How long until the latest ``expires`` of a document (None when it has none)."""
    times = [
        parse_cap_time(match.group(3).decode("ascii", "replace"), lenient=True)
        for match in _TIME_ELEMENT.finditer(raw)
        if match.group(2) == b"expires"
    ]
    return max(times) - now if times else None
