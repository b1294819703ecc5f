"""PostgreSQL's reading of an admission's facts: the reads of
:func:`gateway.storage.sql_admission.read_facts`, issued together.

The caller runs this inside a psycopg pipeline (:class:`~gateway.storage.postgres.PostgresLedger`
does, for the read before the decision and for the read again under the admission's locks):
every statement is sent before the first answer is awaited, so the facts of a new alert -- the
stored alert of its key, the updates stored before it, what it references, the relays that
name it, the alerts sharing one of its identity keys -- take one round trip to the server.
An alert whose references are stored takes one more (what their deliveries reached, and its
chain key, made of their events); the copies of an event it joins, one more.

The facts are those of the shared reader, row for row and in its order (``record`` compares
the two reads). Two lookups are written for PostgreSQL's planner so that they read only what
they return, with or without statistics on the tables (a ledger filling fast is read before
its tables are analysed): the alerts are fetched by their ids (``id = ANY(ARRAY(...))``), never
joined by a scan of every alert; the newest candidates of each window key come from
``identity_window`` (schema version 6), which walks the ``(key, alert_id)`` index backwards.
"""

from __future__ import annotations

from collections.abc import Sequence

from cap_schemas.model import AlertKey
from gateway.identity import Probe
from gateway.ledger import Facts, Known
from gateway.storage.sql_admission import (
    KNOWN_SQL,
    LATER_SQL,
    REACHED_SQL,
    RELAYS_SQL,
    WINDOW_CANDIDATES,
    later_parameters,
    relay_parameters,
    with_copies,
)
from gateway.storage.sql_rows import KNOWN_COLUMNS, Connection, Cursor, Row, row_to_known

__all__ = ["read_facts"]

_KNOWN_A = ", ".join(f"a.{c.strip()}" for c in KNOWN_COLUMNS.split(","))


def _by_id(ids: str) -> str:
    """The alerts whose ids ``ids`` (a subquery) yields, each read by its primary key; their
    kind is checked on the rows found (OFFSET 0 keeps it from being looked up in the index of
    every alert)."""
    return (
        f"SELECT {_KNOWN_A}, a.kind FROM alerts a"  # noqa: S608 - constant fragments
        f" WHERE a.id = ANY(ARRAY({ids})) OFFSET 0"
    )


# (identity key, stored alert) for each linking key.
LINKING_SQL = (
    f"SELECT ik.key AS ikey, {_KNOWN_A}"  # noqa: S608 - constant fragments
    f" FROM ({_by_id('SELECT alert_id FROM identity_keys WHERE key = ANY(?)')}) AS a"
    " JOIN identity_keys ik ON ik.alert_id = a.id AND ik.key = ANY(?)"
    " WHERE a.kind = 'cap' ORDER BY a.id, ik.key"
)
# The newest WINDOW_CANDIDATES alerts among the newest WINDOW_CANDIDATES of each window key.
_NEWEST = (
    "SELECT DISTINCT w.id FROM identity_window(?::text[], ?::integer) AS w(id)"
    " ORDER BY w.id DESC LIMIT ?"
)
WINDOW_SQL = (
    f"SELECT {_KNOWN_A} FROM ({_by_id(_NEWEST)}) AS a"  # noqa: S608 - constant fragments
    " WHERE a.kind = 'cap' ORDER BY a.id"
)


def _key(key: AlertKey) -> tuple[str, str, str]:
    return (key.sender, key.identifier, key.sent)


def _linking(conn: Connection, keys: Sequence[str]) -> Cursor | None:
    if not keys:
        return None
    return conn.execute(LINKING_SQL, (list(keys), list(keys)))


def _pairs(cursor: Cursor | None) -> list[tuple[str, Known]]:
    return [] if cursor is None else [(r["ikey"], row_to_known(r)) for r in cursor.fetchall()]


def read_facts(
    conn: Connection, key: AlertKey, references: Sequence[AlertKey], probe: Probe | None
) -> Facts:
    """The facts of :func:`gateway.storage.sql_admission.read_facts`, read in as few round
    trips as they allow (``conn`` in pipeline mode)."""
    refs = [r for r in dict.fromkeys(references) if r != key]
    existing = conn.execute(KNOWN_SQL, _key(key))
    later = conn.execute(LATER_SQL, later_parameters(key))
    stored = [conn.execute(KNOWN_SQL, _key(r)) for r in refs]
    linking = [k for k in probe.lookup if not k.startswith("window:")] if probe else []
    window = [k for k in probe.lookup if k.startswith("window:")] if probe else []
    relays: Cursor | None = None
    found: Cursor | None = None
    near: Cursor | None = None
    if probe is not None:
        relays = conn.execute(RELAYS_SQL, relay_parameters(key, probe))
        found = _linking(conn, linking)
        near = (
            conn.execute(WINDOW_SQL, (window, WINDOW_CANDIDATES, WINDOW_CANDIDATES))
            if window
            else None
        )
    # the first answer: every statement above went in one round trip
    row: Row | None = existing.fetchone()
    rows = [r for r in (c.fetchone() for c in stored) if r is not None]
    reached = [conn.execute(REACHED_SQL, (r["id"],)) for r in rows]
    chain = probe.chain(row_to_known(r).event_id for r in rows) if probe else None
    if probe is not None and row is None and chain:
        found = _linking(conn, [*linking, chain])  # with the chain key: read again, in order
    referenced = tuple(
        row_to_known(r, [(e["sink"], e["route"]) for e in c.fetchall()])
        for r, c in zip(rows, reached, strict=True)
    )
    facts = Facts(
        existing=None if row is None else row_to_known(row),
        later=tuple(row_to_known(r) for r in later.fetchall()),
        referenced=referenced,
    )
    if probe is None or relays is None or row is not None:
        return facts
    matches = _pairs(found)
    if near is not None:
        matches += [("window:", row_to_known(r)) for r in near.fetchall()]
    return with_copies(conn, facts, key, matches, relays.fetchall())
