"""Ledger throughput: durable admissions and outbox drains on a file database.

Each figure is the median of ``ROUNDS`` rounds on a fresh file in a temporary directory. The
baseline is the least a durable ledger can do per alert: one plain ``INSERT`` of the raw
document and ``COMMIT`` on the same WAL + ``synchronous=FULL`` settings, so the ratio shows
what the decision, the outbox entry and the journal cost on top of the fsync.
"""

from __future__ import annotations

import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import structlog

from cap_schemas.model import (
    Alert,
    Area,
    Category,
    Certainty,
    Info,
    MsgType,
    Scope,
    Severity,
    Status,
    Urgency,
)
from gateway.ledger import Admission, OutboxEntry, PlannedDelivery
from gateway.storage.sqlite import SqliteLedger

ROUNDS = 3
ADMITS = 600
DRAINS = 600
T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
RAW = b"<alert>" + b"x" * 20_000 + b"</alert>"  # about the size of a signed CAP-CP alert


def make_alert(n: int) -> Alert:
    info = Info(
        categories=(Category.MET,),
        event="rainfall",
        urgency=Urgency.EXPECTED,
        severity=Severity.MODERATE,
        certainty=Certainty.LIKELY,
        expires=T0 + timedelta(hours=6),
        headline="rainfall warning in effect",
        areas=(Area("Kent County"),),
    )
    return Alert(
        identifier=f"bench-{n}",
        sender="bench@example.org",
        sent=T0,
        status=Status.ACTUAL,
        msg_type=MsgType.ALERT,
        scope=Scope.PUBLIC,
        infos=(info,),
        raw=RAW,
    )


def one_sink(_admission: Admission) -> list[PlannedDelivery]:
    return [
        PlannedDelivery(
            sink="mqtt",
            route="all",
            parts=(b"summary",),
            content_type="application/json",
            attributes={"topic": "alerts"},
            priority=10,
            expires=T0 + timedelta(hours=6),
        )
    ]


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def bench_baseline(path: Path) -> tuple[float, list[float]]:
    import sqlite3  # noqa: PLC0415 - only the baseline talks to sqlite3 directly

    conn = sqlite3.connect(path, isolation_level=None)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("CREATE TABLE alerts (id INTEGER PRIMARY KEY, k TEXT UNIQUE, raw BLOB)")
    latencies: list[float] = []
    started = time.perf_counter()
    for n in range(ADMITS):
        t = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        conn.execute("INSERT INTO alerts (k, raw) VALUES (?, ?)", (f"bench-{n}", RAW))
        conn.execute("COMMIT")
        latencies.append(time.perf_counter() - t)
    elapsed = time.perf_counter() - started
    conn.close()
    return ADMITS / elapsed, latencies


def bench_admit(path: Path) -> tuple[float, list[float]]:
    alerts = [make_alert(n) for n in range(ADMITS)]
    latencies: list[float] = []
    with SqliteLedger(path) as ledger:
        started = time.perf_counter()
        for alert in alerts:
            t = time.perf_counter()
            ledger.admit(alert, source="bench", received_at=T0, plan=one_sink)
            latencies.append(time.perf_counter() - t)
        elapsed = time.perf_counter() - started
    return ADMITS / elapsed, latencies


def bench_drain(path: Path, take: Callable[[SqliteLedger], list[OutboxEntry]]) -> float:
    with SqliteLedger(path) as ledger:
        for n in range(DRAINS):
            ledger.admit(make_alert(n), source="bench", received_at=T0, plan=one_sink)
        started = time.perf_counter()
        done = 0
        while True:
            batch = take(ledger)
            if not batch:
                break
            for entry in batch:
                ledger.mark_delivered(entry.id, T0)
                done += 1
        elapsed = time.perf_counter() - started
    assert done == DRAINS
    return DRAINS / elapsed


BACKLOG = 100_000
DUE_CALLS = 200


