"""What the console's pages show, computed from the ledger (no HTML here).

Each function reads the ledger synchronously (the web handlers run it in a thread) and
returns plain data for a template: the board's rows, one alert's whole record, the holds
queue grouped by alert, and the health strip. Alert content is parsed from the stored
bytes; a parsed alert is cached by its SHA-256 so a board refreshed every second does not
parse the same thousand alerts again.
"""

from __future__ import annotations

from collections import OrderedDict, defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

from cap_schemas.model import Alert, AlertKey, Info
from cap_schemas.parse import parse_alert
from cap_schemas.rules import broadcast_immediately
from gateway.approvals import CONSOLE_SOURCE, author_of
from gateway.config import PartnerConfig
from gateway.ledger import EntryState, JournalEntry, Ledger, OutboxEntry, StoredAlert
from gateway.partner_receipts import Receipt, expected
from gateway.summary import alert_country, topic_key

__all__ = [
    "AlertPage",
    "BoardRow",
    "HealthLine",
    "HoldGroup",
    "ParsedCache",
    "alert_page",
    "board_rows",
    "duration",
    "health_lines",
    "hold_groups",
]

_SEVERITY_RANK = {"Extreme": 0, "Severe": 1, "Moderate": 2, "Minor": 3, "Unknown": 4}


def severity_rank(severity: str) -> int:
    """0 for Extreme ... 4 for Unknown, 5 for anything else: the order the board shows."""
    return _SEVERITY_RANK.get(severity, 5)


def duration(seconds: float) -> str:
    """A short human duration: ``45 s``, ``12 min``, ``3 h 05 min``, ``2 d 4 h``."""
    s = int(abs(seconds))
    if s < 60:
        return f"{s} s"
    if s < 3600:
        return f"{s // 60} min"
    if s < 86400:
        return f"{s // 3600} h {s % 3600 // 60:02d} min"
    return f"{s // 86400} d {s % 86400 // 3600} h"


class ParsedCache:
    """Parsed alerts by the SHA-256 of their bytes (bounded, least recently used out)."""

    def __init__(self, size: int = 4096) -> None:
        self._size = size
        self._items: OrderedDict[str, Alert | None] = OrderedDict()

    def get(self, stored: StoredAlert) -> Alert | None:
        digest = stored.raw_sha256
        if digest in self._items:
            self._items.move_to_end(digest)
            return self._items[digest]
        alert: Alert | None
        try:
            alert = parse_alert(stored.raw) if stored.raw else None
        except Exception:  # noqa: BLE001 - a stored alert that no longer parses is shown bare
            alert = None
        self._items[digest] = alert
        if len(self._items) > self._size:
            self._items.popitem(last=False)
        return alert


@dataclass(frozen=True, slots=True)
class BoardRow:
    key: str
    href: str
    country: str
    event: str
    headline: str
    severity: str
    urgency: str
    certainty: str
    areas: str
    sender: str
    age: float
    expires_in: float | None
    languages: tuple[str, ...]
    signature: str
    trust: str
    broadcast_immediately: bool
    msg_type: str
    deliveries: Mapping[str, tuple[str, ...]]  # state -> sinks
    acknowledged_by: str = ""  # the operator who acknowledged a row that rings
    awaiting_second: str | None = None  # its author, while held for a second operator
    receipts: tuple[str, ...] = ()  # who acknowledged an alert issued here (partner names)

    @property
    def attention(self) -> bool:
        """Extreme, or Broadcast Immediately: the rows that ring until acknowledged."""
        return self.severity == "Extreme" or self.broadcast_immediately

    @property
    def sound(self) -> str:
        """The alarm it rings (see :mod:`gateway.console.sounds`)."""
        if self.attention:
            return "extreme"
        return "severe" if self.severity == "Severe" else "notice"


def alert_href(key: AlertKey | str) -> str:
    return f"/alerts/{topic_key(key)}"


def _deliveries(entries: Sequence[OutboxEntry]) -> dict[str, tuple[str, ...]]:
    by_state: dict[str, list[str]] = defaultdict(list)
    for entry in entries:
        by_state[entry.state.value].append(entry.sink)
    return {state: tuple(sorted(sinks)) for state, sinks in sorted(by_state.items())}


