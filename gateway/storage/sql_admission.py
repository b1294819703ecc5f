"""The admission transaction of the SQL ledgers: the facts a decision reads, and the record
of a decided alert or message with its withdrawals and its deliveries.

Every function here runs inside a transaction the caller (a backend of
:class:`~gateway.storage.sql.SqlLedger`) opened; none decides anything -- the decisions are
:func:`gateway.ledger.decide` and :func:`gateway.ledger.settle`.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from datetime import datetime

from cap_schemas.model import Alert, AlertKey, MsgType
from gateway.identity import Probe, relay_key
from gateway.ledger import (
    MESSAGE_PRIORITY,
    OPEN_STATES,
    OUTBOX_TRANSITIONS,
    Admission,
    AlertStatus,
    Decision,
    EntryState,
    Facts,
    FactsChangedError,
    Known,
    MessageRecord,
    PlannedDelivery,
    Provenance,
    Verdict,
    priority_of,
    settle,
)
from gateway.storage.sql_rows import (
    KNOWN_COLUMNS,
    Connection,
    Row,
    journal,
    journal_lines,
    key_json,
    opt_us,
    pack_parts,
    row_key,
    row_to_known,
    summary_fields,
    us,
)

__all__ = [
    "KNOWN_SQL",
    "LATER_SQL",
    "REACHED_SQL",
    "RELAYS_SQL",
    "WINDOW_CANDIDATES",
    "FactsReader",
    "approve_withdrawals",
    "later_parameters",
    "read_facts",
    "record_alert",
    "record_message",
    "relay_parameters",
    "require_facts",
    "window_candidate",
    "with_copies",
    "withdraw",
]

_KEY = "sender = ? AND identifier = ? AND sent = ?"
FactsReader = Callable[[Connection, AlertKey, Sequence[AlertKey], "Probe | None"], Facts]
WINDOW_CANDIDATES = 8
# json.dumps(..., sort_keys=True) makes an encoder on every call.
_SORTED_JSON = json.JSONEncoder(sort_keys=True)
_OPEN = tuple(s.value for s in OPEN_STATES)
_KNOWN_A = ", ".join(f"a.{c.strip()}" for c in KNOWN_COLUMNS.split(","))


# The reads of an admission's facts, also issued together by PostgreSQL's reader
# (gateway.storage.postgres_admission): the stored alert of a key; (sink, route) of an alert's
# entries that may have reached their sink; the updates and cancels stored before what they
# reference (key, Update, Cancel); another sender's relays of a key (key, sender, msgType).
KNOWN_SQL = f"SELECT {KNOWN_COLUMNS} FROM alerts WHERE {_KEY}"  # noqa: S608 - constant fragments
REACHED_SQL = (
    "SELECT sink, route FROM outbox WHERE alert_id = ?"
    " AND (state = 'delivered' OR attempts > 0 OR started_at IS NOT NULL) ORDER BY id"
)
LATER_SQL = (
    f"SELECT {_KNOWN_A} FROM alert_refs r JOIN alerts a ON a.id = r.alert_id"  # noqa: S608 - constant fragments
    " WHERE r.sender = ? AND r.identifier = ? AND r.sent = ? AND a.msg_type IN (?, ?)"
    " ORDER BY a.id"
)
RELAYS_SQL = (
    f"SELECT {_KNOWN_A} FROM alert_refs r JOIN alerts a ON a.id = r.alert_id"  # noqa: S608 - constant fragments
    " WHERE r.sender = ? AND r.identifier = ? AND r.sent = ? AND a.sender <> ?"
    " AND a.msg_type = ? AND a.kind = 'cap' ORDER BY a.id"
)


def _known(conn: Connection, key: AlertKey) -> Row | None:
    row: Row | None = conn.execute(KNOWN_SQL, (key.sender, key.identifier, key.sent)).fetchone()
    return row


def _reached(conn: Connection, alert_id: int) -> list[tuple[str, str]]:
    """(sink, route) of the alert's entries that may have reached their sink."""
    rows = conn.execute(REACHED_SQL, (alert_id,)).fetchall()
    return [(r["sink"], r["route"]) for r in rows]


