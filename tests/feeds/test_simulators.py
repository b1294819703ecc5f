"""The simulators as technicians run them: the command line, the HTTP control interface."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import aiohttp
import pytest

from adapters.naad.adapter import from_context
from cap_schemas.parse import parse_alert
from cap_schemas.rules import ERROR
from cap_schemas.validate import validate
from gateway.adapter import AdapterContext
from gateway.cli import build_parser
from gateway.config import HttpConfig
from gateway.simulators import load_simulator
from hardware.feed_alerts import alert_files, load_alerts, make_live
from hardware.sim_feeds import IpawsSimulator, NwsSimulator
from hardware.sim_naad import DEFAULT_STREAM_PORT, NaadSimulator
from tests.feeds.conftest import collecting, wait_for
from tests.helpers import free_port


@asynccontextmanager
async def cli_process(*args: str) -> AsyncIterator[dict[str, object]]:
    """Run ``borderlink sim ...`` and yield the JSON line it prints when ready."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "gateway",
        "sim",
        *args,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )
    try:
        assert proc.stdout is not None
        async with asyncio.timeout(20):
            while True:
                line = await proc.stdout.readline()
                assert line, "simulator exited before it was ready"
                if line.startswith(b"{"):
                    break
        yield json.loads(line)
    finally:
        proc.terminate()
        await proc.wait()


class TestCommandLine:
    """``borderlink sim naad|ipaws|nws`` are registered and serve what they print."""

    def test_kinds_are_registered(self) -> None:
        parser = build_parser()
        args = parser.parse_args(
            [
                "sim",
                "naad",
                "--port",
                "1",
                "--port",
                "2",
                "--archive-port",
                "3",
                "--heartbeat",
                "5",
                "--withhold-every",
                "3",
            ]
        )
        assert args.port == [1, 2]
        assert args.archive_port == 3
        assert args.withhold_every == 3
        for kind in ("ipaws", "nws"):
            assert parser.parse_args(["sim", kind, "--port", "9"]).port == 9

    async def test_naad_command_streams_heartbeats_and_control(
        self, alert_factory: Callable[..., bytes]
    ) -> None:
        port, archive = free_port(), free_port()
        async with cli_process(
            "naad",
            "--port",
            str(port),
            "--archive-port",
            str(archive),
            "--heartbeat",
            "0.3",
            "--interval",
            "0.05",
            "--withhold-every",
            "2",
        ) as ready:
            assert ready["streams"] == [f"tcp://127.0.0.1:{port}"]
            source = from_context(
                AdapterContext(
                    name="cli",
                    options={
                        "streams": ready["streams"],
                        "archive_templates": ready["archive"],
                        "reconnect_initial": 0.05,
                    },
                )
            )
            count = len(load_alerts("naad"))
            async with collecting(source) as got:
                # Every bundled alert arrives: half on the stream, half from the archive.
                await got.wait_until(
                    lambda items: len({parse_alert(i.raw).identifier for i in items}) == count,
                    limit=20,
                )
                channels = {i.channel for i in got.items}
                assert channels == {"archive", f"127.0.0.1:{port}"}
                control = f"http://127.0.0.1:{archive}/control"
                async with aiohttp.ClientSession() as session:
                    async with session.post(f"{control}/drop") as response:
                        assert (await response.json())["dropped"] == 1
                    await wait_for(lambda: source._streams[0].connections == 2)
                    body = alert_factory("via-control")
                    async with session.post(f"{control}/publish", data=body) as response:
                        assert response.status == 200
                    await got.wait_until(lambda items: any(b"via-control" in i.raw for i in items))
                    async with session.get(f"{control}/status") as response:
                        status = await response.json()
                    assert status["streams"][0]["clients"] == 1
                    assert status["withheld"] >= count // 2

    async def test_ipaws_command(self) -> None:
        port = free_port()
        async with cli_process("ipaws", "--port", str(port)) as ready:
            url = str(ready["url"]) + "/public/recent/2000-01-01T00:00:00Z"
            async with aiohttp.ClientSession() as session, session.get(url) as response:
                body = await response.read()
            assert body.count(b"<alert ") == len(load_alerts("ipaws"))


