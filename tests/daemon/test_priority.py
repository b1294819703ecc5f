"""Priority and link failures: the most urgent alert first, nothing lost when a link drops."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.daemon.conftest import (
    CapFactory,
    Proxy,
    daemon_toml,
    load,
    poll_until,
    publish_all,
    running_daemon,
    subscriber,
)
from tests.helpers import Broker

SINK = (
    '[[sink]]\nname = "radio"\ntype = "mqtt"\ntopic = "radio/{key}"\n'
    'url = "{url}"\nretry_initial = 0.05\nretry_max = 0.2\n'
)
ROUTE = '[[route]]\nname = "all"\nsinks = ["radio"]\n'


class TestBroadcastImmediatelyFirst:
    """A Broadcast-Immediately alert queued behind 500 routine ones reaches the sink first."""

    async def test_bi_alert_overtakes_backlog(
        self, mosquitto: Broker, tmp_path: Path, cap: CapFactory
    ) -> None:
        proxy = Proxy(mosquitto.host, mosquitto.port)  # the link to the sink, down for now
        config = load(
            daemon_toml(
                tmp_path,
                mosquitto.url,
                sinks=SINK.replace("{url}", proxy.url),
                routes=ROUTE,
            )
        )
        routine = [cap(severity="Minor", urgency="Future") for _ in range(500)]
        urgent = cap(severity="Moderate", urgency="Expected", broadcast_immediately=True)
        async with (
            subscriber(mosquitto, ["radio/#"]) as out,
            running_daemon(config) as daemon,
        ):
            await publish_all(mosquitto, [*routine, urgent])

            async def backlog() -> bool:
                return await asyncio.to_thread(daemon.ledger.pending_count, "radio") >= 501

            await poll_until(backlog, within=60)
            await proxy.open()  # the link comes back with 501 entries waiting
            await out.wait_for(lambda: len({m.alert_key for m in out.messages}) >= 501, within=60)
            await proxy.cut()
        first = [m.alert_key for m in out.messages[:3]]
        assert first[0] == CapFactory.key_of(urgent), (first, CapFactory.key_of(urgent))
        assert len({m.alert_key for m in out.messages}) == 501


class TestLinkLoss:
    """A sink link cut while alerts flow: deliveries resume when it returns, none lost."""

    async def test_cut_link_resumes_without_loss(
        self, mosquitto: Broker, tmp_path: Path, cap: CapFactory
    ) -> None:
        proxy = Proxy(mosquitto.host, mosquitto.port)
        await proxy.open()
        config = load(
            daemon_toml(
                tmp_path,
                mosquitto.url,
                sinks=SINK.replace("{url}", proxy.url),
                routes=ROUTE,
            )
        )
        alerts = [cap() for _ in range(60)]
        async with (
            subscriber(mosquitto, ["radio/#"]) as out,
            running_daemon(config),
        ):
            await publish_all(mosquitto, alerts[:20])
            await out.wait_for(lambda: len({m.alert_key for m in out.messages}) >= 20)
            await proxy.cut()
            await publish_all(mosquitto, alerts[20:40])
            await proxy.open()
            await publish_all(mosquitto, alerts[40:])
            await out.wait_for(lambda: len({m.alert_key for m in out.messages}) >= 60)
            await proxy.cut()
        keys = [m.alert_key for m in out.messages]
        assert set(keys) == {CapFactory.key_of(a) for a in alerts}
        # A copy repeated after a cut carries the same delivery id: consumers drop it.
        ids: dict[str | None, set[str | None]] = {}
        for m in out.messages:
            ids.setdefault(m.alert_key, set()).add(m.delivery_id)
        assert all(len(v) == 1 for v in ids.values())