def _matches(conn: Connection, keys: Sequence[str]) -> list[tuple[str, Known]]:
    """(identity key, stored alert) for every stored alert sharing one of the linking
    ``keys`` (window keys are read by :func:`_window`)."""
    linking = [k for k in keys if not k.startswith("window:")]
    if not linking:
        return []
    marks = ", ".join("?" for _ in linking)
    rows = conn.execute(
        f"SELECT ik.key AS ikey, {_KNOWN_A} FROM identity_keys ik"  # noqa: S608 - constant fragments
        f" JOIN alerts a ON a.id = ik.alert_id WHERE ik.key IN ({marks}) AND a.kind = 'cap'"
        " ORDER BY a.id, ik.key",
        tuple(linking),
    ).fetchall()
    return [(r["ikey"], row_to_known(r)) for r in rows]


def window_candidate(row: Row) -> tuple[str, str, str, str]:
    """A possible copy as :attr:`~gateway.ledger.Facts.window` holds it."""
    return (row["sender"], row["identifier"], row["sent"], row["event_key"] or "")


def _window(conn: Connection, keys: Sequence[str]) -> list[tuple[str, str, str, str]]:
    """The latest :data:`WINDOW_CANDIDATES` stored alerts sharing one of the window ``keys``
    (a possible copy, only noted): a place with many alerts in one half hour must not make
    every admission read them all.

    The newest candidates of each key, read backwards along the (key, alert_id) index, then
    the newest of those: the same as the newest of them all, but without reading every alert
    of a busy place and half hour first (that made each admission slower as a storm went
    on). The candidates come first and their alerts are read by id (CROSS JOIN keeps that
    order in SQLite, whose planner would otherwise walk every CAP alert along the kind index
    and test each id against the list). Only what a note needs is read."""
    window = [k for k in keys if k.startswith("window:")]
    if not window:
        return []
    newest = " UNION ".join(
        "SELECT alert_id FROM (SELECT alert_id FROM identity_keys WHERE key = ?"  # noqa: S608 - constant fragments
        f" ORDER BY alert_id DESC LIMIT {WINDOW_CANDIDATES}) AS w{i}"
        for i in range(len(window))
    )
    rows = conn.execute(
        "SELECT a.sender, a.identifier, a.sent, a.event_key"  # noqa: S608 - constant fragments
        f" FROM (SELECT alert_id FROM ({newest}) AS u"
        f" ORDER BY alert_id DESC LIMIT {WINDOW_CANDIDATES}) AS c"
        " CROSS JOIN alerts a WHERE a.id = c.alert_id AND a.kind = 'cap' ORDER BY a.id",
        tuple(window),
    ).fetchall()
    return [window_candidate(r) for r in rows]


def _copies(conn: Connection, events: Sequence[str], also: Sequence[Known]) -> list[Known]:
    """Every stored copy of ``events`` (with what each may have reached), and ``also``
    (alerts stored before identities, whose event is their own key)."""
    found: dict[AlertKey, Known] = {}
    if events:
        marks = ", ".join("?" for _ in events)
        rows = conn.execute(
            f"SELECT {KNOWN_COLUMNS} FROM alerts WHERE event_key IN ({marks})"  # noqa: S608 - constant fragments
            " AND kind = 'cap' ORDER BY id",
            tuple(events),
        ).fetchall()
        for row in rows:
            found[row_key(row)] = row_to_known(row, _reached(conn, row["id"]))
    for known in also:
        if known.key not in found:
            row = _known(conn, known.key)
            if row is not None:
                found[known.key] = row_to_known(row, _reached(conn, row["id"]))
    return list(found.values())