def _info_in(alert: Alert | None, language: str) -> Info | None:
    """The info block of ``alert`` in the console's language (``en``, ``fr``), else its
    first one."""
    if alert is None or not alert.infos:
        return None
    wanted = language.lower()
    return next(
        (i for i in alert.infos if i.language.lower().split("-")[0] == wanted), alert.infos[0]
    )


def _row(
    stored: StoredAlert,
    alert: Alert | None,
    entries: Sequence[OutboxEntry],
    now: datetime,
    language: str = "en",
) -> BoardRow:
    info = _info_in(alert, language)
    first = alert is not None and bool(alert.infos) and info is alert.infos[0]
    provenance = stored.provenance
    return BoardRow(
        key=str(stored.key),
        href=alert_href(stored.key),
        country=alert_country(alert) if alert is not None else "xx",
        event=(info.event if info is not None else stored.event) or stored.event,
        # The stored headline and areas are the first block's; another language's block
        # speaks for itself (its areas named in its language).
        headline=stored.headline if first or info is None else (info.headline or info.event),
        severity=stored.severity,
        urgency=stored.urgency,
        certainty=info.certainty.value if info is not None else "",
        areas=", ".join(
            stored.areas if first or info is None else [a.area_desc for a in info.areas]
        ),
        sender=stored.sender_name or stored.key.sender,
        age=(now - stored.received_at).total_seconds(),
        expires_in=None if stored.expires is None else (stored.expires - now).total_seconds(),
        languages=tuple(i.language for i in alert.infos) if alert is not None else (),
        signature=provenance.signature if provenance is not None else "unsigned",
        trust=provenance.level if provenance is not None else "",
        broadcast_immediately=alert is not None and broadcast_immediately(alert),
        msg_type=stored.msg_type,
        deliveries=_deliveries(entries),
        awaiting_second=next(
            (
                author
                for e in entries
                if e.state is EntryState.HELD and (author := author_of(e.reason)) is not None
            ),
            None,
        ),
    )


def board_rows(
    ledger: Ledger,
    now: datetime,
    cache: ParsedCache,
    *,
    limit: int = 5000,
    partners: Sequence[PartnerConfig] = (),
    language: str = "en",
) -> list[BoardRow]:
    """The alerts in force (up to ``limit``), most urgent first: severity, then the ledger's
    priority; an alert issued here lists the partners that acknowledged it. Event, headline
    and areas are read from the info block in ``language`` when the alert has one."""
    active = ledger.active(now, with_raw=True)[:limit]
    names = {p.ack_sender: p.name for p in partners if p.ack_sender}
    rows = [
        replace(
            _row(s, cache.get(s), ledger.deliveries(s.key), now, language),
            receipts=tuple(
                dict.fromkeys(names.get(r.key.sender, r.key.sender) for r in ledger.receipts(s.key))
            )
            if s.source == CONSOLE_SOURCE
            else (),
        )
        for s in active
    ]
    ringing = [AlertKey.from_reference(r.key) for r in rows if r.attention]
    if ringing:
        acks = {str(k): who for k, who in ledger.acknowledgements(ringing).items()}
        rows = [replace(r, acknowledged_by=acks.get(r.key, "")) for r in rows]
    order = {s.key: (s.priority, i) for i, s in enumerate(active)}
    rows.sort(
        key=lambda r: (
            severity_rank(r.severity),
            order[AlertKey.from_reference(r.key)],
        )
    )
    return rows


def ringing_rows(ledger: Ledger, now: datetime, cache: ParsedCache) -> list[BoardRow]:
    """The alerts in force that ring (Extreme or Broadcast Immediately) and nobody has
    acknowledged: the banner's, without the board's delivery look-ups."""
    rows = []
    for stored in ledger.active(now, with_raw=True):
        alert = cache.get(stored)
        row = _row(stored, alert, (), now)
        if row.attention:
            rows.append(row)
    if not rows:
        return []
    acks = ledger.acknowledgements([AlertKey.from_reference(r.key) for r in rows])
    acked = {str(k) for k in acks}
    return [r for r in rows if r.key not in acked]