def fill_backlog(path: Path) -> None:
    """An outbox with BACKLOG pending entries on one sink, written with plain SQL."""
    import sqlite3  # noqa: PLC0415

    SqliteLedger(path).close()
    conn = sqlite3.connect(path)
    conn.execute("BEGIN")
    conn.executemany(
        "INSERT INTO alerts (sender, identifier, sent, decision, status, source, received_at,"
        " forget_after, priority, msg_type, cap_status, raw_sha256, raw_size, raw)"
        " VALUES ('s', ?, 'x', 'new', 'active', 'bulk', 0, 0, 9, 'Alert', 'Actual', '', 0, x'')",
        ((f"bulk-{n}",) for n in range(BACKLOG)),
    )
    conn.execute(
        "INSERT INTO outbox (alert_id, sink, route, content_type, attributes, parts, priority,"
        " enqueued_at, next_attempt_at, state, updated_at) SELECT id, 'radio', 'r', 'text/plain',"
        " '{}', x'', 1 + (id % 25), id, 0, 'pending', 0 FROM alerts"
    )
    conn.execute("COMMIT")
    conn.close()


def bench_due_backlog(path: Path, *, drop_index: bool) -> float:
    """Median milliseconds of due(limit=1) over a BACKLOG-entry outbox."""
    import sqlite3  # noqa: PLC0415

    if drop_index:
        conn = sqlite3.connect(path)
        conn.execute("DROP INDEX outbox_due")
        conn.close()
    times: list[float] = []
    with SqliteLedger(path) as ledger:
        for _ in range(DUE_CALLS):
            t = time.perf_counter()
            (entry,) = ledger.due("radio", T0)
            times.append(time.perf_counter() - t)
        assert entry.priority == 1
    return statistics.median(times) * 1000


def main() -> None:
    saved = structlog.get_config()
    # one log line per admission would time the terminal, not the ledger
    structlog.configure(wrapper_class=structlog.make_filtering_bound_logger(40))
    try:
        run()
    finally:
        structlog.configure(**saved)


def run() -> None:
    rows: dict[str, list[float]] = {
        "baseline INSERT+COMMIT /s": [],
        "admit (1-sink plan) /s": [],
        "admit p50 ms": [],
        "admit p99 ms": [],
        "baseline p50 ms": [],
        "due()+mark_delivered /s": [],
        "claim()+mark_delivered /s": [],
        "due() @100k backlog ms": [],
        "  same, index dropped ms": [],
    }
    for r in range(ROUNDS):
        with tempfile.TemporaryDirectory() as tmp:
            base = Path(tmp)
            rate, lat = bench_baseline(base / f"baseline-{r}.sqlite3")
            rows["baseline INSERT+COMMIT /s"].append(rate)
            rows["baseline p50 ms"].append(percentile(lat, 0.5) * 1000)
            rate, lat = bench_admit(base / f"admit-{r}.sqlite3")
            rows["admit (1-sink plan) /s"].append(rate)
            rows["admit p50 ms"].append(percentile(lat, 0.5) * 1000)
            rows["admit p99 ms"].append(percentile(lat, 0.99) * 1000)
            rows["due()+mark_delivered /s"].append(
                bench_drain(
                    base / f"due-{r}.sqlite3",
                    lambda led: led.due("mqtt", T0 + timedelta(minutes=1)),
                )
            )
            rows["claim()+mark_delivered /s"].append(
                bench_drain(
                    base / f"claim-{r}.sqlite3",
                    lambda led: led.claim("mqtt", T0 + timedelta(minutes=1)),
                )
            )
            fill_backlog(base / f"backlog-{r}.sqlite3")
            rows["due() @100k backlog ms"].append(
                bench_due_backlog(base / f"backlog-{r}.sqlite3", drop_index=False)
            )
            rows["  same, index dropped ms"].append(
                bench_due_backlog(base / f"backlog-{r}.sqlite3", drop_index=True)
            )
    print(f"ledger on a file DB (WAL, synchronous=FULL), {ROUNDS} rounds, median of rounds")
    print(f"{'measure':<28} {'median':>10}   rounds")
    for name, values in rows.items():
        digits = 3 if name.endswith("ms") else 1
        shown = ", ".join(f"{v:.{digits}f}" for v in values)
        print(f"{name:<28} {statistics.median(values):>10.{digits}f}   [{shown}]")
    ratio = statistics.median(rows["admit (1-sink plan) /s"]) / statistics.median(
        rows["baseline INSERT+COMMIT /s"]
    )
    print(f"admit rate / baseline rate: {ratio:.2f}")
    speedup = statistics.median(rows["  same, index dropped ms"]) / statistics.median(
        rows["due() @100k backlog ms"]
    )
    print(f"due() at a {BACKLOG} backlog: the index makes it {speedup:.0f}x faster")


if __name__ == "__main__":
    main()