def read_facts(
    conn: Connection,
    key: AlertKey,
    references: Sequence[AlertKey] = (),
    probe: Probe | None = None,
) -> Facts:
    """What an admission of ``key`` (referencing ``references``) depends on; with ``probe``
    (and a key not stored yet), the alerts sharing an identity key with it and the copies of
    their events and of what it references."""
    existing = _known(conn, key)
    later = conn.execute(LATER_SQL, later_parameters(key)).fetchall()
    referenced = []
    for ref in dict.fromkeys(references):
        if ref == key:
            continue
        row = _known(conn, ref)
        if row is not None:
            referenced.append(row_to_known(row, _reached(conn, row["id"])))
    facts = Facts(
        existing=None if existing is None else row_to_known(existing),
        later=tuple(row_to_known(r) for r in later),
        referenced=tuple(referenced),
    )
    if probe is None or existing is not None:
        return facts
    chain = probe.chain(k.event_id for k in referenced)
    matches = _matches(conn, [*probe.lookup, *((chain,) if chain else ())])
    relays = conn.execute(RELAYS_SQL, relay_parameters(key, probe)).fetchall()
    return with_copies(conn, facts, key, matches, relays, window=_window(conn, probe.lookup))


def later_parameters(key: AlertKey) -> tuple[str, ...]:
    return (key.sender, key.identifier, key.sent, MsgType.UPDATE.value, MsgType.CANCEL.value)


def relay_parameters(key: AlertKey, probe: Probe) -> tuple[str, ...]:
    return (key.sender, key.identifier, key.sent, key.sender, probe.msg_type)


def with_copies(
    conn: Connection,
    facts: Facts,
    key: AlertKey,
    matches: list[tuple[str, Known]],
    relays: Sequence[Row],
    *,
    window: Sequence[tuple[str, str, str, str]] = (),
) -> Facts:
    """``facts`` with the identity matches of ``key`` (``matches``, and the ``relays`` that
    name it: a relay admitted first is the relay of this original), its possible copies by
    ``window`` (only noted: they join no event) and the copies of the events it may join."""
    matches = matches + [(relay_key(key), row_to_known(r)) for r in relays]
    known = [k for _ikey, k in matches] + list(facts.referenced)
    events = list(dict.fromkeys(k.event_key for k in known if k.event_key))
    copies = _copies(conn, events, [k for k in known if not k.event_key])
    return Facts(
        existing=facts.existing,
        later=facts.later,
        referenced=facts.referenced,
        matches=tuple(matches),
        window=tuple(window),
        copies=tuple(copies),
        version=facts.version,
    )


def require_facts(
    conn: Connection,
    key: AlertKey,
    references: Sequence[AlertKey],
    facts: Facts,
    probe: Probe | None = None,
    *,
    read: FactsReader | None = None,
    unchanged: bool = False,
) -> None:
    """Refuse to record a decision whose facts no longer hold: read again by ``read`` (by
    default :func:`read_facts`) unless the store knows that nothing was committed since they
    were read (``unchanged``)."""
    if unchanged:
        return
    if (read or read_facts)(conn, key, references, probe) != facts:
        msg = f"the facts of {key} changed before its admission was recorded"
        raise FactsChangedError(msg)


