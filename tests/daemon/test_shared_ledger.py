"""Two gateways on one PostgreSQL ledger: both hear every alert, each alert goes out once."""

from __future__ import annotations

import uuid
from collections import Counter
from pathlib import Path

from cap_schemas.model import AlertKey
from tests.daemon.conftest import (
    CapFactory,
    daemon_toml,
    load,
    poll_until,
    publish_all,
    running_daemon,
    subscriber,
)
from tests.helpers import Broker, Postgres


def _instance(tmp: Path, broker: Broker, postgres: Postgres, schema: str) -> Path:
    tmp.mkdir()
    path = daemon_toml(tmp, broker.url)
    text = path.read_text(encoding="utf-8")
    ledger = text[text.index("[ledger]") : text.index("\n\n", text.index("[ledger]"))]
    text = text.replace(
        ledger,
        f'[ledger]\nbackend = "postgresql"\ndsn = "{postgres.dsn}"\nschema = "{schema}"',
    )
    path.write_text(text, encoding="utf-8")
    return path


class TestActiveActive:
    """The MQTT input reaches both instances (a plain subscription each); the shared ledger
    admits each alert once and one instance's worker delivers it."""

    async def test_each_alert_once(
        self, mosquitto: Broker, postgres: Postgres, tmp_path: Path, cap: CapFactory
    ) -> None:
        schema = "gw_" + uuid.uuid4().hex[:10]
        first = load(_instance(tmp_path / "a", mosquitto, postgres, schema))
        second = load(_instance(tmp_path / "b", mosquitto, postgres, schema))
        assert first.ledger.backend == "postgresql"
        alerts = [cap(severity="Severe") for _ in range(20)]
        wanted = {CapFactory.key_of(a) for a in alerts}
        async with (
            subscriber(mosquitto, ["out/cap/#"]) as out,
            running_daemon(first) as a,
            running_daemon(second) as b,
        ):
            await publish_all(mosquitto, alerts)
            await out.wait_for(lambda: wanted <= {m.alert_key for m in out.messages})

            async def both_decided() -> bool:  # each instance took each alert once
                admissions = Counter(
                    j.event
                    for key in wanted
                    for j in a.ledger.journal(_key(key))
                    if j.event in ("admitted", "duplicate")
                )
                return admissions == {"admitted": 20, "duplicate": 20}

            await poll_until(both_decided)

            def states() -> Counter[str]:
                return Counter(
                    e.state.value
                    for key in wanted
                    for e in b.ledger.deliveries(_key(key))
                    if e.sink == "out-cap"
                )

            async def recorded() -> bool:  # the sink's outcome is written after its PUBACK
                return states() == {"delivered": 20}

            await poll_until(recorded)
        copies = Counter(m.alert_key for m in out.messages)
        assert all(n == 1 for n in copies.values()), copies


def _key(text: str) -> AlertKey:
    return AlertKey.from_reference(text)
