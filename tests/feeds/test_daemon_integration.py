"""The feed sources inside the daemon, over real Mosquitto, against the simulators."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from cap_schemas.parse import parse_alert
from gateway.daemon import Daemon
from gateway.ledger import LedgerError
from hardware.feed_alerts import load_alerts, make_live
from hardware.sim_feeds import IpawsSimulator
from hardware.sim_naad import NaadSimulator
from tests.daemon.conftest import Collector, daemon_toml, load, running_daemon, subscriber
from tests.feeds.conftest import wait_for
from tests.helpers import Broker


def feed_sources(naad: NaadSimulator, ipaws: IpawsSimulator, state_dir: Path) -> str:
    streams = ", ".join(f'"{u}"' for u in naad.stream_urls())
    templates = ", ".join(f'"{t}"' for t in naad.archive_templates())
    return (
        '[[source]]\nname = "naad"\ntype = "naad"\nrequired = true\n'
        f"streams = [{streams}]\narchive_templates = [{templates}]\n"
        "liveness_timeout = 2.0\nreconnect_initial = 0.3\nreconnect_max = 1.0\n\n"
        '[[source]]\nname = "ipaws"\ntype = "ipaws"\n'
        f'base_url = "{ipaws.rest_url}"\nfeeds = ["public", "eas"]\n'
        f'state_dir = "{state_dir}"\n'
    )


async def healthz(session: aiohttp.ClientSession, daemon: Daemon) -> tuple[int, dict[str, object]]:
    url = f"http://127.0.0.1:{daemon.http_port}/healthz"
    async with session.get(url) as response:
        return response.status, await response.json()


def delivered_once(out: Collector, keys: list[str]) -> bool:
    got = out.keys("out/cap/")
    return all(len(got.get(k, [])) >= 1 for k in keys)


@contextlib.asynccontextmanager
async def feeds_daemon(
    mosquitto: Broker, tmp_path: Path, naad: NaadSimulator, ipaws: IpawsSimulator
) -> AsyncIterator[Daemon]:
    path = daemon_toml(tmp_path, mosquitto.url, extra=feed_sources(naad, ipaws, tmp_path))
    async with running_daemon(load(path)) as daemon:
        yield daemon


class TestFeedsThroughTheDaemon:
    """Two streams, a dead stream, a withheld alert and IPAWS: each alert delivered once on
    MQTT; a silent NAAD source turns /healthz red, then green when it reconnects."""

    async def test_naad_and_ipaws_end_to_end(self, mosquitto: Broker, tmp_path: Path) -> None:
        naad_alerts = load_alerts("naad")
        us_alerts = [a for a in load_alerts("ipaws") if b"USGS" not in a]
        async with (
            NaadSimulator(ports=[0, 0], heartbeat_interval=0.3) as naad,
            IpawsSimulator(us_alerts) as ipaws,
            subscriber(mosquitto, ["out/cap/#"]) as out,
            feeds_daemon(mosquitto, tmp_path, naad, ipaws) as daemon,
            aiohttp.ClientSession() as session,
        ):
            await wait_for(lambda: naad.connections() == 2)
            # IPAWS: the first poll is immediate; both feeds carry the alerts, once out.
            us_keys = [str(p.alert.key) for p in ipaws.posted]
            await out.wait_for(lambda: delivered_once(out, us_keys))

            # NAAD: both streams carry every alert; one is withheld and comes from the archive.
            keys = []
            superseded: set[str] = set()
            for n, raw in enumerate(naad_alerts):
                triple = await naad.publish(raw, withhold=n == 2)
                keys.append(",".join(triple))
                # The snowfall update follows its warning within milliseconds: the warning's
                # pending delivery is superseded rather than sent (the ledger's rule).
                superseded.update(str(k) for k in parse_alert(naad.archived(triple)).references)
            keys = [k for k in keys if k not in superseded]
            assert superseded
            await out.wait_for(lambda: delivered_once(out, keys))
            assert len(naad.archive_requests) >= 1

            # Stream 1 dies: everything still arrives through stream 2.
            await naad.stop_stream(0)
            later = make_live(naad_alerts[0], now=datetime.now(UTC), identifier_suffix="-late")
            triple = await naad.publish(later.raw, live=False)
            keys.append(",".join(triple))
            await out.wait_for(lambda: delivered_once(out, keys))
            await naad.start_stream(0)
            await wait_for(lambda: naad.connections() == 2)

            # Both streams go silent: red, then green once the source reconnected.
            status, _ = await healthz(session, daemon)
            assert status == 200
            naad.stall()
            statuses: list[int] = []
            async with asyncio.timeout(20):
                while not (503 in statuses and statuses[-1] == 200):
                    status, body = await healthz(session, daemon)
                    statuses.append(status)
                    await asyncio.sleep(0.02)
            assert body["status"] == "ok"

            # A marker last: once it is out, nothing else can still be on its way.
            marker = make_live(naad_alerts[1], now=datetime.now(UTC), identifier_suffix="-end")
            marker_key = ",".join(await naad.publish(marker.raw, live=False))
            await out.wait_for(lambda: delivered_once(out, [marker_key]))
            await asyncio.sleep(0.5)  # let any duplicate that was in flight show itself
            delivered = out.keys("out/cap/")
            for key in [*us_keys, *keys, marker_key]:
                assert len(delivered[key]) == 1, key
            for key in superseded:
                assert len(delivered.get(key, [])) <= 1, key
            for message in out.on("out/cap/"):
                parse_alert(message.payload)  # delivered as CAP, byte for byte


class TestLedgerFailureUnderTheFeed:
    """An admission that fails (the ledger down for a moment) is not acknowledged, and the
    NAAD source must not count its alert as handled: the source is run again and the next
    heartbeat fetches it from the archive."""

    async def test_the_alert_comes_back_by_the_heartbeat(
        self, mosquitto: Broker, tmp_path: Path
    ) -> None:
        naad_alerts = load_alerts("naad")
        async with (
            NaadSimulator(ports=[0], heartbeat_interval=0.3) as naad,
            IpawsSimulator([]) as ipaws,
            subscriber(mosquitto, ["out/cap/#"]) as out,
            feeds_daemon(mosquitto, tmp_path, naad, ipaws) as daemon,
        ):
            await wait_for(lambda: naad.connections() == 1)
            ledger = daemon.ledger
            real = ledger.admission_batch
            failures: list[int] = []

            @contextlib.contextmanager
            def failing_once() -> Iterator[bool]:
                if not failures:
                    failures.append(1)
                    msg = "the ledger's storage is unreachable (test)"
                    raise LedgerError(msg)
                with real() as batching:
                    yield batching

            ledger.admission_batch = failing_once  # type: ignore[method-assign]
            live = make_live(naad_alerts[0], now=datetime.now(UTC), identifier_suffix="-down")
            key = ",".join(await naad.publish(live.raw, live=False))
            await wait_for(lambda: failures == [1])
            # The source is run again; a heartbeat lists the alert; the archive has it.
            await out.wait_for(lambda: delivered_once(out, [key]))
            assert any("0007_down" in path for path in naad.archive_requests), naad.archive_requests
            marker = make_live(naad_alerts[1], now=datetime.now(UTC), identifier_suffix="-end")
            marker_key = ",".join(await naad.publish(marker.raw, live=False))
            await out.wait_for(lambda: delivered_once(out, [marker_key]))
            assert len(out.keys("out/cap/")[key]) == 1
