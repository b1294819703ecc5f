"""Small pieces: MQTT topic templates and options, supervisor backoff, the demo alerts."""

from __future__ import annotations

import asyncio
import random
from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from adapters.demo.adapter import DemoSource
from adapters.demo.codec import bundled_templates, render
from adapters.mqtt.codec import MqttOptions, TopicTemplate, message_expiry, safe_level
from cap_schemas.model import AlertKey
from cap_schemas.parse import parse_alert
from cap_schemas.validate import detect_profile, is_valid, validate
from gateway.errors import ConfigError
from gateway.summary import delivery_id, topic_key
from gateway.supervisor import Backoff, Supervisor


class FakeClock:
    """A clock whose sleeps return at once and are recorded."""

    def __init__(self) -> None:
        self.t = 0.0
        self.sleeps: list[float] = []

    def now(self) -> datetime:
        return datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=self.t)

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.t += seconds
        await asyncio.sleep(0)


class TestTopics:
    """Topic templates are checked at start-up and rendered topic-safe."""

    def test_render_escapes_levels(self) -> None:
        t = TopicTemplate.parse("{prefix}/a/{event}/{key}", where="t")
        key = "s,i,2026-01-01T00:00:00+01:00"
        topic = t.render({"prefix": "bl", "event": "to/r+#", "key": key})
        assert topic == "bl/a/to%2Fr%2B%23/s,i,2026-01-01T00:00:00%2B01:00"

    @pytest.mark.parametrize("bad", ["", "/abs", "a/+/b", "a/#", "x/{unknown}", "x/{key!r}"])
    def test_bad_templates(self, bad: str) -> None:
        with pytest.raises(ConfigError):
            TopicTemplate.parse(bad, where="sink.topic")

    @given(st.text())
    def test_safe_level_never_splits_or_wildcards(self, value: str) -> None:
        level = safe_level(value)
        assert "/" not in level
        assert "+" not in level
        assert "#" not in level
        assert "\x00" not in level
        assert level

    def test_keys_and_delivery_ids(self) -> None:
        assert topic_key("a/b,c d,2026-01-01T00:00:00+01:00") == (
            "a%2Fb,c%20d,2026-01-01T00:00:00%2B01:00"
        )
        key = AlertKey("s", "i", "t")
        assert delivery_id(key, "x") == delivery_id(key, "x")
        assert delivery_id(key, "x") != delivery_id(key, "y")


class TestMqttOptions:
    """Adapter options: URLs, protocol, TLS, secrets, unknown keys."""

    def test_defaults_and_url(self) -> None:
        o = MqttOptions.from_mapping({"url": "mqtts://broker.example:8884"}, name="s")
        assert (o.host, o.port, o.tls is not None, o.v5) == ("broker.example", 8884, True, True)
        assert o.client_id == "borderlink-s"
        assert o.topics == ("borderlink/in/cap",)

    @pytest.mark.parametrize(
        ("options", "fragment"),
        [
            ({"url": "http://x"}, "url"),
            ({"protocol": "4"}, "protocol"),
            ({"bogus": 1}, "unknown key"),
            ({"keepalive": 1}, "keepalive"),
            ({"password_file": "/nonexistent/pw"}, "password_file"),
            ({"tls": {"ca": "x"}}, "tls"),
        ],
    )
    def test_refused(self, options: dict[str, object], fragment: str) -> None:
        with pytest.raises(ConfigError, match=fragment):
            MqttOptions.from_mapping(options, name="s")

    def test_message_expiry(self) -> None:
        now = datetime(2026, 1, 1, tzinfo=UTC)
        assert message_expiry(None, now) is None
        assert message_expiry(now + timedelta(seconds=90.7), now) == 90
        assert message_expiry(now - timedelta(seconds=5), now) == 0


class TestSupervisor:
    """Failing components restart with capped, jittered backoff; others keep running."""

    def test_backoff_capped_and_jittered(self) -> None:
        b = Backoff(initial=1.0, maximum=8.0, factor=2.0, jitter=0.5, rng=random.Random(1))
        delays = [b.delay(n) for n in range(1, 8)]
        assert all(0.5 <= d <= 1.0 for d in delays[:1])
        assert all(4.0 <= d <= 8.0 for d in delays[4:])
        assert max(delays) <= 8.0

    async def test_restart_while_others_run(self) -> None:
        clock = FakeClock()
        sup = Supervisor(clock=clock, backoff=Backoff(initial=1, maximum=4, jitter=0))
        attempts = 0
        other_ticks = 0

        async def flaky() -> None:
            nonlocal attempts
            attempts += 1
            if attempts < 5:
                raise ConnectionError("down")

        async def steady() -> None:
            nonlocal other_ticks
            for _ in range(10):
                other_ticks += 1
                await asyncio.sleep(0)

        await asyncio.gather(sup.supervise("flaky", flaky), sup.supervise("steady", steady))
        assert attempts == 5
        assert clock.sleeps == [1, 2, 4, 4]
        assert other_ticks == 10
        assert sup.failures == {"flaky": 4}
        assert "ConnectionError" in sup.last_error["flaky"]

    async def test_config_error_is_not_retried(self) -> None:
        sup = Supervisor(clock=FakeClock())

        async def broken() -> None:
            raise ConfigError("bad option")

        with pytest.raises(ConfigError):
            await sup.supervise("broken", broken)

    async def test_stopping_ends_restarts(self) -> None:
        sup = Supervisor(clock=FakeClock())
        sup.stopping.set()

        async def failing() -> None:
            raise OSError("gone")

        await asyncio.wait_for(sup.supervise("x", failing), 1)
        assert sup.failures == {"x": 1}


class TestDemo:
    """The bundled alerts are valid, never expired, and the cancel names the warning."""

    def test_templates_render_valid_alerts(self) -> None:
        now = datetime.now(UTC)
        earlier: dict[str, bytes] = {}
        profiles = []
        for template in bundled_templates():
            raw = render(
                template, now=now, serial="t1", lifetime=timedelta(hours=1), earlier=earlier
            )
            earlier[template.name] = raw
            alert = parse_alert(raw)
            assert is_valid(validate(alert)), template.name
            assert not alert.is_expired(now)
            profiles.append(detect_profile(alert))
        assert {"cap-cp", "ipaws"} <= set(profiles)
        cancel = parse_alert(earlier["04-ca-tornado-ended"])
        update = parse_alert(earlier["03-ca-tornado-warning-update"])
        warning = parse_alert(earlier["01-ca-tornado-warning"])
        assert update.references == (warning.key,)
        assert cancel.references == (warning.key, update.key)
        assert [a.msg_type for a in (warning, update, cancel)] == ["Alert", "Update", "Cancel"]
        assert {i.language for i in warning.infos} == {"en-CA", "fr-CA"}

    async def test_source_replays_with_fresh_identifiers(self) -> None:
        clock = FakeClock()
        source = DemoSource("demo", interval=5, start_delay=0, clock=clock)
        seen: list[str] = []
        async with source:
            async for item in source.messages():
                seen.append(str(parse_alert(item.raw).key))
                if len(seen) == 6:
                    break
        assert len(set(seen)) == 6