def record_alert(
    conn: Connection,
    alert: Alert,
    verdict: Verdict,
    planned: Sequence[PlannedDelivery],
    *,
    source: str,
    received_at: datetime,
    forget_after: datetime,
    now: datetime,
    provenance: Provenance | None,
) -> Admission:
    """Store a decided alert (or journal its duplicate), withdraw, enqueue, journal."""
    key = alert.key
    admission = verdict.admission
    if admission.decision is Decision.DUPLICATE:
        return _duplicate(conn, now, admission, source)
    admission = settle(admission, planned)
    received_us = us(received_at)
    raw = bytes(alert.raw)
    trust = provenance or Provenance(source)
    cursor = conn.execute(
        "INSERT INTO alerts (sender, identifier, sent, decision, status, reason, source,"
        " received_at, expires, forget_after, priority, msg_type, cap_status, event,"
        " severity, urgency, headline, sender_name, areas, refs, superseded_by,"
        " status_changed_at, raw_sha256, raw_size, raw, trust, door, signature, signer,"
        " approved_by, pending_refs, event_key, event_rule, event_match)"
        " VALUES (:sender, :identifier, :sent, :decision, :status, :reason, :source,"
        " :received_at, :expires, :forget_after, :priority, :msg_type, :cap_status, :event,"
        " :severity, :urgency, :headline, :sender_name, :areas, :refs, :superseded_by,"
        " :received_at, :raw_sha256, :raw_size, :raw, :trust, :door, :signature, :signer,"
        " :approved_by, :pending_refs, :event_key, :event_rule, :event_match) RETURNING id",
        {
            "sender": key.sender,
            "identifier": key.identifier,
            "sent": key.sent,
            "decision": admission.decision.value,
            "status": verdict.status.value,
            "reason": admission.reason,
            "source": source,
            "received_at": received_us,
            "expires": opt_us(alert.expires),
            "forget_after": us(forget_after),
            "priority": priority_of(alert),
            "msg_type": alert.msg_type.value,
            "cap_status": alert.status.value,
            "refs": key_json(alert.references),
            "superseded_by": (
                None if verdict.superseded_by is None else key_json([verdict.superseded_by])
            ),
            "raw_sha256": hashlib.sha256(raw).hexdigest(),
            "raw_size": len(raw),
            "raw": raw,
            "trust": trust.level,
            "door": trust.door,
            "signature": trust.signature,
            "signer": trust.signer,
            "approved_by": trust.approved_by,
            "pending_refs": int(bool(verdict.deferred)),
            "event_key": verdict.link.event or str(key),
            "event_rule": verdict.link.rule,
            "event_match": "" if verdict.link.matched is None else str(verdict.link.matched),
            **summary_fields(alert),
        },
    )
    alert_id = int(cursor.fetchone()["id"])
    lines: list[tuple[object, ...]] = []  # the audit trail's lines, appended together
    _identify(conn, alert_id, key, verdict, source=source, now=now, into=lines)
    refs = list(dict.fromkeys(alert.references))
    if refs:
        conn.executemany(
            "INSERT INTO alert_refs (alert_id, sender, identifier, sent)"
            " VALUES (?, ?, ?, ?) ON CONFLICT DO NOTHING",
            [(alert_id, r.sender, r.identifier, r.sent) for r in refs],
        )
    withdraw(
        conn, key, verdict.withdraw, verdict.withdrawn_as, at_us=received_us, now=now, into=lines
    )
    held = _enqueue(conn, alert_id, key, planned, received_us=received_us, now=now, into=lines)
    detail = f"{admission.decision.value} from {source}"
    _admitted(conn, now, admission, detail, planned=planned, held=held, into=lines)
    journal_lines(conn, lines)
    return admission


def _identify(
    conn: Connection,
    alert_id: int,
    key: AlertKey,
    verdict: Verdict,
    *,
    source: str,
    now: datetime,
    into: list[tuple[object, ...]] | None = None,
) -> None:
    """Store the alert's identity keys; a copy is noted in the audit trail of the copy it
    matched too (where the operator looks first)."""
    link = verdict.link
    if link.keys:
        conn.executemany(
            "INSERT INTO identity_keys (key, alert_id) VALUES (?, ?) ON CONFLICT DO NOTHING",
            [(k, alert_id) for k in dict.fromkeys(link.keys)],
        )
    if link.matched is not None:
        word = "copy" if link.linked else "possible_copy"
        detail = f"{key} from {source} (rule {link.rule}): {verdict.admission.decision.value}"
        journal(conn, now, link.matched, word, detail, into=into)