class TestControlInterface:
    """Feed simulators take faults over HTTP as well as from Python."""

    async def test_feed_faults_over_http(self) -> None:
        async with IpawsSimulator(load_alerts("ipaws")) as sim, aiohttp.ClientSession() as s:
            url = sim.rest_url + "/eas/recent/2000-01-01T00:00:00Z"
            async with s.post(sim.base_url + "/control/fail?count=2&status=500"):
                pass
            statuses = []
            for _ in range(3):
                async with s.get(url) as response:
                    statuses.append(response.status)
            assert statuses == [500, 500, 200]
            async with s.post(sim.base_url + "/control/garbage?count=1"):
                pass
            async with s.get(url) as response:
                assert response.content_type == "text/html"
            async with s.get(sim.base_url + "/control/status") as response:
                status = await response.json()
            assert [r["status"] for r in status["requests"]] == [500, 500, 200, 200]

    async def test_nws_publish_over_http(self) -> None:
        async with (
            NwsSimulator(()) as sim,
            aiohttp.ClientSession(headers={"User-Agent": "test"}) as s,
        ):
            raw = next(a for a in load_alerts("nws") if b"NYZ001" in a)
            async with s.post(sim.base_url + "/control/publish", data=raw) as response:
                assert response.status == 200
            async with s.get(sim.base_url + "/alerts/active?area=NY") as response:
                index = await response.json()
            (feature,) = index["features"]
            async with s.get(
                sim.base_url + "/alerts/" + feature["properties"]["id"],
                headers={"Accept": "application/cap+xml"},
            ) as response:
                cap = parse_alert(await response.read())
            assert not cap.is_expired()  # made live


class TestRegistry:
    """The daemon's [[simulator]] entries build working simulators from plain options."""

    async def test_naad_entry(self) -> None:
        port, archive = free_port(), free_port()
        factory = load_simulator("naad")
        sim = factory(
            {
                "ports": [port],
                "archive_port": archive,
                "interval": 0.05,
                "heartbeat": 0.2,
                "repeat": False,
                "start_delay": 0,
            }
        )
        async with sim:
            assert isinstance(sim, NaadSimulator)
            source = from_context(
                AdapterContext(name="reg", options={"streams": [f"tcp://127.0.0.1:{port}"]})
            )
            async with collecting(source) as got:
                await got.wait_count(2, limit=20)

    async def test_feed_entries(self) -> None:
        for kind, cls in (("ipaws", IpawsSimulator), ("nws", NwsSimulator)):
            sim = load_simulator(kind)({"port": free_port()})
            async with sim:
                assert isinstance(sim, cls)
                assert len(sim.posted) == len(load_alerts(kind))


class TestMakeLive:
    """Replayed alerts are live: sent now, same duration, references follow renames."""

    def test_times_shift_and_references_follow(self) -> None:
        alerts = load_alerts("naad")
        renamed: dict[tuple[str, str, str], tuple[str, str, str]] = {}
        now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
        live = [make_live(a, now=now, identifier_suffix="-r1", renamed=renamed) for a in alerts]
        for original, item in zip(alerts, live, strict=True):
            before, after = parse_alert(original), parse_alert(item.raw)
            assert after.sent == now
            assert after.identifier == before.identifier + "-r1"
            assert after.expires is not None
            assert before.expires is not None
            assert after.expires - after.sent == before.expires - before.sent
        update = next(parse_alert(i.raw) for i in live if b"<references>" in i.raw)
        base = next(
            parse_alert(i.raw)
            for i in live
            if update.references[0].identifier == parse_alert(i.raw).identifier
        )
        assert update.references == (base.key,)

    def test_zone_written_as_in_the_original(self) -> None:
        usgs = next(a for a in load_alerts("ipaws") if b"USGS" in a)
        live = make_live(usgs, now=datetime(2026, 3, 1, 12, 0, tzinfo=UTC)).raw
        assert b"<sent>2026-03-01T05:00:00-07:00</sent>" in live
        nws = next(a for a in load_alerts("nws") if b"VTZ002" in a)
        live = make_live(nws, now=datetime(2026, 3, 1, 12, 0, tzinfo=UTC)).raw
        assert b"<sent>2026-03-01T07:00:00-05:00</sent>" in live

    @pytest.mark.parametrize("kind", ["naad", "ipaws", "nws"])
    def test_every_served_alert_passes_its_profile(self, kind: str) -> None:
        # A simulator serves valid alerts unless asked for faults: a newcomer's demo must not
        # fill the holds with its own simulator's mistakes (an IPAWS alert in UTC did).
        now = datetime.now(UTC)
        for path in alert_files(kind):
            alert = parse_alert(make_live(path.read_bytes(), now=now).raw)
            errors = [str(f) for f in validate(alert) if f.severity == ERROR]
            assert errors == [], f"{kind}/{path.name}"


class TestSimulatorDefaults:
    """A simulator started with its defaults does not take the gateway's own ports."""

    def test_naad_streams_not_on_the_http_port(self) -> None:
        assert HttpConfig().port != DEFAULT_STREAM_PORT
        assert DEFAULT_STREAM_PORT not in (1883, 8883)
