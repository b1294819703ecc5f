"""Admit numbered alerts into a ledger file until killed; used by the crash tests.

Run as ``python -m tests.ledger.crash_worker DB [--kill-in-plan N] [--count N] [--drain]``.
Alert ``i`` is the same document on every run (so a restarted worker re-admits what is
already there); every fifth alert is an Update of the one before it. After each ``admit``
returns the worker prints ``admitted <i> <decision>``: a line on stdout means the admission
was committed. With ``--drain`` it also delivers, after each admission, one claimed entry
per sink and prints ``delivered <entry id>`` once ``mark_delivered`` has returned.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import structlog

from cap_schemas.model import (
    Alert,
    AlertKey,
    Category,
    Certainty,
    Info,
    MsgType,
    Scope,
    Severity,
    Status,
    Urgency,
    format_cap_datetime,
)
from gateway.ledger import Admission, PlannedDelivery
from gateway.storage.sqlite import SqliteLedger

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
SINKS = ("mqtt", "radio", "endec")
SENDER = "crash@example.org"


def sent_of(i: int) -> datetime:
    return T0 + timedelta(seconds=i)


def key_of(i: int) -> AlertKey:
    return AlertKey(SENDER, f"crash-{i}", format_cap_datetime(sent_of(i)))


def alert_of(i: int) -> Alert:
    update = i % 5 == 4
    info = Info(
        categories=(Category.SAFETY,),
        event="test",
        urgency=Urgency.IMMEDIATE,
        severity=Severity.SEVERE,
        certainty=Certainty.OBSERVED,
        expires=T0 + timedelta(days=1),
    )
    return Alert(
        identifier=f"crash-{i}",
        sender=SENDER,
        sent=sent_of(i),
        status=Status.ACTUAL,
        msg_type=MsgType.UPDATE if update else MsgType.ALERT,
        scope=Scope.PUBLIC,
        references=(key_of(i - 1),) if update else (),
        infos=(info,),
        raw=f"<alert>crash-{i}</alert>".encode() * 50,
    )


def main(argv: Sequence[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("db")
    parser.add_argument("--kill-in-plan", type=int, default=-1)
    parser.add_argument("--count", type=int, default=1_000_000)
    parser.add_argument("--drain", action="store_true")
    args = parser.parse_args(argv)
    # stdout carries only the "admitted" lines the test reads
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.stderr))
    ledger = SqliteLedger(args.db)

    for i in range(args.count):

        def plan(_admission: Admission, i: int = i) -> list[PlannedDelivery]:
            if i == args.kill_in_plan:
                os.kill(os.getpid(), signal.SIGKILL)
            return [
                PlannedDelivery(
                    sink=sink,
                    route="crash",
                    parts=(f"part-{i}-{sink}".encode(),),
                    content_type="text/plain",
                    attributes={},
                    priority=1,
                    expires=None,
                )
                for sink in SINKS
            ]

        result = ledger.admit(alert_of(i), source="crash", received_at=sent_of(i), plan=plan)
        sys.stdout.write(f"admitted {i} {result.decision.value}\n")
        sys.stdout.flush()
        if args.drain:
            for sink in SINKS:
                for entry in ledger.claim(sink, T0 + timedelta(days=1)):
                    ledger.mark_delivered(entry.id, T0 + timedelta(days=1))
                    sys.stdout.write(f"delivered {entry.id}\n")
                    sys.stdout.flush()
    ledger.close()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