def _duplicate(
    conn: Connection, now: datetime, admission: Admission, source: str
) -> Admission:
    journal(conn, now, admission.key, "duplicate", f"from {source}: {admission.reason}")
    return admission


def _admitted(
    conn: Connection,
    now: datetime,
    admission: Admission,
    detail: str,
    *,
    planned: Sequence[PlannedDelivery],
    held: int,
    into: list[tuple[object, ...]] | None = None,
) -> None:
    if admission.reason:
        detail += f": {admission.reason}"
    if planned:
        detail += f"; {len(planned)} deliveries ({held} held)"
    journal(conn, now, admission.key, "admitted", detail, into=into)


def withdraw(
    conn: Connection,
    key: AlertKey,
    refs: Sequence[Known],
    status: AlertStatus,
    *,
    at_us: int,
    now: datetime,
    note: str = "",
    into: list[tuple[object, ...]] | None = None,
) -> None:
    """Take the alerts an update or cancel (``key``) replaces out of force, and supersede
    their deliveries that have not ended (a transmission under way is noted as such)."""
    received_us = at_us
    verb = status.value  # "cancelled" or "superseded"
    by = key_json([key])
    for known in refs:
        ref = known.key
        row = conn.execute(
            f"SELECT id, status FROM alerts WHERE {_KEY}",  # noqa: S608 - constant fragment
            (ref.sender, ref.identifier, ref.sent),
        ).fetchone()
        if row["status"] == "active":
            conn.execute(
                "UPDATE alerts SET status = ?, superseded_by = ?, status_changed_at = ?,"
                " deactivated_at = ? WHERE id = ?",
                (status.value, by, received_us, received_us, row["id"]),
            )
            journal(conn, now, ref, verb, f"by {key}{note}", into=into)
        entries = conn.execute(
            "SELECT id, sink, started_at FROM outbox WHERE alert_id = ? AND state IN (?, ?)",
            (row["id"], *_OPEN),
        ).fetchall()
        for entry in entries:
            reason = f"{verb} by {key}{note}"
            if entry["started_at"] is not None:
                reason += " while being sent"
            conn.execute(
                "UPDATE outbox SET state = ?, reason = ?, updated_at = ? WHERE id = ?",
                (EntryState.SUPERSEDED.value, reason, received_us, entry["id"]),
            )
            journal(
                conn, now, ref, "superseded", reason,
                entry_id=entry["id"], sink=entry["sink"], into=into,
            )  # fmt: skip
            OUTBOX_TRANSITIONS.inc(sink=entry["sink"], state=EntryState.SUPERSEDED.value)


def approve_withdrawals(
    conn: Connection,
    alert_id: int,
    *,
    by: str,
    now: datetime,
    cross_sender_references: bool,
) -> list[AlertKey]:
    """An operator approved a held update or cancel: it now withdraws what it references
    (as it stands now), and its provenance names the operator. Returns what it withdrew."""
    row = conn.execute(
        "SELECT sender, identifier, sent, msg_type, pending_refs FROM alerts WHERE id = ?",
        (alert_id,),
    ).fetchone()
    conn.execute(
        "UPDATE alerts SET approved_by = ? WHERE id = ? AND approved_by = ''", (by, alert_id)
    )
    if row is None or not row["pending_refs"]:
        return []
    key = AlertKey(row["sender"], row["identifier"], row["sent"])
    refs = [
        AlertKey(r["sender"], r["identifier"], r["sent"])
        for r in conn.execute(
            "SELECT sender, identifier, sent FROM alert_refs WHERE alert_id = ?", (alert_id,)
        ).fetchall()
    ]
    found: list[Known] = []
    for ref in refs:
        if ref == key or (ref.sender != key.sender and not cross_sender_references):
            continue
        stored = _known(conn, ref)
        if stored is not None:
            found.append(row_to_known(stored))
    status = (
        AlertStatus.CANCELLED if row["msg_type"] == MsgType.CANCEL.value else AlertStatus.SUPERSEDED
    )
    withdraw(conn, key, found, status, at_us=us(now), now=now, note=f" (approved by {by})")
    conn.execute("UPDATE alerts SET pending_refs = 0 WHERE id = ?", (alert_id,))
    journal(
        conn,
        now,
        key,
        "approved",
        f"by {by}: withdraws " + (" ".join(str(k.key) for k in found) or "nothing stored"),
    )
    return [k.key for k in found]


