"""Talkgroup links: relaying, loop prevention, air-time budget, pause/resume, config errors."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

import gateway.links as links_module
from gateway.adapter import Outbound, Received
from gateway.errors import ConfigError, DeliveryError, FrameError
from gateway.http import DAEMON_KEY, link_routes
from gateway.links import LINK_DROPPED, AirtimeBudget, LinkManager, air_time
from gateway.model import RadioMessage


class FakeClock:
    """Monotonic time that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.t = 0.0
        self.slept: list[float] = []

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.t, UTC)

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


class FakeRadio:
    """An adapter double: records sends, yields what the test injects."""

    def __init__(self, name: str, *, fail: bool = False, line_rate: int | None = None) -> None:
        self.name = name
        self.sent: list[Outbound] = []
        self.inbox: asyncio.Queue[Received] = asyncio.Queue()
        self.fail = fail
        self.sent_event = asyncio.Event()
        self.changed = asyncio.Condition()
        if line_rate:  # a radio with a line rate has the LineRate ability
            self.line_rate = line_rate

    async def send(self, item: Outbound) -> None:
        if self.fail:
            raise DeliveryError("radio off")
        self.sent.append(item)
        self.sent_event.set()
        async with self.changed:
            self.changed.notify_all()

    async def wait_sent(self, n: int) -> None:
        async with asyncio.timeout(10), self.changed:
            await self.changed.wait_for(lambda: len(self.sent) >= n)

    async def subscribe(self) -> AsyncIterator[Received]:
        while True:
            yield await self.inbox.get()

    def hear(self, text: str, channel: str, sender: str = "", relay_id: str = "") -> Received:
        raw = RadioMessage(text, sender, channel, relay_id=relay_id).to_json()
        item = Received(raw=raw, source=self.name, channel=channel, kind="incident")
        self.inbox.put_nowait(item)
        return item

    def texts(self) -> list[str]:
        return [b"".join(i.parts).decode() for i in self.sent]


def manager(
    tables: list[dict[str, Any]], adapters: dict[str, Any], clock: Any = None
) -> LinkManager:
    return LinkManager.from_config(tables, adapters=adapters, clock=clock or FakeClock())


BOTH = {
    "name": "border",
    "endpoints": [
        "ca#CA-EAST",
        "us#US-NORTH",
        {"adapter": "mq", "channel": "t/border", "format": "json"},
    ],
}


async def drain(mgr: LinkManager) -> None:
    for _ in range(20):
        await asyncio.sleep(0)


class TestRelaying:
    """A message heard on one endpoint goes to every other endpoint, once, never back."""

    async def test_relay_to_all_others_once(self) -> None:
        ca, us, mq = FakeRadio("ca"), FakeRadio("us"), FakeRadio("mq")
        mgr = manager([BOTH], {"ca": ca, "us": us, "mq": mq})
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(mgr.run())
            ca.hear("Road closed at the bridge", "CA-EAST", "2001")
            await us.sent_event.wait()
            await mq.sent_event.wait()
            # The MQTT copy comes back on the subscription: tagged, so not relayed again.
            echo = mq.sent[0]
            mq.inbox.put_nowait(Received(raw=echo.parts[0], source="mq", channel="t/border"))
            # The US radio hears its own relay from another site: an echo, dropped.
            us.hear("2001: Road closed at the bridge", "US-NORTH", "9101")
            await drain(mgr)
            task.cancel()
        assert ca.sent == []
        assert us.texts() == ["2001: Road closed at the bridge"]
        assert us.sent[0].attributes["talkgroup"] == "US-NORTH"
        assert us.sent[0].attributes["priority"] == "chatter"
        tagged = RadioMessage.from_json(mq.sent[0].parts[0])
        assert tagged.text == "Road closed at the bridge"
        assert tagged.relay_id
        assert tagged.channel == "ca#CA-EAST"
        status = mgr.status()[0]
        assert status["relayed"] == 2
        assert status["dropped"] == 2

    def test_duplicate_heard_twice_is_relayed_once_and_unknown_channels_ignored(self) -> None:
        ca, us, mq = FakeRadio("ca"), FakeRadio("us"), FakeRadio("mq")
        mgr = manager([BOTH], {"ca": ca, "us": us, "mq": mq})
        item = Received(
            RadioMessage("Help at km 12", "2001", "CA-EAST").to_json(),
            "ca",
            channel="CA-EAST",
            kind="incident",
        )
        before = LINK_DROPPED.value(link="border", reason="duplicate")
        assert mgr.offer(item) == 2
        assert mgr.offer(item) == 0
        assert LINK_DROPPED.value(link="border", reason="duplicate") == before + 1
        assert mgr.offer(Received(b"x", "ca", channel="CA-WEST")) == 0
        assert mgr.offer(Received(b"\xff\xfe", "mq", channel="t/border")) == 0

    def test_plain_text_from_mqtt_is_relayed(self) -> None:
        ca, us, mq = FakeRadio("ca"), FakeRadio("us"), FakeRadio("mq")
        mgr = manager([BOTH], {"ca": ca, "us": us, "mq": mq})
        assert mgr.offer(Received(b"Crews en route", "mq", channel="t/border")) == 2

    async def test_one_way_link(self) -> None:
        ca, us = FakeRadio("ca"), FakeRadio("us")
        mgr = manager(
            [
                {
                    "name": "down",
                    "direction": "one-way",
                    "from": ["ca#CA-EAST"],
                    "to": ["us#US-NORTH"],
                }
            ],
            {"ca": ca, "us": us},
        )
        assert mgr.offer(Received(RadioMessage("a", "1").to_json(), "ca", channel="CA-EAST")) == 1
        assert mgr.offer(Received(RadioMessage("b", "1").to_json(), "us", channel="US-NORTH")) == 0

    async def test_failed_send_is_counted_and_the_link_goes_on(self) -> None:
        ca, us, mq = FakeRadio("ca"), FakeRadio("us", fail=True), FakeRadio("mq")
        mgr = manager([BOTH], {"ca": ca, "us": us, "mq": mq})
        before = LINK_DROPPED.value(link="border", reason="send_failed")
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(mgr.run())
            ca.hear("one", "CA-EAST", "1")
            await mq.sent_event.wait()
            await drain(mgr)
            task.cancel()
        assert LINK_DROPPED.value(link="border", reason="send_failed") == before + 1


