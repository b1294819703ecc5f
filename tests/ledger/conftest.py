"""Factories for the ledger tests: alerts built from the CAP dataclasses, a settable clock."""

from __future__ import annotations

import hashlib
import itertools
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cap_schemas.model import (
    Alert,
    AlertKey,
    Area,
    Category,
    Certainty,
    Info,
    MsgType,
    Scope,
    Severity,
    Status,
    Urgency,
    ValuePair,
)
from gateway.ledger import Admission, PlannedDelivery
from gateway.storage.postgres import PostgresLedger
from gateway.storage.sqlite import SqliteLedger

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@dataclass
class FakeClock:
    """A clock the test moves by hand."""

    current: datetime = T0

    def now(self) -> datetime:
        return self.current

    def advance(self, **kwargs: float) -> datetime:
        self.current += timedelta(**kwargs)
        return self.current


_counter = itertools.count(1)


def make_alert(
    identifier: str | None = None,
    *,
    sender: str = "cap-pac@canada.ca",
    sent: datetime = T0,
    msg_type: MsgType = MsgType.ALERT,
    status: Status = Status.ACTUAL,
    references: Sequence[AlertKey] = (),
    expires: datetime | None = None,
    no_expiry: bool = False,
    severity: Severity = Severity.MODERATE,
    urgency: Urgency = Urgency.EXPECTED,
    event: str = "rainfall",
    headline: str = "rainfall warning in effect",
    parameters: Sequence[tuple[str, str]] = (),
    areas: Sequence[str] = ("Kent County",),
    infos: int = 1,
    raw: bytes | None = None,
) -> Alert:
    """A CAP alert built directly from the model's dataclasses."""
    ident = identifier or f"urn:oid:2.49.0.1.124.{next(_counter)}"
    exp = None if no_expiry else (expires or sent + timedelta(hours=6))
    blocks = tuple(
        Info(
            categories=(Category.MET,),
            event=event if n == 0 else f"{event} (fr)",
            urgency=urgency,
            severity=severity,
            certainty=Certainty.LIKELY,
            language="en-CA" if n == 0 else "fr-CA",
            expires=exp,
            sender_name="Environment Canada",
            headline=headline,
            parameters=tuple(ValuePair(k, v) for k, v in parameters),
            areas=tuple(Area(area_desc=a) for a in areas),
        )
        for n in range(infos)
    )
    body = raw if raw is not None else f"<alert><identifier>{ident}</identifier></alert>".encode()
    return Alert(
        identifier=ident,
        sender=sender,
        sent=sent,
        status=status,
        msg_type=msg_type,
        scope=Scope.PUBLIC,
        references=tuple(references),
        infos=blocks,
        raw=body,
    )


def planned(
    sink: str,
    *,
    route: str = "r1",
    priority: int = 10,
    held: bool = False,
    expires: datetime | None = None,
    parts: tuple[bytes, ...] = (b"payload",),
) -> PlannedDelivery:
    return PlannedDelivery(
        sink=sink,
        route=route,
        parts=parts,
        content_type="text/plain",
        attributes={"topic": f"alerts/{sink}"},
        priority=priority,
        expires=expires,
        held=held,
    )


@dataclass
class Planner:
    """A plan callable that records the admissions it was asked about."""

    sinks: Sequence[str] = ("mqtt",)
    held: bool | Sequence[bool] = False
    priority: int = 10
    expires: datetime | None = None
    calls: list[Admission] = field(default_factory=list)

    def __call__(self, admission: Admission) -> list[PlannedDelivery]:
        self.calls.append(admission)
        held = [self.held] * len(self.sinks) if isinstance(self.held, bool) else list(self.held)
        return [
            planned(s, priority=self.priority, held=h, expires=self.expires)
            for s, h in zip(self.sinks, held, strict=True)
        ]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "ledger.sqlite3"


# The storage backends the shared ledger suite runs against: each opens a ledger over the
# store kept in a test's folder (the same store every time it is opened in one test), with
# the options of gateway.storage.sqlite.SqliteLedger. A new backend registers here and the
# contract tests (admission, outbox, lifecycle) run against it unchanged.
def _postgres(request: pytest.FixtureRequest, where: Path, **options: Any) -> SqliteLedger:
    server = request.getfixturevalue("postgres")
    options.pop("busy_timeout", None)
    schema = "t_" + hashlib.sha256(str(where).encode()).hexdigest()[:16]
    return PostgresLedger(server.dsn, schema=schema, **options)  # type: ignore[return-value]


BACKENDS: dict[str, Callable[..., SqliteLedger]] = {
    "sqlite": lambda _request, where, **options: SqliteLedger(where / "ledger.sqlite3", **options),
    "postgresql": _postgres,
}

OpenLedger = Callable[..., SqliteLedger]


@pytest.fixture(params=sorted(BACKENDS))
def open_ledger(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[OpenLedger]:
    """Open a ledger of the backend under test (again, for a restart); closed at the end."""
    opener = BACKENDS[request.param]
    opened: list[SqliteLedger] = []

    def open_(**options: Any) -> SqliteLedger:
        led = opener(request, tmp_path, **options)
        opened.append(led)
        return led

    yield open_
    for led in opened:
        led.close()


@pytest.fixture
def backend(open_ledger: OpenLedger, request: pytest.FixtureRequest) -> str:
    """The name of the backend under test (a key of BACKENDS)."""
    name: str = request.node.callspec.params["open_ledger"]
    return name


@pytest.fixture
def ledger(open_ledger: OpenLedger, clock: FakeClock) -> Iterator[SqliteLedger]:
    with open_ledger(clock=clock) as led:
        yield led


@pytest.fixture
def alert_factory() -> Callable[..., Alert]:
    return make_alert


def admit(
    led: SqliteLedger,
    alert: Alert,
    plan: Callable[[Admission], Sequence[PlannedDelivery]] | None = None,
    *,
    source: str = "naad-1",
    received_at: datetime = T0,
    **_: Any,
) -> Admission:
    return led.admit(alert, source=source, received_at=received_at, plan=plan or Planner())
