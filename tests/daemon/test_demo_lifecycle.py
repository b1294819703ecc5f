"""The demo source through the daemon: a whole lifecycle per cycle, and nothing piles up.

Each option of ``type = "demo"`` is set in the configuration and read back from what the
sink received: ``interval`` and ``pause`` from the ``sent`` times, ``lifetime`` and
``short_lifetime`` from ``expires``, ``repeat`` from the number of cycles.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from datetime import timedelta
from pathlib import Path

from cap_schemas.model import Alert, AlertKey, MsgType
from cap_schemas.parse import parse_alert
from tests.daemon.conftest import daemon_toml, load, poll_until, running_daemon, subscriber
from tests.helpers import Broker

CYCLE = ("Alert", "Alert", "Update", "Cancel")


def _config(tmp: Path, broker: Broker, *, repeat: bool) -> Path:
    source = (
        '[[source]]\nname = "demo"\ntype = "demo"\ninterval = 1\nstart_delay = 0\n'
        f"lifetime = 600\nshort_lifetime = 2\npause = 3\nrepeat = {str(repeat).lower()}\n"
    )
    return daemon_toml(
        tmp,
        broker.url,
        sinks='[[sink]]\nname = "out"\ntype = "mqtt"\ntopic = "out/{key}"\n',
        routes='[[route]]\nname = "all"\nsinks = ["out"]\n',
        extra=source,
    )


def _in_cycle_order(alerts: Iterable[Alert]) -> list[Alert]:
    """The order the demo played them: by cycle, then by template (the sink gets them most
    urgent first when several wait, so the tornado's Update may overtake the flood warning).
    Identifiers end in ``NN-template.SERIAL-CYCLE``."""

    def place(alert: Alert) -> tuple[int, int]:
        found = re.search(r"(\d\d)-[a-z-]+\.[0-9a-f]+-(\d+)$", alert.identifier)
        assert found is not None, alert.identifier
        return int(found.group(2)), int(found.group(1))

    return sorted(alerts, key=place)


def _cycle_of(alert: Alert) -> int:
    found = re.search(r"-(\d+)$", alert.identifier)
    assert found is not None, alert.identifier
    return int(found.group(1))


def _expires(alert: Alert) -> timedelta:
    expires = alert.infos[0].expires
    assert expires is not None
    return expires - alert.sent


class TestDemoLifecycle:
    async def test_a_cycle_is_alert_update_cancel_and_expiry(
        self, mosquitto: Broker, tmp_path: Path
    ) -> None:
        config = load(_config(tmp_path, mosquitto, repeat=False))
        async with subscriber(mosquitto, ["out/#"]) as out, running_daemon(config) as daemon:
            await out.wait_for(lambda: len(out.on("out/")) >= 4)
            alerts = _in_cycle_order(parse_alert(m.payload) for m in out.on("out/"))
            tornado, flood, update, cancel = alerts
            assert [str(a.msg_type) for a in alerts] == list(CYCLE)
            assert update.references == (tornado.key,)
            assert cancel.references == (tornado.key, update.key)
            # lifetime = 600 for the tornado warning, short_lifetime = 2 for the flood warning.
            assert _expires(tornado) == timedelta(seconds=600)
            assert _expires(flood) == timedelta(seconds=2)
            assert flood.infos[0].language == "en-US"

            async def settled() -> bool:
                return not await asyncio.to_thread(daemon.ledger.active, daemon.clock.now())

            # Once the flood warning has expired nothing of the cycle is in force any more.
            await poll_until(settled, within=20)

            def status(key: AlertKey) -> str:
                stored = daemon.ledger.get(key)
                assert stored is not None
                return str(stored.status.value)

            async def flood_expired() -> bool:
                return await asyncio.to_thread(status, flood.key) == "expired"

            await poll_until(flood_expired, within=20)
            assert await asyncio.to_thread(status, tornado.key) == "superseded"
            assert await asyncio.to_thread(status, update.key) == "cancelled"
        # repeat = false: one cycle only.
        assert len(out.on("out/")) == 4

    async def test_repeats_with_fresh_identifiers_and_never_piles_up(
        self, mosquitto: Broker, tmp_path: Path
    ) -> None:
        config = load(_config(tmp_path, mosquitto, repeat=True))
        most_active = 0
        async with subscriber(mosquitto, ["out/#"]) as out, running_daemon(config) as daemon:

            def complete_cycles() -> list[int]:
                cycles = [_cycle_of(parse_alert(m.payload)) for m in out.on("out/")]
                return sorted(c for c in set(cycles) if cycles.count(c) == len(CYCLE))

            async def two_cycles() -> bool:
                nonlocal most_active
                active = await asyncio.to_thread(daemon.ledger.active, daemon.clock.now())
                most_active = max(most_active, len(active))
                # the first two cycles whole (a third may have begun: the sink sends the most
                # urgent first, so its tornado warning can overtake the second's Cancel)
                return complete_cycles()[:2] == [1, 2]

            await poll_until(two_cycles, within=40)
        heard = [parse_alert(m.payload) for m in out.on("out/")]
        alerts = _in_cycle_order(a for a in heard if _cycle_of(a) <= 2)
        assert [str(a.msg_type) for a in alerts] == list(CYCLE) * 2
        assert len({a.key for a in alerts}) == 8
        # interval = 1 s between the alerts of a cycle, pause = 3 s between two cycles
        # (``sent`` has whole seconds, so a gap reads up to one second short).
        first, second = alerts[:4], alerts[4:]
        assert (second[0].sent - first[-1].sent) >= timedelta(seconds=2)
        assert (first[-1].sent - first[0].sent) >= timedelta(seconds=2)
        assert second[2].references == (second[0].key,)
        assert second[3].msg_type is MsgType.CANCEL
        # Never more than the tornado and the flood warning of one cycle in force at once.
        assert 1 <= most_active <= 2