class TestAirtime:
    """Chatter waits for its share of air time; the queue is bounded."""

    def test_air_time_from_line_rate_and_length(self) -> None:
        assert air_time(60, 1200) == pytest.approx(100 * 8 * (33 / 32) / 1200)
        budget = AirtimeBudget(1200, 0.5, 4.0, FakeClock())  # 2 s of burst, 0.5 s/s refill
        assert budget.wait_time(1.0) == 0
        budget.spend(1.5)
        assert budget.wait_time(1.0) == pytest.approx(1.0)

    async def test_relays_are_paced_by_the_budget(self) -> None:
        clock = FakeClock()
        ca, us = FakeRadio("ca"), FakeRadio("us", line_rate=1200)
        table = {
            "name": "paced",
            "endpoints": ["ca#CA", "us#US"],
            "duty_cycle": 0.1,
            "budget_window": 10,
        }
        mgr = manager([table], {"ca": ca, "us": us}, clock)
        for i in range(4):
            mgr.offer(
                Received(
                    RadioMessage(f"message number {i} " + "x" * 40, "1").to_json(),
                    "ca",
                    channel="CA",
                )
            )
        async with asyncio.TaskGroup() as tg:
            task = tg.create_task(mgr.run())
            await us.wait_sent(4)
            task.cancel()
        cost = air_time(len(us.sent[0].parts[0]), 1200)
        # 1 s of burst allowance: the first frame goes at once, later ones wait for tokens.
        assert clock.slept
        assert clock.t == pytest.approx(4 * cost / 0.1 - 1.0 / 0.1, rel=0.05)

    def test_queue_is_bounded_oldest_dropped(self) -> None:
        ca, us = FakeRadio("ca"), FakeRadio("us")
        mgr = manager(
            [{"name": "q", "endpoints": ["ca#CA", "us#US"], "max_queue": 2}], {"ca": ca, "us": us}
        )
        before = LINK_DROPPED.value(link="q", reason="queue_full")
        for i in range(5):
            mgr.offer(Received(RadioMessage(f"m{i}", "1").to_json(), "ca", channel="CA"))
        assert LINK_DROPPED.value(link="q", reason="queue_full") == before + 3
        assert mgr.status()[0]["queued"] == {"ca#CA": 0, "us#US": 2}


class TestOperatorControl:
    """Pause and resume over the HTTP API; paused links relay nothing."""

    async def test_http_pause_resume_and_list(self) -> None:
        ca, us = FakeRadio("ca"), FakeRadio("us")
        mgr = manager([{"name": "x", "endpoints": ["ca#CA", "us#US"]}], {"ca": ca, "us": us})
        app = web.Application()
        app[DAEMON_KEY] = FakeDaemon(sources={}, sinks={})  # type: ignore[assignment]
        app.add_routes(link_routes(mgr))
        auth = {"Authorization": "Bearer s3cret"}
        async with TestClient(TestServer(app)) as client:
            resp = await client.post("/api/v1/links/x/pause", headers=auth)
            assert resp.status == 200
            assert (await resp.json()) == {"name": "x", "paused": True}
            assert mgr.offer(Received(RadioMessage("a", "1").to_json(), "ca", channel="CA")) == 0
            resp = await client.post("/api/v1/links/x/resume", headers=auth)
            assert (await resp.json())["paused"] is False
            assert mgr.offer(Received(RadioMessage("b", "1").to_json(), "ca", channel="CA")) == 1
            listing = await (await client.get("/api/v1/links")).json()
            assert listing["links"][0]["name"] == "x"
            assert listing["links"][0]["dropped"] == 1
            assert (await client.post("/api/v1/links/nope/pause", headers=auth)).status == 404
            assert (await client.post("/api/v1/links/x/explode", headers=auth)).status == 404


