"""The daemon as a process: SIGKILL at random points loses and doubles nothing; SIGTERM exits
0 after draining; SIGHUP reloads the routes."""

from __future__ import annotations

import asyncio
import json
import random
import signal
import socket
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path

import aiohttp
import pytest

from tests.daemon.conftest import (
    ROOT,
    CapFactory,
    daemon_toml,
    publish_all,
    spawn_daemon,
    subscriber,
)
from tests.helpers import Broker, free_port, wait_for_port

SINKS = (
    '[[sink]]\nname = "out-cap"\ntype = "mqtt"\ntopic = "out/cap/{key}"\n'
    "retry_initial = 0.05\nretry_max = 0.5\n\n"
    '[[sink]]\nname = "out-json"\ntype = "mqtt"\nformat = "json"\ntopic = "out/json/{key}"\n'
    "retry_initial = 0.05\nretry_max = 0.5\n"
)
ROUTE_CAP = '[[route]]\nname = "all"\nsinks = ["out-cap"]\n'
ROUTE_BOTH = '[[route]]\nname = "all"\nsinks = ["out-cap", "out-json"]\n'


def _stop(proc: subprocess.Popen[bytes]) -> int:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(timeout=20)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise


class TestCrashSafety:
    """SIGKILL while alerts flow, then restart: every alert once per sink, none lost."""

    @pytest.mark.slow
    async def test_sigkill_at_random_points(
        self, mosquitto: Broker, tmp_path: Path, cap: CapFactory
    ) -> None:
        rng = random.Random(20260315)
        http_port = free_port()
        config = daemon_toml(
            tmp_path, mosquitto.url, sinks=SINKS, routes=ROUTE_CAP, http_port=http_port
        )
        log = tmp_path / "daemon.log"
        alerts = [cap() for _ in range(150)]
        probe = cap()
        kills = 0
        async with subscriber(mosquitto, ["out/cap/#"]) as out:
            proc = spawn_daemon(config, log)
            try:
                # The first start creates the persistent input session; a probe shows it.
                for _ in range(100):
                    await publish_all(mosquitto, [probe])
                    try:
                        await out.wait_for(lambda: len(out.messages) >= 1, within=0.3)
                        break
                    except AssertionError:
                        continue

                async def feed() -> None:
                    for i in range(0, len(alerts), 5):
                        await publish_all(mosquitto, alerts[i : i + 5])
                        await asyncio.sleep(0.02)

                feeder = asyncio.create_task(feed())
                while not feeder.done() or kills < 4:
                    await asyncio.sleep(rng.uniform(0.05, 0.6))
                    proc.kill()
                    proc.wait()
                    kills += 1
                    proc = spawn_daemon(config, log)
                await feeder
                wanted = {CapFactory.key_of(a) for a in alerts}
                await out.wait_for(lambda: wanted <= {m.alert_key for m in out.messages}, within=60)
                # The last instance may have had nothing left to do: let it come up (its HTTP
                # port listens only after the SIGTERM handler is in place) before stopping it,
                # or the SIGTERM lands while Python is still starting and kills it outright.
                await asyncio.to_thread(wait_for_port, "127.0.0.1", http_port, 30.0)
            finally:
                code = _stop(proc)
        assert code == 0
        keys = {m.alert_key for m in out.messages}
        assert keys == {CapFactory.key_of(a) for a in [*alerts, probe]}
        # Exactly one delivery id per alert: the gateway planned each delivery once.
        ids: dict[str | None, set[str | None]] = {}
        for m in out.messages:
            ids.setdefault(m.alert_key, set()).add(m.delivery_id)
        assert all(len(v) == 1 for v in ids.values())
        # A copy sent again after a kill between PUBACK and commit repeats its delivery id;
        # there can be at most one batch of those per kill.
        repeats = sum(n - 1 for n in Counter(m.delivery_id for m in out.messages).values())
        assert repeats <= kills * 16
        # The ledger agrees: one entry per alert, every one delivered.
        with sqlite3.connect(tmp_path / "ledger.sqlite3") as db:
            rows = db.execute("SELECT state, COUNT(*) FROM outbox GROUP BY state").fetchall()
            attempts = {
                json.loads(attributes)["delivery_id"]: count
                for attributes, count in db.execute("SELECT attributes, attempts FROM outbox")
            }
        assert dict(rows) == {"delivered": len(alerts) + 1}
        # ... and counts honestly: every copy the sink saw was an attempt it journalled.
        copies = Counter(m.delivery_id for m in out.messages)
        assert all(attempts[ident] >= n for ident, n in copies.items()), [
            (ident, n, attempts[ident]) for ident, n in copies.items() if attempts[ident] < n
        ]


