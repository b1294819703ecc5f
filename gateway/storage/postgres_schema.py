"""The PostgreSQL schema of the ledger and its migrations.

The same tables as SQLite's (:mod:`~gateway.storage.sqlite_schema`, at its version 4), so that
the shared SQL of :mod:`~gateway.storage.sql` runs on both: times are BIGINT microseconds
since 1970-01-01 UTC, documents BYTEA, JSON as TEXT. Versions are numbered on their own; each
is applied in one transaction under an advisory lock, so instances starting together migrate
once. A database written by a newer borderlink is refused rather than guessed at.
"""

from __future__ import annotations

from typing import Any

from gateway.storage.sqlite_schema import identity_migration, login_failures_migration

_V1 = (
    """
    CREATE TABLE alerts (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        sender TEXT NOT NULL,
        identifier TEXT NOT NULL,
        sent TEXT NOT NULL,
        decision TEXT NOT NULL,
        status TEXT NOT NULL
            CHECK (status IN ('active', 'cancelled', 'superseded', 'expired')),
        reason TEXT NOT NULL DEFAULT '',
        source TEXT NOT NULL,
        received_at BIGINT NOT NULL,
        expires BIGINT,
        forget_after BIGINT NOT NULL,
        priority INTEGER NOT NULL,
        msg_type TEXT NOT NULL,
        cap_status TEXT NOT NULL,
        event TEXT NOT NULL DEFAULT '',
        severity TEXT NOT NULL DEFAULT '',
        urgency TEXT NOT NULL DEFAULT '',
        headline TEXT NOT NULL DEFAULT '',
        sender_name TEXT NOT NULL DEFAULT '',
        areas TEXT NOT NULL DEFAULT '[]',
        refs TEXT NOT NULL DEFAULT '[]',
        superseded_by TEXT,
        status_changed_at BIGINT,
        deactivated_at BIGINT,
        raw_sha256 TEXT NOT NULL,
        raw_size BIGINT NOT NULL,
        raw BYTEA NOT NULL,
        kind TEXT NOT NULL DEFAULT 'cap',
        trust TEXT NOT NULL DEFAULT 'anonymous',
        door TEXT NOT NULL DEFAULT 'anonymous',
        signature TEXT NOT NULL DEFAULT 'unsigned',
        signer TEXT NOT NULL DEFAULT '',
        approved_by TEXT NOT NULL DEFAULT '',
        pending_refs INTEGER NOT NULL DEFAULT 0,
        UNIQUE (sender, identifier, sent)
    )
    """,
    "CREATE INDEX alerts_status_expires ON alerts (status, expires)",
    "CREATE INDEX alerts_forget_after ON alerts (forget_after)",
    "CREATE INDEX alerts_received_at ON alerts (received_at)",
    "CREATE INDEX alerts_deactivated_at ON alerts (deactivated_at)",
    "CREATE INDEX alerts_kind_received_at ON alerts (kind, received_at)",
    """
    CREATE TABLE alert_refs (
        alert_id BIGINT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
        sender TEXT NOT NULL,
        identifier TEXT NOT NULL,
        sent TEXT NOT NULL,
        PRIMARY KEY (alert_id, sender, identifier, sent)
    )
    """,
    "CREATE INDEX alert_refs_target ON alert_refs (sender, identifier, sent)",
    """
    CREATE TABLE outbox (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        alert_id BIGINT NOT NULL REFERENCES alerts (id) ON DELETE CASCADE,
        sink TEXT NOT NULL,
        route TEXT NOT NULL,
        content_type TEXT NOT NULL,
        attributes TEXT NOT NULL,
        parts BYTEA NOT NULL,
        priority INTEGER NOT NULL,
        enqueued_at BIGINT NOT NULL,
        expires BIGINT,
        attempts INTEGER NOT NULL DEFAULT 0,
        next_attempt_at BIGINT NOT NULL,
        state TEXT NOT NULL
            CHECK (state IN ('pending', 'held', 'delivered', 'superseded', 'expired', 'failed')),
        reason TEXT NOT NULL DEFAULT '',
        updated_at BIGINT NOT NULL,
        started_at BIGINT,
        UNIQUE (alert_id, sink)
    )
    """,
    "CREATE INDEX outbox_due ON outbox (sink, state, priority, enqueued_at)",
    "CREATE INDEX outbox_state_expires ON outbox (state, expires)",
    """
    CREATE TABLE journal (
        id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
        at BIGINT NOT NULL,
        sender TEXT NOT NULL,
        identifier TEXT NOT NULL,
        sent TEXT NOT NULL,
        event TEXT NOT NULL,
        detail TEXT NOT NULL DEFAULT '',
        entry_id BIGINT,
        sink TEXT
    )
    """,
    "CREATE INDEX journal_key ON journal (sender, identifier, sent, id)",
    "CREATE INDEX journal_at ON journal (at)",
    """
    CREATE TABLE invalid (
        digest TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        first_received_at BIGINT NOT NULL,
        last_received_at BIGINT NOT NULL,
        count INTEGER NOT NULL,
        reason TEXT NOT NULL,
        raw BYTEA NOT NULL
    )
    """,
    "CREATE INDEX invalid_last_received_at ON invalid (last_received_at)",
)