@dataclass(frozen=True, slots=True)
class AlertPage:
    stored: StoredAlert
    alert: Alert | None
    row: BoardRow
    deliveries: list[OutboxEntry]
    journal: list[JournalEntry]
    raw_text: str
    decision_line: str
    references: list[tuple[str, str]]  # (key, href)
    superseded_by: tuple[str, str] | None
    holds: list[OutboxEntry] = field(default_factory=list)
    receipts: list[StoredAlert] = field(default_factory=list)
    # The same event received again: each duplicate copy (from which source, when), the other
    # copies of its event (another feed's identifier, a relay, an off-air header: with the
    # identity rule that linked each), and alerts with the same identifier under another
    # sender or time. ``event``: the event's first copy (key, href) when this is not it.
    copies: list[JournalEntry] = field(default_factory=list)
    namesakes: list[tuple[StoredAlert, str]] = field(default_factory=list)
    event_copies: list[tuple[StoredAlert, str]] = field(default_factory=list)
    event: tuple[str, str] | None = None
    # Each watched partner's receipt of an alert issued here (acknowledged, waiting, late).
    partner_receipts: list[Receipt] = field(default_factory=list)


def alert_page(
    ledger: Ledger,
    key: AlertKey,
    now: datetime,
    cache: ParsedCache,
    partners: Sequence[PartnerConfig] = (),
) -> AlertPage | None:
    """Everything the detail page shows of one alert, or None when the ledger has no such."""
    stored = ledger.get(key)
    if stored is None:
        return None
    alert = cache.get(stored)
    deliveries = ledger.deliveries(key)
    journal = ledger.journal(key, limit=500)
    # The journal's admission line tells the decision, why, from where and what it planned.
    admitted = next((j for j in journal if j.event == "admitted"), None)
    decision = stored.decision.value + (f": {stored.reason}" if stored.reason else "")
    if admitted is not None and admitted.detail:
        decision = admitted.detail
    event_copies = ledger.copies(key)
    linked = {a.key for a in event_copies}
    return AlertPage(
        stored=stored,
        alert=alert,
        row=_row(stored, alert, deliveries, now),
        deliveries=deliveries,
        journal=journal,
        raw_text=stored.raw.decode("utf-8", "replace"),
        decision_line=decision,
        references=[(str(k), alert_href(k)) for k in stored.references],
        superseded_by=None
        if stored.superseded_by is None
        else (str(stored.superseded_by), alert_href(stored.superseded_by)),
        holds=[e for e in deliveries if e.state is EntryState.HELD],
        receipts=ledger.receipts(key),
        copies=[j for j in journal if j.event == "duplicate"],
        namesakes=[(a, alert_href(a.key)) for a in ledger.namesakes(key) if a.key not in linked],
        event_copies=[(a, alert_href(a.key)) for a in event_copies],
        event=_event_of(stored),
        partner_receipts=expected(ledger, partners, stored, now),
    )


def _event_of(stored: StoredAlert) -> tuple[str, str] | None:
    """The first copy of the event a copy was linked to (key, href); None for a first copy."""
    event = stored.event_key
    if not event or event == str(stored.key):
        return None
    return (event, alert_href(event))


@dataclass(frozen=True, slots=True)
class HoldGroup:
    key: str
    href: str
    headline: str
    event: str
    severity: str
    entries: tuple[OutboxEntry, ...]


def hold_groups(ledger: Ledger) -> list[HoldGroup]:
    """Held deliveries grouped by alert, most urgent alert first (the ledger's order)."""
    groups: dict[AlertKey, list[OutboxEntry]] = {}
    for entry in ledger.holds():
        groups.setdefault(entry.key, []).append(entry)
    out = []
    for key, entries in groups.items():
        stored = ledger.get(key)
        out.append(
            HoldGroup(
                key=str(key),
                href=alert_href(key),
                headline=stored.headline if stored is not None else "",
                event=stored.event if stored is not None else "",
                severity=stored.severity if stored is not None else "",
                entries=tuple(entries),
            )
        )
    return out


PEER_SILENCE = 10.0  # s without a heartbeat before an instance is shown down


@dataclass(frozen=True, slots=True)
class HealthLine:
    kind: str  # source, stream or sink
    name: str
    state: str  # ok, down, stale, led_elsewhere
    required: bool
    last_message_age: float | None
    error: str


def _stale(last: str | None, now: datetime, stale_seconds: float) -> tuple[bool, float | None]:
    if not last:
        return False, None
    age = (now - datetime.fromisoformat(last)).total_seconds()
    return age > stale_seconds, age