def _enqueue(
    conn: Connection,
    alert_id: int,
    key: AlertKey,
    planned: Sequence[PlannedDelivery],
    *,
    received_us: int,
    now: datetime,
    into: list[tuple[object, ...]] | None = None,
) -> int:
    """Put the planned deliveries in the outbox; returns how many are held."""
    held = 0
    for item in planned:
        state = EntryState.HELD if item.held else EntryState.PENDING
        held += item.held
        reason = (item.hold_reason or "held for an operator") if item.held else ""
        cursor = conn.execute(
            "INSERT INTO outbox (alert_id, sink, route, content_type, attributes, parts,"
            " priority, enqueued_at, expires, attempts, next_attempt_at, state, reason,"
            " updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, 0, ?, ?, ?, ?) RETURNING id",
            (
                alert_id,
                item.sink,
                item.route,
                item.content_type,
                _SORTED_JSON.encode(dict(item.attributes)),
                pack_parts(item.parts),
                item.priority,
                received_us,
                opt_us(item.expires),
                received_us,
                state.value,
                reason,
                received_us,
            ),
        )
        journal(
            conn,
            now,
            key,
            state.value if item.held else "enqueued",
            f"route {item.route}, priority {item.priority}" + (f"; {reason}" if reason else ""),
            entry_id=int(cursor.fetchone()["id"]),
            sink=item.sink,
            into=into,
        )
        OUTBOX_TRANSITIONS.inc(sink=item.sink, state=state.value)
    return held


def record_message(
    conn: Connection,
    record: MessageRecord,
    admission: Admission,
    planned: Sequence[PlannedDelivery],
    *,
    source: str,
    received_at: datetime,
    forget_after: datetime,
    now: datetime,
) -> Admission:
    """Store a decided incident or radio message (or journal its duplicate) and enqueue."""
    key = record.key
    if admission.decision is Decision.DUPLICATE:
        return _duplicate(conn, now, admission, source)
    admission = settle(admission, planned)
    received_us = us(received_at)
    raw = bytes(record.raw)
    cursor = conn.execute(
        "INSERT INTO alerts (sender, identifier, sent, decision, status, reason, source,"
        " received_at, forget_after, priority, msg_type, cap_status, event, headline,"
        " sender_name, areas, status_changed_at, raw_sha256, raw_size, raw, kind)"
        " VALUES (?, ?, ?, ?, 'expired', ?, ?, ?, ?, ?, ?, '', ?, ?, ?, ?, ?, ?, ?, ?,"
        " 'incident') RETURNING id",
        (
            key.sender,
            key.identifier,
            key.sent,
            admission.decision.value,
            admission.reason,
            source,
            received_us,
            us(forget_after),
            MESSAGE_PRIORITY,
            record.msg_type,
            record.event,
            record.headline[:500],
            record.sender_name,
            json.dumps([record.channel] if record.channel else []),
            received_us,
            hashlib.sha256(raw).hexdigest(),
            len(raw),
            raw,
        ),
    )
    held = _enqueue(
        conn, int(cursor.fetchone()["id"]), key, planned, received_us=received_us, now=now
    )
    detail = f"{record.msg_type} {admission.decision.value} from {source}"
    _admitted(conn, now, admission, detail, planned=planned, held=held)
    return admission
