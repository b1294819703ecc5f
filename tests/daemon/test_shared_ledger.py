"""Two gateways on one PostgreSQL ledger: both hear every alert, each alert goes out once."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from cap_schemas.model import AlertKey
from gateway import adapter
from gateway.console.accounts import add_account
from gateway.errors import ConfigError
from gateway.storage.postgres import PostgresLedger
from tests.daemon.conftest import (
    CapFactory,
    console_login,
    daemon_toml,
    load,
    poll_until,
    publish_all,
    running_daemon,
    spawn_daemon,
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


class TestLeadership:
    """A leader_only feed runs on one instance at a time; when its instance stops, another
    takes it over within ten seconds, and /healthz says who leads what."""

    async def test_takeover(
        self,
        mosquitto: Broker,
        postgres: Postgres,
        tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch,
    ) -> None:
        monkeypatch.setitem(adapter.REGISTRY, "fake-feed", "tests.daemon.fake_feed:from_context")
        schema = "gw_" + uuid.uuid4().hex[:10]
        feed = (
            '[[source]]\nname = "feed"\ntype = "fake-feed"\nrequired = true\n'
            "leader_only = true\n"
        )
        configs = []
        for name in ("gw-a", "gw-b"):
            path = _instance(tmp_path / name, mosquitto, postgres, schema)
            text = path.read_text().replace('name = "test"', f'name = "{name}"') + feed
            path.write_text(text)
            configs.append(load(path))
        async with running_daemon(configs[0]) as a, running_daemon(configs[1]) as b:

            async def one_leads() -> bool:
                return len(a.leading) + len(b.leading) == 1

            await poll_until(one_leads)
            leader, other = (a, b) if a.leading else (b, a)
            async with aiohttp.ClientSession() as http:
                url = f"http://127.0.0.1:{other.http_port}/healthz"
                async with http.get(url) as resp:
                    assert resp.status == 200  # the feed is led elsewhere: not a failure
                    body = await resp.json()
            assert body["instance"] == other.config.gateway.name
            assert body["leads"] == []
            (line,) = [s for s in body["sources"] if s["source"] == "feed"]
            assert line["led_elsewhere"] is True
            assert {p["name"] for p in body["peers"]} >= {leader.config.gateway.name}
            async with aiohttp.ClientSession() as http:
                metrics_url = f"http://127.0.0.1:{other.http_port}/metrics"
                async with http.get(metrics_url) as resp:
                    metrics = await resp.text()
            # On a shared ledger every sample names the instance that counted it.
            samples = [line for line in metrics.splitlines() if line.startswith("borderlink_")]
            assert samples
            assert all('borderlink_instance="' in line for line in samples)
            # The leader stops (cleanly: it gives the lease up; a dead one's runs out in 5 s).
            leader.request_stop()
            started = time.monotonic()

            async def taken_over() -> bool:
                return other.leading == {"feed"}

            await poll_until(taken_over, within=15)
            assert time.monotonic() - started <= 10

    async def test_takeover_after_sigkill(
        self, mosquitto: Broker, postgres: Postgres, tmp_path: Path
    ) -> None:
        """A leader killed outright gives nothing up: its lease runs out (5 s) and the other
        instance leads within 10 s of the kill."""
        schema = "gw_" + uuid.uuid4().hex[:10]
        demo = (
            '[[source]]\nname = "demo"\ntype = "demo"\ninterval = 3600\nstart_delay = 3600\n'
        )
        paths = []
        for name in ("gw-a", "gw-b"):
            path = _instance(tmp_path / name, mosquitto, postgres, schema)
            path.write_text(path.read_text().replace('name = "test"', f'name = "{name}"') + demo)
            paths.append(path)
        first = spawn_daemon(paths[0], tmp_path / "gw-a.log")
        probe = PostgresLedger(postgres.dsn, schema=schema)
        try:

            async def first_leads() -> bool:  # before the second instance starts
                peers = await asyncio.to_thread(probe.peers)
                return any(p["name"] == "gw-a" and p["leads"] == ["demo"] for p in peers)

            await poll_until(first_leads, within=30)
            async with running_daemon(load(paths[1])) as other:
                assert other.leading == set()
                first.kill()
                first.wait()
                killed = time.monotonic()

                async def taken_over() -> bool:
                    return other.leading == {"demo"}

                await poll_until(taken_over, within=15)
                took = time.monotonic() - killed
                print(f"leadership taken over {took:.1f} s after the leader was killed")
                assert took <= 10
        finally:
            probe.close()
            if first.poll() is None:
                first.kill()
                first.wait()


class TestHardwareOwnership:
    """A sink bound to one instance (``instance = "gw-b"``, its radio is there) gets the
    alerts every instance admits, delivered by that instance only."""

    async def test_bound_sink_delivered_by_its_instance(
        self, mosquitto: Broker, postgres: Postgres, tmp_path: Path, cap: CapFactory
    ) -> None:
        schema = "gw_" + uuid.uuid4().hex[:10]
        aired = tmp_path / "aired"
        radio = (
            f'\n[[sink]]\nname = "radio"\ntype = "file"\npath = "{aired}"\n'
            'instance = "gw-b"\nretry_initial = 0.05\nretry_max = 0.5\n\n'
            '[[route]]\nname = "to-radio"\nsinks = ["radio"]\n'
        )
        configs = []
        for name in ("gw-a", "gw-b"):
            path = _instance(tmp_path / name, mosquitto, postgres, schema)
            text = path.read_text().replace('name = "test"', f'name = "{name}"') + radio
            path.write_text(text)
            configs.append(load(path))
        body = cap(severity="Severe")
        key = _key(CapFactory.key_of(body))
        async with running_daemon(configs[0]) as a:
            assert "radio" not in a.sinks
            assert a.elsewhere == {"radio": "gw-b"}
            async with (
                aiohttp.ClientSession() as http,
                http.post(
                    f"http://127.0.0.1:{a.http_port}/api/v1/alerts",
                    data=body,
                    headers={"Authorization": "Bearer test-token-0123456789abcdef"},
                ) as resp,
            ):
                assert resp.status == 202, await resp.text()
            # Admitted by gw-a, which plans the radio's delivery but never opens the radio.
            (entry,) = [e for e in a.ledger.deliveries(key) if e.sink == "radio"]
            assert (entry.state.value, entry.attempts, entry.claimed_by) == ("pending", 0, "")
            async with running_daemon(configs[1]) as b:
                assert "radio" in b.sinks

                async def aired_once() -> bool:
                    done = [e for e in b.ledger.deliveries(key) if e.sink == "radio"]
                    return bool(done) and done[0].state.value == "delivered"

                await poll_until(aired_once, within=20)
                starts = [j.detail for j in b.ledger.journal(key) if j.event == "attempt_started"]
                radio_starts = [d for d in starts if " by gw-b" in d]
                assert len(radio_starts) == 1, starts
                assert not [d for d in starts if " by gw-a" in d and "radio" in d]
        assert len(list(aired.glob("*.json"))) == 1

    def test_bound_sink_needs_a_shared_ledger(self, tmp_path: Path, mosquitto: Broker) -> None:
        path = daemon_toml(tmp_path, mosquitto.url)
        path.write_text(
            path.read_text()
            + '\n[[sink]]\nname = "radio"\ntype = "file"\npath = "aired"\ninstance = "gw-b"\n'
        )
        with pytest.raises(ConfigError, match=r"sink #3 \"radio\"\.instance: 'gw-b': a sink bound"):
            load(path)


class TestSharedLockout:
    """Failed console logins are counted on the shared ledger: the lock earned through one
    instance's login form holds on the other, and on an instance started afterwards."""

    async def test_a_lock_earned_on_one_instance_holds_on_the_other(
        self, mosquitto: Broker, postgres: Postgres, tmp_path: Path
    ) -> None:
        schema = "gw_" + uuid.uuid4().hex[:10]
        users, secret = tmp_path / "users", tmp_path / "secret"
        add_account(users, "otto", "operator", "otto-pass-4242")
        console = (
            f'[console]\nusers_file = "{users}"\nsecret_file = "{secret}"\n'
            "lockout_failures = 3\nlockout_minutes = 5\n"
        )
        paths = [_instance(tmp_path / n, mosquitto, postgres, schema) for n in ("a", "b", "c")]
        for path in paths:
            path.write_text(path.read_text(encoding="utf-8") + console, encoding="utf-8")
        first, second, third = (load(p) for p in paths)
        async with (
            running_daemon(first) as a,
            running_daemon(second) as b,
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
        ):
            at_a = f"http://127.0.0.1:{a.http_port}"
            at_b = f"http://127.0.0.1:{b.http_port}"
            tries = [await console_login(http, at_a, "otto", f"guess-{i}") for i in range(3)]
            assert tries == [401, 401, 401]
            # b never saw a failure: the right password is refused there too, for a while
            assert await console_login(http, at_b, "otto", "otto-pass-4242") == 429
        # an instance started after the lock knows it from the ledger
        async with (
            running_daemon(third) as c,
            aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)) as http,
        ):
            assert await console_login(http, f"http://127.0.0.1:{c.http_port}", "otto",
                                    "otto-pass-4242") == 429  # fmt: skip
