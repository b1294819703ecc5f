"""The ledger over SQL: every query and transaction of the storage contract, written once.

:class:`SqlLedger` implements :class:`gateway.ledger.LedgerBase` (``facts``, ``record``, the
queries, the outbox changes, retention) in SQL that SQLite and PostgreSQL both speak; a
backend subclass supplies connections (:meth:`SqlLedger._read`, :meth:`SqlLedger._write`)
and its row lock for claims. The transactions themselves are in
:mod:`~gateway.storage.sql_admission` and :mod:`~gateway.storage.sql_outbox`.
"""

from __future__ import annotations

import abc
import json
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Protocol

import structlog

from cap_schemas.model import Alert, AlertKey
from gateway.identity import Probe
from gateway.identity import probe as identity_probe
from gateway.ledger import (
    ADMISSIONS,
    IN_DOUBT,
    IN_DOUBT_POLICIES,
    LATE_OUTCOMES,
    OPEN_STATES,
    OUTBOX_ENTRIES,
    OUTBOX_TRANSITIONS,
    Admission,
    AlertStatus,
    Change,
    Decision,
    EntryState,
    EntryStateError,
    Facts,
    InvalidRecord,
    JournalEntry,
    LateResultError,
    LedgerBase,
    MessageRecord,
    OutboxEntry,
    PlannedDelivery,
    Provenance,
    StoredAlert,
    Verdict,
    approved,
    delivered,
    failed,
    invalid_key,
    read_references,
    rejected,
)
from gateway.storage.sql_admission import (
    approve_withdrawals,
    read_facts,
    record_alert,
    record_message,
    require_facts,
)
from gateway.storage.sql_outbox import apply, claim, expire_due, load_entries, release_claims
from gateway.storage.sql_rows import (
    ALERT_COLUMNS,
    ENTRY_COLUMNS,
    US,
    Connection,
    dt,
    journal,
    row_key,
    row_to_alert,
    row_to_entry,
    row_to_journal,
    us,
)

__all__ = ["SqlLedger"]

log = structlog.get_logger(__name__)

_OPEN = tuple(s.value for s in OPEN_STATES)
# How long a failed console login is kept: the longest lockout window plus the longest lock
# ([console] lockout_minutes is at most a day, and serves as both).
LOGIN_FAILURE_RETENTION = timedelta(days=2)


class _Now(Protocol):
    def now(self) -> datetime: ...


def _changed(entry: OutboxEntry, change: Change) -> None:
    OUTBOX_TRANSITIONS.inc(sink=entry.sink, state=change.state.value)
    log.info(
        "outbox_entry_changed",
        change=change.event,
        alert=str(entry.key),
        entry=entry.id,
        sink=entry.sink,
        state=change.state.value,
        reason=change.reason,
    )