class TestConfig:
    """Bad [[link]] tables are refused with the link, the key and what is allowed."""

    @pytest.mark.parametrize(
        ("table", "message"),
        [
            ({"endpoints": ["ca#A", "us#B"]}, "'name' is required"),
            ({"name": "l", "endpoints": ["ca#A"]}, "at least two"),
            ({"name": "l", "endpoints": ["ca", "us#B"]}, "not 'adapter#channel'"),
            ({"name": "l", "direction": "sideways", "endpoints": []}, "allowed: both, one-way"),
            ({"name": "l", "direction": "one-way", "from": ["ca#A"]}, "needs 'from' and 'to'"),
            ({"name": "l", "endpoints": ["ca#A", "us#B"], "colour": 1}, "unknown key"),
            (
                {"name": "l", "endpoints": ["ca#A", "nowhere#B"]},
                "names no sink or source 'nowhere'",
            ),
            ({"name": "l", "endpoints": ["ca#A", "us#B"], "duty_cycle": 2}, "out of range"),
            (
                {
                    "name": "l",
                    "endpoints": ["ca#A", {"adapter": "us", "channel": "B", "format": "xml"}],
                },
                "allowed: text, json",
            ),
        ],
    )
    def test_bad_tables(self, table: dict[str, Any], message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            manager([table], {"ca": FakeRadio("ca"), "us": FakeRadio("us")})

    def test_duplicate_names(self) -> None:
        t = {"name": "l", "endpoints": ["ca#A", "us#B"]}
        with pytest.raises(ConfigError, match="unique"):
            manager([t, t], {"ca": FakeRadio("ca"), "us": FakeRadio("us")})

    def test_radio_message_json_refuses_junk(self) -> None:
        with pytest.raises(FrameError):
            RadioMessage.from_json(b"[1,2]")
        with pytest.raises(FrameError):
            RadioMessage.from_json(b"\xff")


class FakeDaemon:
    def __init__(self, sources: dict[str, Any], sinks: dict[str, Any]) -> None:
        self.sources = sources
        self.sinks = sinks
        self.clock = FakeClock()
        self.tokens = ("s3cret",)


class TestDaemonHosting:
    """How the daemon hosts links: from_config(tables, daemon), a context manager, its hook."""

    async def test_daemon_sources_are_handed_in_and_sink_only_radios_are_listened_to(
        self,
    ) -> None:
        ca, us = FakeRadio("ca"), FakeRadio("us")
        daemon = FakeDaemon(sources={"ca": ca}, sinks={"us": us})
        mgr = links_module.from_config([{"name": "x", "endpoints": ["ca#CA", "us#US"]}], daemon)
        async with mgr:
            # "ca" is a daemon source: the daemon hands its items over.
            await mgr.handle_received(
                Received(RadioMessage("from canada", "1").to_json(), "ca", channel="CA")
            )
            await us.wait_sent(1)
            # "us" is only a sink: the manager reads it itself.
            us.hear("from the us", "US", "7")
            await ca.wait_sent(1)
            # Items injected on the source's own stream are not read twice.
            ca.hear("not read by the manager", "CA", "1")
            for _ in range(50):
                await asyncio.sleep(0)
        assert us.texts() == ["1: from canada"]
        assert ca.texts() == ["7: from the us"]

    async def test_pause_needs_the_daemon_token(self) -> None:
        ca, us = FakeRadio("ca"), FakeRadio("us")
        daemon = FakeDaemon(sources={}, sinks={"ca": ca, "us": us})
        mgr = links_module.from_config([{"name": "x", "endpoints": ["ca#CA", "us#US"]}], daemon)
        app = web.Application()
        app[DAEMON_KEY] = daemon  # type: ignore[assignment]
        app.add_routes(link_routes(mgr))
        async with TestClient(TestServer(app)) as client:
            assert (await client.post("/api/v1/links/x/pause")).status == 401
            assert (await client.get("/api/v1/links")).status == 200
            ok = await client.post(
                "/api/v1/links/x/pause", headers={"Authorization": "Bearer s3cret"}
            )
            assert ok.status == 200
        assert mgr.links["x"].paused