# 2: coordination of several instances: who is alive, who leads each once-only task (a lease
# with a token that grows at every takeover).
_V2 = (
    """
    CREATE TABLE instances (
        name TEXT PRIMARY KEY,
        started_at BIGINT NOT NULL,
        last_seen BIGINT NOT NULL,
        leads TEXT NOT NULL DEFAULT '[]'
    )
    """,
    """
    CREATE TABLE leases (
        task TEXT PRIMARY KEY,
        holder TEXT NOT NULL,
        until BIGINT NOT NULL,
        token BIGINT NOT NULL
    )
    """,
)

# 3: an outbox entry that becomes pending wakes the sink workers of every instance at once
# (NOTIFY on commit, "schema:sink") instead of at their next poll.
_V3 = (
    """
    CREATE FUNCTION outbox_due_notify() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF NEW.state = 'pending' THEN
            PERFORM pg_notify('borderlink_due', TG_TABLE_SCHEMA || ':' || NEW.sink);
        END IF;
        RETURN NULL;
    END
    $$
    """,
    """
    CREATE TRIGGER outbox_due AFTER INSERT OR UPDATE OF state, next_attempt_at ON outbox
    FOR EACH ROW EXECUTE FUNCTION outbox_due_notify()
    """,
)

# 4: who holds each claim (the instance's name), so that an instance starting again settles
# its own attempts at once and others settle those of an instance gone silent.
_V4 = ("ALTER TABLE outbox ADD COLUMN claimed_by TEXT NOT NULL DEFAULT ''",)

# 5: one identity across feeds (SQLite's version 7): the event of each alert, the rule that
# linked it and the copy it matched; the identity keys later copies find it by.
IDENTITY_VERSION = 5
_V5 = identity_migration("BIGINT")

# 6: the newest alerts of each identity window key, read backwards along the (key, alert_id)
# index and nothing else: LIMIT n of a key with thousands of alerts reads n index entries,
# whatever the planner believes of the tables (a ledger filling fast is read before it is
# analysed, and then a bitmap scan and a sort of every alert of the key look cheaper). The
# range condition keeps the alert_id index from giving that order; with sorting disabled the
# index walk is the only plan left.
_V6 = (
    """
    CREATE FUNCTION identity_window(keys TEXT[], n INTEGER) RETURNS SETOF BIGINT
    LANGUAGE plpgsql STABLE SET enable_sort = off AS $$
    BEGIN
        RETURN QUERY SELECT w.alert_id FROM unnest(keys) AS k(key) CROSS JOIN LATERAL (
            SELECT i.alert_id FROM identity_keys i WHERE i.key >= k.key AND i.key <= k.key
            ORDER BY i.key DESC, i.alert_id DESC LIMIT n) AS w;
    END
    $$
    """,
)

# 7: failed console logins (SQLite's version 8), shared by every instance on this ledger.
_V7 = login_failures_migration("BIGINT")

# version -> statements; append new versions, never edit a released one.
MIGRATIONS: dict[int, tuple[str, ...]] = {
    1: _V1,
    2: _V2,
    3: _V3,
    4: _V4,
    IDENTITY_VERSION: _V5,
    6: _V6,
    7: _V7,
}
DUE_CHANNEL = "borderlink_due"
LATEST = max(MIGRATIONS)
_MIGRATION_LOCK = 0x626F72646C696E6B  # "borderlink": one migrating instance at a time


class SchemaTooNewError(RuntimeError):
    """The database was written by a newer schema than this code knows."""


def migrate(conn: Any, *, now_us: int) -> int:
    """Apply every migration the database lacks (``conn``: a psycopg connection, not in a
    transaction); returns the (highest) version found before migrating."""
    with conn.transaction():
        conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        conn.execute(
            "CREATE TABLE IF NOT EXISTS schema_version ("
            " version INTEGER PRIMARY KEY, applied_at BIGINT NOT NULL)"
        )
        applied = {
            int(r["version"]) for r in conn.execute("SELECT version FROM schema_version")
        }
        found = max(applied, default=0)
        if found > LATEST:
            msg = f"ledger schema version {found} is newer than this software ({LATEST})"
            raise SchemaTooNewError(msg)
        # Every known version not applied yet, in order -- also one below the highest
        # applied: versions numbered by changes made side by side may meet a database in
        # either order (each touches only its own columns and tables).
        for version in sorted(v for v in MIGRATIONS if v not in applied):
            for statement in MIGRATIONS[version]:
                conn.execute(statement)
            conn.execute(
                "INSERT INTO schema_version (version, applied_at) VALUES (%s, %s)",
                (version, now_us),
            )
    return found


def current_version(conn: Any) -> int:
    row = conn.execute("SELECT MAX(version) AS v FROM schema_version").fetchone()
    return int(row["v"] or 0)