class SqlLedger(LedgerBase):
    """The storage contract over SQL. Subclasses set the settings below and provide
    connections; ``_claim_lock`` is appended to the claim's SELECT (a row lock)."""

    dedup_floor: timedelta
    journal_retention: timedelta
    max_invalid_bytes: int
    _clock: _Now
    _claim_lock = ""
    _shared = False  # several instances on one store (see release_claims)
    # Whether a claim waits for its commit to be durable. SQLite's unsynced commit survives a
    # crash of the process (only the machine's power loses it); a PostgreSQL server that
    # crashes loses its recent asynchronous commits, and with them the count of an attempt
    # whose bytes went out -- so there a claim is made durable before anything is sent.
    _claim_sync = False
    # Whether a delivery's outcome waits for its commit to be durable. Unsynced (SQLite), it
    # is made durable by the next synced commit or by :meth:`sync`, which the delivery stage
    # calls soon after: a power cut in between may send it again, never lose it.
    _outcome_sync = True
    _ROW_ID = "rowid"  # how a statement names one row of a table (PostgreSQL: ctid)

    def __init__(self) -> None:
        self._gauged_sinks: set[str] = set()

    @abc.abstractmethod
    def _read(self) -> AbstractContextManager[Connection]:
        """A connection for a consistent read."""

    @abc.abstractmethod
    def _write(self, *, sync: bool = True) -> AbstractContextManager[Connection]:
        """One durable transaction (``sync=False``: may be lost with the power only)."""

    @abc.abstractmethod
    def close(self) -> None: ...

    def _outcome_recorded(self) -> None:
        """Called after the commit of delivery outcomes (see ``_outcome_sync``)."""

    def _serialise(self, conn: Connection, keys: Sequence[AlertKey]) -> None:
        """Inside a record's transaction, before its facts are re-read: make admissions that
        touch the same keys wait for each other. A store with one writer at a time (SQLite's
        ``BEGIN IMMEDIATE``) needs nothing more."""

    # ------------------------------------------------------------------ admission

    def facts(
        self, key: AlertKey, references: Sequence[AlertKey] = (), probe: Probe | None = None
    ) -> Facts:
        version = self._facts_version()
        with self._admission_read() as conn:
            facts = self._read_facts(conn, key, references, probe)
        if version is None:
            return facts
        return Facts(
            existing=facts.existing,
            later=facts.later,
            referenced=facts.referenced,
            matches=facts.matches,
            window=facts.window,
            copies=facts.copies,
            version=version,
        )

    # Where a backend may take fewer round trips (PostgreSQL: the reads of the facts issued
    # together, the admission's transactions pipelined): the same SQL, the same facts.
    _read_facts: staticmethod[[Connection, AlertKey, Sequence[AlertKey], Probe | None], Facts] = (
        staticmethod(read_facts)
    )

    def _admission_read(self) -> AbstractContextManager[Connection]:
        return self._read()

    def _admission_write(self, *, sync: bool) -> AbstractContextManager[Connection]:
        return self._write(sync=sync)

    def _version(self) -> int | None:
        """The store's change counter (outside any transaction): it changes with every
        commit made since, by any connection or process; None for a store without one."""
        return None

    def _facts_version(self) -> int | None:
        """The version an admission's facts are read at (see :meth:`_unchanged`)."""
        return self._version()

    def _unchanged(self, facts: Facts) -> bool:
        """Inside a record's transaction: whether nothing was committed since ``facts`` were
        read (the same change counter: the store is exactly as it was read)."""
        return facts.version is not None and facts.version == self._version()

    def _forget_after(self, received_at: datetime, expires: datetime | None) -> datetime:
        """Keys are remembered until the alert expires, and at least ``dedup_floor``."""
        floor = received_at + self.dedup_floor
        return floor if expires is None or expires < floor else expires

    def record(
        self,
        alert: Alert,
        verdict: Verdict,
        planned: Sequence[PlannedDelivery],
        *,
        facts: Facts,
        source: str,
        received_at: datetime,
        provenance: Provenance | None = None,
        sync: bool = True,
    ) -> Admission:
        references = read_references(alert)
        probe = identity_probe(alert)
        # Copies of one event admitted at once (two instances, two feeds) take turns too (a
        # possible copy by window is only noted: no turn taken for it).
        chain = probe.chain(k.event_id for k in facts.referenced) if probe else None
        linking = [k for k in (probe.lookup if probe else ()) if not k.startswith("window:")]
        shared = [*linking, *((chain,) if chain else ())]
        with self._admission_write(sync=sync) as conn:
            self._serialise(
                conn, [alert.key, *references, *(AlertKey("", k, "") for k in shared)]
            )
            require_facts(
                conn,
                alert.key,
                references,
                facts,
                probe,
                read=self._read_facts,
                unchanged=self._unchanged(facts),
            )
            return record_alert(
                conn,
                alert,
                verdict,
                planned,
                source=source,
                received_at=received_at,
                forget_after=self._forget_after(received_at, alert.expires),
                now=self._clock.now(),
                provenance=provenance,
            )

    def record_message(
        self,
        record: MessageRecord,
        admission: Admission,
        planned: Sequence[PlannedDelivery],
        *,
        facts: Facts,
        source: str,
        received_at: datetime,
    ) -> Admission:
        with self._write() as conn:
            self._serialise(conn, [record.key])
            require_facts(conn, record.key, (), facts, unchanged=self._unchanged(facts))
            return record_message(
                conn,
                record,
                admission,
                planned,
                source=source,
                received_at=received_at,
                forget_after=received_at + self.dedup_floor,
                now=self._clock.now(),
            )

    def record_invalid(
        self, raw: bytes, *, source: str, received_at: datetime, reason: str
    ) -> None:
        """Keep a document that could not be admitted, keyed by its SHA-256."""
        key = invalid_key(raw)
        digest = key.identifier.removeprefix("sha256:")
        at = us(received_at)
        kept = bytes(raw[: self.max_invalid_bytes])
        if len(kept) < len(raw):
            reason = f"{reason} (kept the first {len(kept)} of {len(raw)} bytes)"
        with self._write() as conn:
            conn.execute(
                "INSERT INTO invalid (digest, source, first_received_at, last_received_at,"
                " count, reason, raw) VALUES (?, ?, ?, ?, 1, ?, ?)"
                " ON CONFLICT (digest) DO UPDATE SET count = invalid.count + 1,"
                " last_received_at = excluded.last_received_at",
                (digest, source, at, at, reason, kept),
            )
            journal(conn, self._clock.now(), key, "invalid", f"from {source}: {reason}")
        ADMISSIONS.inc(decision=Decision.INVALID.value)
        log.warning(
            "alert_invalid_recorded", digest=digest, source=source, reason=reason, size=len(raw)
        )

    # ------------------------------------------------------------------ alerts

    def seen(self, key: AlertKey) -> bool:
        with self._read() as conn:
            row = conn.execute(
                "SELECT 1 FROM alerts WHERE sender = ? AND identifier = ? AND sent = ?",
                (key.sender, key.identifier, key.sent),
            ).fetchone()
        return row is not None

    def get(self, key: AlertKey) -> StoredAlert | None:
        with self._read() as conn:
            row = conn.execute(
                f"SELECT {ALERT_COLUMNS}, raw FROM alerts"  # noqa: S608 - constant columns
                " WHERE sender = ? AND identifier = ? AND sent = ?",
                (key.sender, key.identifier, key.sent),
            ).fetchone()
        return None if row is None else row_to_alert(row, bytes(row["raw"]))

    def _select_alerts(
        self, where: str, params: Sequence[Any], *, with_raw: bool, order: str, limit: int | None
    ) -> list[StoredAlert]:
        columns = ALERT_COLUMNS + (", raw" if with_raw else "")
        sql = f"SELECT {columns} FROM alerts WHERE {where} ORDER BY {order}"  # noqa: S608 - constant fragments
        if limit is not None:
            sql += f" LIMIT {int(limit)}"
        with self._read() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [row_to_alert(r, bytes(r["raw"]) if with_raw else b"") for r in rows]

    def active(self, now: datetime, *, with_raw: bool = False) -> list[StoredAlert]:
        """Alerts in force at ``now``: not cancelled, superseded or expired, highest first.

        An alert whose ``expires`` has passed is left out even before :meth:`expire_alerts`
        has marked it.
        """
        return self._select_alerts(
            "status = 'active' AND (expires IS NULL OR expires > ?)",
            (us(now),),
            with_raw=with_raw,
            order="priority, received_at, id",
            limit=None,
        )

    def cancels_since(
        self, since: datetime, *, with_raw: bool = False, limit: int = 1000
    ) -> list[StoredAlert]:
        """Cancel messages received after ``since`` that took effect (admitted as a cancel,
        or held and then approved), newest first: what a partner feed must carry so that a
        gateway reading it learns of a cancel (a Cancel is never itself in force)."""
        return self._select_alerts(
            "kind = 'cap' AND msg_type = 'Cancel' AND received_at > ?"
            " AND (decision = 'cancel' OR (decision = 'held' AND approved_by != ''))",
            (us(since),),
            with_raw=with_raw,
            order="received_at DESC, id DESC",
            limit=limit,
        )

    def alerts(
        self, *, limit: int = 100, before: datetime | None = None, with_raw: bool = False
    ) -> list[StoredAlert]:
        """The most recently received alerts, newest first (``before``: page backwards)."""
        where, params = (
            ("kind = 'cap'", ())
            if before is None
            else ("kind = 'cap' AND received_at < ?", (us(before),))
        )
        return self._select_alerts(
            where, params, with_raw=with_raw, order="received_at DESC, id DESC", limit=limit
        )

    def search(
        self,
        *,
        text: str = "",
        since: datetime | None = None,
        until: datetime | None = None,
        status: str | None = None,
        before: datetime | None = None,
        limit: int = 100,
        with_raw: bool = False,
    ) -> list[StoredAlert]:
        """Past and present alerts, newest first: ``text`` found (any case) in the
        identifier, sender, sender's name, event, headline or area names; received in
        ``[since, until)``; of one ``status``; ``before`` pages backwards."""
        clauses: list[str] = ["kind = 'cap'"]
        params: list[Any] = []
        if text:
            pattern = (
                "%"
                + text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
                + "%"
            )
            fields = ("identifier", "sender", "sender_name", "event", "headline", "areas")
            clauses.append(
                "(" + " OR ".join(f"lower({f}) LIKE ? ESCAPE '\\'" for f in fields) + ")"
            )
            params.extend([pattern] * len(fields))
        for clause, value in (
            ("received_at >= ?", since),
            ("received_at < ?", until),
            ("received_at < ?", before),
        ):
            if value is not None:
                clauses.append(clause)
                params.append(us(value))
        if status is not None:
            clauses.append("status = ?")
            params.append(status)
        return self._select_alerts(
            " AND ".join(clauses),
            params,
            with_raw=with_raw,
            order="received_at DESC, id DESC",
            limit=limit,
        )

    def namesakes(self, key: AlertKey) -> list[StoredAlert]:
        """Other alerts with the same identifier (another sender or ``sent``): the same
        event as another feed or a relay wrote it."""
        return self._select_alerts(
            "identifier = ? AND NOT (sender = ? AND sent = ?)",
            (key.identifier, key.sender, key.sent),
            with_raw=False,
            order="received_at, id",
            limit=50,
        )

    def copies(self, key: AlertKey) -> list[StoredAlert]:
        """The other copies of the event ``key`` belongs to (the same message by another
        feed, a relay, an off-air header), first received first; empty when it has none."""
        stored = self.get(key)
        if stored is None:
            return []
        event = stored.event_key or str(key)
        return self._select_alerts(
            "kind = 'cap' AND event_key = ? AND NOT (sender = ? AND identifier = ? AND sent = ?)",
            (event, key.sender, key.identifier, key.sent),
            with_raw=False,
            order="received_at, id",
            limit=200,
        )

    def receipts(self, key: AlertKey) -> list[StoredAlert]:
        """The Acks and Errors that reference ``key`` (partners' receipts), oldest first."""
        return self._select_alerts(
            "msg_type IN ('Ack', 'Error') AND id IN (SELECT alert_id FROM alert_refs"
            " WHERE sender = ? AND identifier = ? AND sent = ?)",
            (key.sender, key.identifier, key.sent),
            with_raw=False,
            order="received_at, id",
            limit=200,
        )

    def incidents(
        self, since: datetime, *, limit: int = 1000, with_raw: bool = False
    ) -> list[StoredAlert]:
        """Inbound incident reports (``kind = 'incident'``, not plain radio text) received
        from ``since`` on, newest first (every update of an incident is its own row)."""
        return self._select_alerts(
            "kind = 'incident' AND msg_type = 'Incident' AND received_at >= ?",
            (us(since),),
            with_raw=with_raw,
            order="received_at DESC, id DESC",
            limit=limit,
        )

    def expire_alerts(self, now: datetime) -> list[StoredAlert]:
        """Mark active alerts past their ``expires`` as expired; returns those just marked.

        An alert without ``expires`` stays active until updated or cancelled, and is expired
        here when its duplicate memory runs out (``received_at + dedup_floor``).
        """
        now_us = us(now)
        with self._write() as conn:
            rows = conn.execute(
                f"SELECT {ALERT_COLUMNS} FROM alerts WHERE status = 'active' AND ("  # noqa: S608 - constant columns
                " (expires IS NOT NULL AND expires <= ?)"
                " OR (expires IS NULL AND forget_after <= ?)) ORDER BY id",
                (now_us, now_us),
            ).fetchall()
            for row in rows:
                conn.execute(
                    "UPDATE alerts SET status = 'expired', status_changed_at = ?,"
                    " deactivated_at = ? WHERE id = ?",
                    (now_us, now_us, row["id"]),
                )
                key = row_key(row)
                journal(conn, now, key, "expired", "alert no longer in force")
        return [
            replace(row_to_alert(row), status=AlertStatus.EXPIRED, status_changed_at=now)
            for row in rows
        ]

    def deactivated_since(self, since: datetime, *, limit: int = 1000) -> list[StoredAlert]:
        """Alerts that stopped being active after ``since`` (cancelled, superseded, expired).

        Ordered by the time they stopped (``status_changed_at``); the daemon keeps the last
        one's time as its cursor and clears their retained MQTT summaries. An alert that was
        never active (a Cancel message itself, one expired on receipt) is not listed.

        A page holds about ``limit`` alerts but never splits alerts that went out of force at
        the same instant (one ``expire_alerts`` call), so the cursor loses none of them.
        """
        since_us = us(since)
        return self._select_alerts(
            "deactivated_at IS NOT NULL AND deactivated_at > ? AND deactivated_at <= COALESCE("
            " (SELECT deactivated_at FROM alerts WHERE deactivated_at > ?"
            "  ORDER BY deactivated_at LIMIT 1 OFFSET ?), 9223372036854775807)",
            (since_us, since_us, max(0, int(limit) - 1)),
            with_raw=False,
            order="deactivated_at, id",
            limit=None,
        )

    # ------------------------------------------------------------------ outbox

    def _entries(self, where: str, params: Sequence[Any], tail: str = "") -> list[OutboxEntry]:
        sql = (
            f"SELECT {ENTRY_COLUMNS} FROM outbox o JOIN alerts a ON a.id = o.alert_id"  # noqa: S608 - constant fragments
            f" WHERE {where} {tail}"
        )
        with self._read() as conn:
            return [row_to_entry(r) for r in conn.execute(sql, params).fetchall()]

    def deliveries(self, key: AlertKey) -> list[OutboxEntry]:
        return self._entries(
            "a.sender = ? AND a.identifier = ? AND a.sent = ?",
            (key.sender, key.identifier, key.sent),
            "ORDER BY o.id",
        )

    def entry(self, entry_id: int) -> OutboxEntry | None:
        found = self._entries("o.id = ?", (entry_id,))
        return found[0] if found else None

    def due(self, sink: str, now: datetime, limit: int = 1) -> list[OutboxEntry]:
        """Pending entries of ``sink`` whose next attempt is due, most urgent then oldest.

        Reads at most ``limit`` rows through the ``outbox_due`` index, whatever the backlog.
        """
        if limit < 1:
            return []
        return self._entries(
            "o.sink = ? AND o.state = 'pending' AND o.next_attempt_at <= ?",
            (sink, us(now)),
            f"ORDER BY o.priority, o.enqueued_at, o.id LIMIT {int(limit)}",
        )

    def claim(
        self,
        sink: str,
        now: datetime,
        *,
        limit: int = 1,
        lease: timedelta = timedelta(seconds=60),
        by: str = "",
    ) -> list[OutboxEntry]:
        """Take due entries for delivery: :meth:`due`, with a lease on each entry taken by
        ``by`` (the instance's name).

        An entry taken stays taken -- no second worker, of this instance or another, takes
        it -- until its outcome is recorded (:meth:`mark_delivered` / :meth:`mark_failed`,
        given the entry's ``started_at``) or :meth:`release_claims` settles it as in doubt
        (its lease ran out, its instance started again or went silent). The start of each
        attempt is journalled (``attempt_started``).
        """
        if limit < 1:
            return []
        # SQLite: not synced; a claim lost with the power only means the attempt is not known
        # to have started; the outcome that follows is written synced (and syncs this too).
        with self._write(sync=self._claim_sync) as conn:
            return claim(conn, sink, now, limit=limit, lease=lease, lock=self._claim_lock, by=by)

    def release_claims(
        self,
        now: datetime,
        in_doubt: Callable[[str], str] | None = None,
        *,
        owner: str | None = "",
        silent_after: timedelta | None = None,
    ) -> int:
        """Settle the attempts whose outcome will never be reported: each is **in doubt**
        (it may have reached its sink). ``in_doubt(sink)`` names the sink's policy --
        ``resend`` (the default: due at once), ``hold`` or ``skip``. The attempt stays
        counted: the sink may have received it, so an update or a cancel of the alert still
        goes to that sink. Returns how many entries were in doubt.

        Which attempts: those whose lease ran out; with ``owner`` (the name of the instance
        that is starting; on a store only one process uses, every claim), that instance's;
        with ``silent_after`` on a shared store, those of an instance whose heartbeat lags
        its peers' newest by more than that (see :func:`~gateway.storage.sql_outbox.
        release_claims`). ``owner=None`` is the routine sweep of a running instance.
        """
        with self._write() as conn:
            resolved = release_claims(
                conn,
                now,
                in_doubt or (lambda _sink: "resend"),
                shared=self._shared,
                owner=owner,
                silent_after=silent_after,
                lock=self._claim_lock,
            )
        for entry, policy in resolved:
            IN_DOUBT.inc(sink=entry.sink, resolution=policy)
            if entry.state is not EntryState.PENDING:
                OUTBOX_TRANSITIONS.inc(sink=entry.sink, state=entry.state.value)
        if resolved:
            log.warning(
                "outbox_in_doubt",
                entries=len(resolved),
                resolutions={p: sum(1 for _e, q in resolved if q == p) for p in IN_DOUBT_POLICIES},
            )
        return len(resolved)

    def pending_count(self, sink: str | None = None) -> int:
        with self._read() as conn:
            if sink is None:
                row = conn.execute("SELECT COUNT(*) AS n FROM outbox WHERE state = 'pending'")
            else:
                row = conn.execute(
                    "SELECT COUNT(*) AS n FROM outbox WHERE sink = ? AND state = 'pending'",
                    (sink,),
                )
            return int(row.fetchone()["n"])

    def outbox_counts(self) -> dict[tuple[str, EntryState], int]:
        """Entries per (sink, state), for the status page; also sets the gauge
        ``borderlink_outbox_entries`` (call it when metrics are scraped)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT sink, state, COUNT(*) AS n FROM outbox GROUP BY sink, state"
            ).fetchall()
        counts = {(r["sink"], EntryState(r["state"])): int(r["n"]) for r in rows}
        for sink in {s for s, _ in counts} | self._gauged_sinks:
            for state in EntryState:
                OUTBOX_ENTRIES.set(counts.get((sink, state), 0), sink=sink, state=state.value)
        self._gauged_sinks |= {s for s, _ in counts}
        return counts

    def _transition(
        self,
        entry_id: int,
        *,
        at: datetime,
        decide: Callable[[OutboxEntry], Change],
        claimed_at: datetime | None = None,
    ) -> OutboxEntry:
        """Change one entry in one transaction; ``decide`` sees it as stored first. A late
        outcome (``claimed_at`` no longer the entry's claim) is journalled, then refused."""
        late: LateResultError | None = None
        with self._write() as conn:
            try:
                after, before, change = apply(
                    conn, entry_id, at=at, decide=decide, claimed_at=claimed_at
                )
            except LateResultError as exc:
                late = exc
        if late is not None:
            LATE_OUTCOMES.inc()
            raise late
        _changed(before, change)
        return after

    def mark_delivered(self, entry_id: int, at: datetime) -> OutboxEntry:
        """Record a completed transmission.

        Accepted from any state but ``held`` and ``delivered``: a transmission that finished
        after its entry was superseded or expired did happen, and the audit trail says so.
        Marking an entry delivered twice is refused (it would hide a double transmission).
        """
        return self._transition(entry_id, at=at, decide=delivered)

    def mark_delivered_many(
        self,
        entry_ids: Sequence[int],
        at: datetime,
        *,
        claims: Mapping[int, datetime] | None = None,
    ) -> tuple[list[OutboxEntry], list[EntryStateError]]:
        """:meth:`mark_delivered` for a batch in one transaction (at most one disk sync: see
        ``_outcome_sync`` and :meth:`sync`).

        An entry the rule refuses (held, already delivered) is returned with its error and
        does not stop the others from being recorded. ``claims`` maps an entry taken by
        :meth:`claim` to its ``started_at``: the outcome of a claim already settled is late
        (see :func:`~gateway.storage.sql_outbox.apply`).
        """
        done: list[tuple[OutboxEntry, OutboxEntry, Change]] = []
        refused: list[EntryStateError] = []
        with self._write(sync=self._outcome_sync) as conn:
            # Read together (an entry named twice is read again for its second outcome).
            stored = load_entries(conn, entry_ids) if len(set(entry_ids)) == len(entry_ids) else {}
            for entry_id in entry_ids:
                claimed_at = None if claims is None else claims.get(entry_id)
                try:
                    done.append(
                        apply(
                            conn,
                            entry_id,
                            at=at,
                            decide=delivered,
                            claimed_at=claimed_at,
                            stored=stored.get(entry_id),
                        )
                    )
                except LateResultError as exc:
                    LATE_OUTCOMES.inc()
                    refused.append(exc)
                except EntryStateError as exc:
                    refused.append(exc)
        self._outcome_recorded()
        for _after, before, change in done:
            _changed(before, change)
        return [after for after, _before, _change in done], refused

    def mark_failed(
        self,
        entry_id: int,
        reason: str,
        *,
        retry_at: datetime | None,
        at: datetime | None = None,
        claimed_at: datetime | None = None,
    ) -> OutboxEntry:
        """Record a failed attempt: retry at ``retry_at``, or fail for good when None.

        ``at`` is when the attempt failed (the ledger's clock when not given);
        ``claimed_at``, the ``started_at`` of the claim it was made under (a late outcome
        raises :class:`~gateway.storage.sql_outbox.LateResultError`).

        An entry superseded or expired while its attempt was under way keeps that terminal
        state; the failed attempt is still counted and journalled.
        """

        def decide(entry: OutboxEntry) -> Change:
            return failed(entry, reason, retry_at)

        return self._transition(
            entry_id, at=at or self._clock.now(), decide=decide, claimed_at=claimed_at
        )

    def expire_due(self, now: datetime) -> list[OutboxEntry]:
        """Mark pending and held entries whose ``expires`` passed; returns them."""
        with self._write() as conn:
            result = expire_due(conn, now)
        for item in result:
            OUTBOX_TRANSITIONS.inc(sink=item.sink, state=EntryState.EXPIRED.value)
            log.info("outbox_entry_expired", alert=str(item.key), entry=item.id, sink=item.sink)
        return result

    def holds(self, *, limit: int = 1000) -> list[OutboxEntry]:
        """Entries waiting for an operator, most urgent then oldest first."""
        return self._entries(
            "o.state = 'held'", (), f"ORDER BY o.priority, o.enqueued_at, o.id LIMIT {int(limit)}"
        )

    def approve(self, entry_id: int, *, by: str = "operator", comment: str = "") -> OutboxEntry:
        """Release a held entry: it becomes pending and is due at once. ``by`` (the
        operator) and ``comment`` are recorded with the alert; a held update or cancel then
        withdraws what it references, in the same transaction."""
        now = self._clock.now()
        with self._write() as conn:
            after, before, change = apply(
                conn, entry_id, at=now, decide=lambda entry: approved(entry, by, comment)
            )
            alert_id = int(
                conn.execute("SELECT alert_id FROM outbox WHERE id = ?", (entry_id,)).fetchone()[
                    "alert_id"
                ]
            )
            withdrawn = approve_withdrawals(
                conn,
                alert_id,
                by=by,
                now=now,
                cross_sender_references=self.cross_sender_references,
            )
        _changed(before, change)
        if withdrawn:
            log.info(
                "held_update_approved",
                alert=str(after.key),
                by=by,
                withdrawn=[str(k) for k in withdrawn],
            )
        return after

    def reject(self, entry_id: int, reason: str, *, by: str = "operator") -> OutboxEntry:
        """Refuse a held entry: it fails with ``rejected by <by>: <reason>``."""

        def decide(entry: OutboxEntry) -> Change:
            return rejected(entry, reason, by)

        return self._transition(entry_id, at=self._clock.now(), decide=decide)

    # ------------------------------------------------------------------ journal

    def acknowledge(self, key: AlertKey, by: str, at: datetime) -> bool:
        """An operator has seen an alert that rings (journalled ``acknowledged``, ``by NAME``);
        False when the ledger has no such alert."""
        with self._write() as conn:
            found = conn.execute(
                "SELECT 1 FROM alerts WHERE sender = ? AND identifier = ? AND sent = ?",
                (key.sender, key.identifier, key.sent),
            ).fetchone()
            if found is None:
                return False
            journal(conn, at, key, "acknowledged", f"by {by}")
        log.info("alert_acknowledged", alert=str(key), by=by)
        return True

    def acknowledgements(self, keys: Sequence[AlertKey]) -> dict[AlertKey, str]:
        """Who acknowledged each of ``keys`` first (the keys nobody acknowledged are absent)."""
        out: dict[AlertKey, str] = {}
        with self._read() as conn:
            for key in keys:
                row = conn.execute(
                    "SELECT detail FROM journal WHERE sender = ? AND identifier = ? AND sent = ?"
                    " AND event = 'acknowledged' ORDER BY id LIMIT 1",
                    (key.sender, key.identifier, key.sent),
                ).fetchone()
                if row is not None:
                    out[key] = str(row["detail"]).removeprefix("by ")
        return out

    def journal(self, key: AlertKey, *, limit: int | None = None) -> list[JournalEntry]:
        """The audit trail of one alert (admission and every delivery change), oldest first."""
        with self._read() as conn:
            sql = (
                "SELECT * FROM journal WHERE sender = ? AND identifier = ? AND sent = ? ORDER BY id"
            )
            params: tuple[Any, ...] = (key.sender, key.identifier, key.sent)
            if limit is not None:
                sql += " LIMIT ?"
                params += (int(limit),)
            rows = conn.execute(sql, params).fetchall()
        return [row_to_journal(r) for r in rows]

    def journal_between(
        self, start: datetime, end: datetime, *, limit: int = 10_000
    ) -> list[JournalEntry]:
        """Audit lines with ``start <= at < end``, oldest first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM journal WHERE at >= ? AND at < ? ORDER BY at, id LIMIT ?",
                (us(start), us(end), int(limit)),
            ).fetchall()
        return [row_to_journal(r) for r in rows]

    def invalid_records(self, *, limit: int = 100) -> list[InvalidRecord]:
        """Documents refused as invalid, most recently received first."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT * FROM invalid ORDER BY last_received_at DESC LIMIT ?", (int(limit),)
            ).fetchall()
        return [
            InvalidRecord(
                key=AlertKey("", "sha256:" + r["digest"], ""),
                digest=r["digest"],
                source=r["source"],
                first_received_at=dt(r["first_received_at"]),
                last_received_at=dt(r["last_received_at"]),
                count=r["count"],
                reason=r["reason"],
                raw=bytes(r["raw"]),
            )
            for r in rows
        ]

    # ------------------------------------------------------------------ retention

    # ------------------------------------------------------------------ coordination

    def lead(self, task: str, holder: str, now: datetime, ttl: timedelta) -> int | None:
        """Take or renew the lease of a once-only ``task`` for ``holder`` until ``now + ttl``;
        returns its token (which grows at every takeover) or None while another instance's
        lease runs."""
        until = us(now + ttl)
        with self._write() as conn:
            row = conn.execute(
                "SELECT holder, until, token FROM leases WHERE task = ?", (task,)
            ).fetchone()
            if row is None:
                conn.execute(
                    "INSERT INTO leases (task, holder, until, token) VALUES (?, ?, ?, 1)",
                    (task, holder, until),
                )
                token = 1
            elif row["holder"] == holder and row["until"] > us(now):
                token = int(row["token"])
                conn.execute("UPDATE leases SET until = ? WHERE task = ?", (until, task))
            elif row["until"] <= us(now):
                token = int(row["token"]) + 1
                conn.execute(
                    "UPDATE leases SET holder = ?, until = ?, token = ? WHERE task = ?",
                    (holder, until, token, task),
                )
            else:
                return None
            if row is None or row["holder"] != holder or row["until"] <= us(now):
                journal(
                    conn,
                    now,
                    AlertKey("", f"lease:{task}", ""),
                    "lead_taken",
                    f"{holder} leads {task} (token {token})",
                )
        return token

    def release_lead(self, task: str, holder: str, now: datetime) -> None:
        """Give up a lease at once (a clean stop), so another instance need not wait for it."""
        with self._write() as conn:
            conn.execute(
                "UPDATE leases SET until = ? WHERE task = ? AND holder = ?",
                (us(now), task, holder),
            )

    def heartbeat(self, name: str, now: datetime, leads: Sequence[str] = ()) -> None:
        """This instance is alive (and leads ``leads``)."""
        with self._write(sync=False) as conn:
            conn.execute(
                "INSERT INTO instances (name, started_at, last_seen, leads) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (name) DO UPDATE SET last_seen = excluded.last_seen,"
                " leads = excluded.leads",
                (name, us(now), us(now), json.dumps(sorted(leads))),
            )

    def peers(self) -> list[dict[str, Any]]:
        """Every instance that reported on this ledger, most recently seen first, with what
        it leads and its claims: the deliveries it has under way, per sink."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT name, started_at, last_seen, leads FROM instances ORDER BY last_seen DESC"
            ).fetchall()
            claimed = conn.execute(
                "SELECT claimed_by, sink, COUNT(*) AS n FROM outbox"
                " WHERE state = 'pending' AND started_at IS NOT NULL"
                " GROUP BY claimed_by, sink ORDER BY claimed_by, sink"
            ).fetchall()
        claims: dict[str, dict[str, int]] = {}
        for c in claimed:
            claims.setdefault(c["claimed_by"], {})[c["sink"]] = int(c["n"])
        return [
            {
                "name": r["name"],
                "started_at": dt(r["started_at"]).isoformat(),
                "last_seen": dt(r["last_seen"]).isoformat(),
                "leads": json.loads(r["leads"]),
                "claims": claims.get(r["name"], {}),
            }
            for r in rows
        ]

    # -------------------------------------------------------------- console login failures

    def login_failures(
        self, keys: Sequence[str], since: datetime, *, limit: int = 1000
    ) -> dict[str, list[datetime]]:
        """The failed logins recorded against each of ``keys`` after ``since``, oldest first
        (at most the newest ``limit`` of each): one query, each key read backwards along the
        (key, at) index -- however many failures other names and addresses have."""
        if not keys:
            return {}
        with self._read() as conn:
            return _login_failures(conn, keys, since, limit)

    def reserve_login_try(
        self,
        keys: Sequence[str],
        at: datetime,
        since: datetime,
        allow: Callable[[dict[str, list[datetime]]], bool],
        *,
        limit: int = 1000,
    ) -> tuple[dict[str, list[datetime]], bool]:
        """A login try about to be checked, counted as a failure of each of ``keys`` from
        its start: in one transaction that the tries of every instance on this ledger take
        in turn, the failures since ``since`` are read and, when ``allow`` says so of them,
        the try is recorded at ``at``. A burst of tries spread over the instances gets no
        more than one instance gives. Returns the failures read and whether it was recorded
        (:meth:`end_login_try` takes it back when the password was right)."""
        with self._write(sync=False) as conn:
            self._serialise_names(conn, keys)
            found = _login_failures(conn, keys, since, limit)
            if not allow(found):
                return found, False
            for key in keys:
                conn.execute("INSERT INTO login_failures (key, at) VALUES (?, ?)", (key, us(at)))
        return found, True

    def end_login_try(self, keys: Sequence[str], at: datetime) -> None:
        """A try recorded by :meth:`reserve_login_try` at ``at`` succeeded: it was no failure
        (one record of each key at ``at`` goes)."""
        row = self._ROW_ID
        with self._write(sync=False) as conn:
            for key in keys:
                conn.execute(
                    f"DELETE FROM login_failures WHERE {row} = (SELECT {row}"  # noqa: S608 - a constant column name
                    " FROM login_failures WHERE key = ? AND at = ? LIMIT 1)",
                    (key, us(at)),
                )

    def _serialise_names(self, conn: Connection, names: Sequence[str]) -> None:
        """Inside a write: make the writes that touch the same ``names`` wait for each other.
        A store with one writer at a time (SQLite's ``BEGIN IMMEDIATE``) needs nothing more."""

    def record_login_failure(self, keys: Sequence[str], at: datetime) -> None:
        """A failed login, counted against each of ``keys``."""
        with self._write(sync=False) as conn:
            for key in keys:
                conn.execute("INSERT INTO login_failures (key, at) VALUES (?, ?)", (key, us(at)))

    def forget_login_failures(self, key: str) -> None:
        """``key`` starts afresh (a successful login of that account name)."""
        with self._write(sync=False) as conn:
            conn.execute("DELETE FROM login_failures WHERE key = ?", (key,))

    def prune(self, now: datetime) -> int:
        """Forget keys past ``max(expires, received_at + dedup_floor)``; returns how many.

        Never forgets an alert that is still active (call :meth:`expire_alerts` first, so
        the daemon learns it went out of force) or one with an entry still pending or held.
        Invalid documents are forgotten ``dedup_floor`` after last seen; journal lines after
        ``journal_retention``; failed console logins after :data:`LOGIN_FAILURE_RETENTION`
        (longer than any lockout window and lock together).
        """
        now_us = us(now)
        floor_us = self.dedup_floor // US
        with self._write() as conn:
            alerts = conn.execute(
                "DELETE FROM alerts WHERE forget_after <= ? AND status != 'active'"
                " AND NOT EXISTS (SELECT 1 FROM outbox o WHERE o.alert_id = alerts.id"
                "   AND o.state IN (?, ?))",
                (now_us, *_OPEN),
            ).rowcount
            invalid = conn.execute(
                "DELETE FROM invalid WHERE last_received_at <= ?", (now_us - floor_us,)
            ).rowcount
            journal = conn.execute(
                "DELETE FROM journal WHERE at < ?",
                (now_us - self.journal_retention // US,),
            ).rowcount
            logins = conn.execute(
                "DELETE FROM login_failures WHERE at < ?",
                (now_us - LOGIN_FAILURE_RETENTION // US,),
            ).rowcount
        if alerts or invalid or journal or logins:
            log.info(
                "ledger_pruned",
                alerts=alerts,
                invalid=invalid,
                journal_lines=journal,
                login_failures=logins,
            )
        return int(alerts) + int(invalid)


def _login_failures(
    conn: Connection, keys: Sequence[str], since: datetime, limit: int
) -> dict[str, list[datetime]]:
    """See :meth:`SqlLedger.login_failures` (inside the caller's transaction)."""
    one = (
        "SELECT * FROM (SELECT key, at FROM login_failures WHERE key = ? AND at > ?"
        " ORDER BY at DESC LIMIT ?) AS k{}"
    )
    query = " UNION ALL ".join(one.format(i) for i in range(len(keys)))
    params = [p for key in keys for p in (key, us(since), limit)]
    found: dict[str, list[datetime]] = {}
    for row in conn.execute(query, params).fetchall():
        found.setdefault(row["key"], []).append(dt(row["at"]))
    return {key: sorted(times) for key, times in found.items()}
