"""The broker restarted while alerts flow: deliveries resume, none lost."""

from __future__ import annotations

import asyncio
import uuid
from pathlib import Path

import aiomqtt

from tests.daemon.conftest import (
    CapFactory,
    daemon_toml,
    load,
    persistent_mosquitto,
    running_daemon,
    subscriber,
)
from tests.helpers import Broker

ROUTE = '[[route]]\nname = "all"\nsinks = ["out-cap"]\n'
SINK = (
    '[[sink]]\nname = "out-cap"\ntype = "mqtt"\ntopic = "out/cap/{key}"\n'
    "retry_initial = 0.05\nretry_max = 0.5\n"
)


async def publish_reliably(broker: Broker, payloads: list[bytes]) -> None:
    """Publish every payload with QoS 1, reconnecting until the broker acknowledged each."""
    pending = list(payloads)
    while pending:
        try:
            async with aiomqtt.Client(
                broker.host, broker.port, identifier=f"pub-{uuid.uuid4().hex[:8]}", timeout=2
            ) as client:
                while pending:
                    await client.publish("borderlink/in/cap", pending[0], qos=1)
                    pending.pop(0)
        except aiomqtt.MqttError:
            await asyncio.sleep(0.1)


class TestBrokerRestart:
    """A broker stopped and started again mid-flow: the gateway reconnects and loses nothing."""

    async def test_restart_mid_flow(self, tmp_path: Path, cap: CapFactory) -> None:
        alerts = [cap() for _ in range(80)]
        with persistent_mosquitto() as broker:
            config = load(daemon_toml(tmp_path, broker.url, sinks=SINK, routes=ROUTE))
            async with (
                subscriber(broker, ["out/cap/#"], client_id="counter", persistent=True) as out,
                running_daemon(config) as daemon,
            ):
                await publish_reliably(broker, alerts[:40])
                await out.wait_for(lambda: len(out.messages) >= 10)
                await asyncio.to_thread(broker.restart)
                await publish_reliably(broker, alerts[40:])
                wanted = {CapFactory.key_of(a) for a in alerts}
                await out.wait_for(
                    lambda: wanted <= {m.alert_key for m in out.messages}, within=60
                )
                restarts = sum(daemon.supervisor.failures.values())
        ids: dict[str | None, set[str | None]] = {}
        for m in out.messages:
            ids.setdefault(m.alert_key, set()).add(m.delivery_id)
        assert set(ids) == wanted
        assert restarts >= 1  # the gateway did see the broker go away
        assert all(len(v) == 1 for v in ids.values())