class TestSignals:
    """SIGHUP reloads the routes; SIGTERM stops cleanly with exit status 0."""

    async def test_sighup_reloads_routes_and_sigterm_exits_zero(
        self, mosquitto: Broker, tmp_path: Path, cap: CapFactory
    ) -> None:
        config = daemon_toml(
            tmp_path, mosquitto.url, sinks=SINKS, routes=ROUTE_CAP, http_port=free_port()
        )
        log = tmp_path / "daemon.log"
        first, second = cap(), cap()
        async with subscriber(mosquitto, ["out/#"]) as out:
            proc = spawn_daemon(config, log)
            try:
                for _ in range(100):
                    await publish_all(mosquitto, [first])
                    try:
                        await out.wait_for(lambda: len(out.messages) >= 1, within=0.3)
                        break
                    except AssertionError:
                        continue
                config.write_text(config.read_text().replace(ROUTE_CAP, ROUTE_BOTH))
                proc.send_signal(signal.SIGHUP)
                for _ in range(100):
                    if "routes_reloaded" in log.read_text():
                        break
                    await asyncio.sleep(0.05)
                await publish_all(mosquitto, [second])
                await out.wait_for(lambda: len(out.on("out/json/")) == 1)
            finally:
                code = _stop(proc)
        assert code == 0
        assert [m.alert_key for m in out.on("out/json/")] == [CapFactory.key_of(second)]
        assert "daemon_stopped" in log.read_text()


class TestCollector:
    """The running daemon keeps what it built to start out of the garbage collector's walks
    (a full collection walked it all and paused every task 30-40 ms under load) and
    measures every pause."""

    async def test_startup_frozen_and_pauses_measured(
        self, mosquitto: Broker, tmp_path: Path, cap: CapFactory
    ) -> None:
        port = free_port()
        config = daemon_toml(tmp_path, mosquitto.url, sinks=SINKS, routes=ROUTE_CAP, http_port=port)
        alerts = [cap() for _ in range(50)]
        async with subscriber(mosquitto, ["out/#"]) as out:
            proc = spawn_daemon(config, tmp_path / "daemon.log")
            try:
                for _ in range(100):  # until the daemon subscribed and delivers
                    await publish_all(mosquitto, alerts[:1])
                    try:
                        await out.wait_for(lambda: len(out.messages) >= 1, within=0.3)
                        break
                    except AssertionError:
                        continue
                await publish_all(mosquitto, alerts[1:])
                await out.wait_for(lambda: len({m.alert_key for m in out.messages}) == 50)
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(f"http://127.0.0.1:{port}/metrics") as response,
                ):
                    assert response.status == 200
                    text = await response.text()
            finally:
                code = _stop(proc)
        assert code == 0
        values = {
            line.split(" ")[0]: float(line.split(" ")[1])
            for line in text.splitlines()
            if line.startswith("borderlink_gc_")
        }
        assert values["borderlink_gc_frozen_objects"] > 10_000
        # 50 alerts through parse, ledger and delivery make garbage: young collections ran
        assert values['borderlink_gc_pause_seconds_count{generation="0"}'] >= 1


class TestStartFailures:
    """A daemon that cannot start says why and exits 1 (2 for a refused configuration)."""

    def test_port_taken_and_bad_config(self, tmp_path: Path) -> None:
        with socket.socket() as busy:
            busy.bind(("127.0.0.1", 0))
            busy.listen()
            port = busy.getsockname()[1]
            config = daemon_toml(tmp_path, "mqtt://127.0.0.1:1")
            config.write_text(
                config.read_text().replace(
                    'broker = "mqtt://127.0.0.1:1"', f'broker = "embedded"\nembedded_port = {port}'
                )
            )
            result = subprocess.run(
                [sys.executable, "-m", "gateway", "run", str(config)],
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
                cwd=ROOT,
            )
        assert result.returncode == 1
        assert f"127.0.0.1:{port}" in result.stderr
        config.write_text(config.read_text() + "\n[nonsense]\n")
        result = subprocess.run(
            [sys.executable, "-m", "gateway", "run", str(config)],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            cwd=ROOT,
        )
        assert result.returncode == 2
        assert "nonsense" in result.stderr
