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

import functools
from collections.abc import Sequence

from cap_schemas.model import AlertKey
from gateway.identity import Probe
from gateway.ledger import Facts
from gateway.storage.sql_admission import (
    KNOWN_SQL,
    LATER_SQL,
    REACHED_SQL,
    RELAYS_SQL,
    WINDOW_CANDIDATES,
    later_parameters,
    relay_parameters,
    window_candidate,
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


# What a new alert's decision reads, in one statement: the stored alert of its key (part 0),
# the updates and cancels stored before it (1), and with a probe the relays that name it (2)
# and the alerts sharing a linking key (3) or a window key (4) with it -- each part in the
# order the shared reader reads it; a part with nothing to look for is left out (an empty
# lookup still costs its plan's work).
_PART = "SELECT {part} AS part, {ikey} AS ikey, {columns} FROM ({sql}) AS p{part}"
_PARTS = ((0, "''", KNOWN_SQL), (1, "''", LATER_SQL), (2, "''", RELAYS_SQL),
          (3, "ikey", LINKING_SQL), (4, "''", WINDOW_SQL))  # fmt: skip


@functools.cache
def facts_sql(parts: tuple[int, ...]) -> str:
    """The statement that reads ``parts`` (numbers of :data:`_PARTS`)."""
    return (
        " UNION ALL ".join(
            _PART.format(part=part, ikey=ikey, columns=KNOWN_COLUMNS, sql=sql)
            for part, ikey, sql in _PARTS
            if part in parts
        )
        + " ORDER BY part, id, ikey"
    )


def _key(key: AlertKey) -> tuple[str, str, str]:
    return (key.sender, key.identifier, key.sent)


def _facts_query(key: AlertKey, probe: Probe | None) -> tuple[str, tuple[object, ...]]:
    """The statement of :func:`facts_sql` for an admission of ``key``, with its parameters."""
    parts = [0, 1]
    parameters: list[object] = [*_key(key), *later_parameters(key)]
    if probe is not None:
        linking = [k for k in probe.lookup if not k.startswith("window:")]
        window = [k for k in probe.lookup if k.startswith("window:")]
        parts.append(2)
        parameters += relay_parameters(key, probe)
        if linking:
            parts.append(3)
            parameters += (linking, linking)
        if window:
            parts.append(4)
            parameters += (window, WINDOW_CANDIDATES, WINDOW_CANDIDATES)
    return facts_sql(tuple(parts)), tuple(parameters)


def read_facts(
    conn: Connection, key: AlertKey, references: Sequence[AlertKey], probe: Probe | None
) -> Facts:
    """The facts of :func:`gateway.storage.sql_admission.read_facts`, read in as few round
    trips as they allow (``conn`` in pipeline mode)."""
    refs = [r for r in dict.fromkeys(references) if r != key]
    parts = conn.execute(*_facts_query(key, probe))
    stored = [conn.execute(KNOWN_SQL, _key(r)) for r in refs]
    # the first answer: every statement above went in one round trip
    found: dict[int, list[Row]] = {n: [] for n in range(5)}
    for r in parts.fetchall():
        found[r["part"]].append(r)
    row: Row | None = found[0][0] if found[0] else None
    rows = [r for r in (c.fetchone() for c in stored) if r is not None]
    reached = [conn.execute(REACHED_SQL, (r["id"],)) for r in rows]
    chain = probe.chain(row_to_known(r).event_id for r in rows) if probe else None
    linked: Cursor | None = None
    if probe is not None and row is None and chain:  # with the chain key: read again, in order
        keys = [*(k for k in probe.lookup if not k.startswith("window:")), chain]
        linked = conn.execute(LINKING_SQL, (keys, keys))
    referenced = tuple(
        row_to_known(r, [(e["sink"], e["route"]) for e in c.fetchall()])
        for r, c in zip(rows, reached, strict=True)
    )
    facts = Facts(
        existing=None if row is None else row_to_known(row),
        later=tuple(row_to_known(r) for r in found[1]),
        referenced=referenced,
    )
    if probe is None or row is not None:
        return facts
    pairs = found[3] if linked is None else linked.fetchall()
    matches = [(r["ikey"], row_to_known(r)) for r in pairs]
    window = [window_candidate(r) for r in found[4]]
    return with_copies(conn, facts, key, matches, found[2], window=window)