def health_lines(
    sources: Sequence[Mapping[str, Any]],
    sinks: Sequence[Mapping[str, Any]],
    outbox: Mapping[tuple[str, EntryState], int],
    now: datetime,
    stale_seconds: float,
    *,
    cluster: Mapping[str, Any] | None = None,
) -> list[HealthLine]:
    """One line per source (and per stream of a source that has several), then per sink.

    A source is ``down`` when not running or unhealthy, ``stale`` when every stream's last
    message is older than ``stale_seconds``; a sink is ``down`` when its worker is not
    running (its last error shown).
    """
    out: list[HealthLine] = []
    for source in sources:
        required = bool(source.get("required"))
        if source.get("led_elsewhere"):
            out.append(HealthLine("source", source["source"], "led_elsewhere", required, None, ""))
            continue
        streams = source.get("streams") or []
        ages = [_stale(s.get("last_message_at"), now, stale_seconds) for s in streams]
        state = "ok" if source.get("healthy") else "down"
        if state == "ok" and ages and all(stale for stale, _age in ages):
            state = "stale"
        known = [age for _flag, age in ages if age is not None]
        error = str(source.get("error") or "")
        out.append(
            HealthLine("source", source["source"], state, required, min(known, default=None), error)
        )
        for stream, (stale, age) in zip(streams, ages, strict=True):
            stream_state = "ok" if stream.get("healthy") else "down"
            if stream_state == "ok" and stale:
                stream_state = "stale"
            name = f"{source['source']} · {stream.get('name', '')}"
            detail = str(stream.get("detail") or "")
            out.append(HealthLine("stream", name, stream_state, False, age, detail))
    peers = (cluster or {}).get("peers") or []
    if len(peers) > 1:  # several instances on one ledger: each, and what it leads
        for peer in peers:
            age = (now - datetime.fromisoformat(peer["last_seen"])).total_seconds()
            state = "ok" if age <= PEER_SILENCE else "down"
            leads = ", ".join(peer.get("leads") or []) or "-"
            claims = peer.get("claims") or {}
            under_way = ", ".join(f"{sink} {n}" for sink, n in sorted(claims.items()))
            detail = f"leads {leads}" + (f"; under way: {under_way}" if under_way else "")
            out.append(HealthLine("instance", str(peer["name"]), state, False, age, detail))
    for sink in sinks:
        name = str(sink["name"])
        counts = {state: outbox.get((name, state), 0) for state in EntryState}
        detail = ", ".join(
            f"{counts[state]} {state.value}"
            for state in (EntryState.PENDING, EntryState.HELD, EntryState.FAILED)
        )
        error = str(sink.get("error") or "")
        state = "ok" if sink.get("running") else "down"
        out.append(HealthLine("sink", name, state, False, None, error or detail))
    return out


@dataclass(frozen=True, slots=True)
class Search:
    """What the history page asks: every field optional."""

    text: str = ""
    country: str = ""  # ca, us, or any
    since: datetime | None = None
    until: datetime | None = None
    status: str | None = None
    before: datetime | None = None


@dataclass(frozen=True, slots=True)
class Found:
    stored: StoredAlert
    alert: Alert | None
    country: str
    href: str


def search(
    ledger: Ledger, query: Search, cache: ParsedCache, *, limit: int = 50, scan: int = 20_000
) -> tuple[list[Found], datetime | None]:
    """One page of past and present alerts matching ``query``, newest first, and the
    ``before`` of the next page (None on the last). The country is read from each alert (the
    ledger does not index it), so batches are read until the page is full or ``scan`` alerts
    have been looked at."""
    found: list[Found] = []
    before = query.before
    looked = 0
    while len(found) < limit and looked < scan:
        batch = ledger.search(
            text=query.text, since=query.since, until=query.until, status=query.status,
            before=before, limit=200, with_raw=True,
        )  # fmt: skip
        if not batch:
            return found, None
        for stored in batch:
            looked += 1
            alert = cache.get(stored)
            country = alert_country(alert) if alert is not None else "xx"
            if query.country and country != query.country:
                continue
            found.append(Found(stored, alert, country, alert_href(stored.key)))
            if len(found) == limit:
                return found, stored.received_at
        before = batch[-1].received_at
    return found, before if looked >= scan else None
