"""The NAAD simulator's endless replay (``make run``): each pass renames the bundled alerts,
and each copy expires once the next pass has brought its successor, so the alerts in force
stay a handful however long the demo runs."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from cap_schemas.parse import parse_alert
from hardware.feed_alerts import load_alerts, make_live
from hardware.sim_naad import NaadSimulator
from tests.feeds.conftest import wait_for

INTERVAL = 0.05


class TestReplay:
    """A replayed copy lives one pass and one interval longer, never its original hours."""

    async def test_copies_expire_after_the_next_pass(self) -> None:
        alerts = load_alerts("naad")
        assert len(alerts) >= 2
        now = datetime.now(UTC)
        original = [
            max(i.expires for i in parse_alert(make_live(raw, now=now).raw).infos if i.expires)
            - now
            for raw in alerts
        ]
        pass_length = timedelta(seconds=len(alerts) * INTERVAL)
        assert max(original) > pass_length + timedelta(minutes=30)  # hours, in the bundle
        async with NaadSimulator(
            alerts, ports=[0], archive_port=None, heartbeat_interval=None,
            replay_interval=INTERVAL, repeat=True, live=False,
        ) as sim:  # fmt: skip
            await wait_for(lambda: len(sim.published) >= 2 * len(alerts))
            copies = [parse_alert(sim.archived(t)) for t in sim.published[: 2 * len(alerts)]]
        assert len({c.identifier for c in copies}) == len(copies)  # renamed on each pass
        for copy in copies:
            for info in copy.infos:
                assert info.expires is not None
                lives = info.expires - copy.sent
                # Two seconds of slack: CAP times are whole seconds.
                assert lives <= pass_length + timedelta(seconds=INTERVAL + 2), copy.identifier
                assert lives > pass_length - timedelta(seconds=1), copy.identifier

    async def test_without_repeat_the_times_are_the_bundles(self) -> None:
        alerts = load_alerts("naad")
        async with NaadSimulator(
            alerts[:1], ports=[0], archive_port=None, heartbeat_interval=None,
            replay_interval=INTERVAL, repeat=False, live=False,
        ) as sim:  # fmt: skip
            await wait_for(lambda: len(sim.published) == 1)
            copy = parse_alert(sim.archived(sim.published[0]))
        first = parse_alert(alerts[0])
        lives = [i.expires - copy.sent for i in copy.infos if i.expires]
        assert lives == [i.expires - first.sent for i in first.infos if i.expires]
