"""Chaos: alerts flow over HTTP and MQTT while the daemon and the broker are killed outright.

``make chaos`` runs :func:`run` with the long defaults (at least 100 daemon SIGKILLs and 20
broker SIGKILLs); ``tests/daemon/test_chaos.py`` runs the same scenario short in every CI run.

The scenario: a real Mosquitto (persistent, so what it acknowledged survives its own kills), a
daemon as a child process on an SQLite ledger, and four sinks:

* two MQTT sinks -- ``feed`` (``in_doubt = "resend"``) and ``air`` (``live = true``, so
  ``in_doubt = "hold"``) -- with a subscriber on a persistent session that records every copy
  each published, with its delivery id;
* a file sink ``files`` (``resend``) whose ``D.json`` / ``D~2.json`` files are its copies;
* a radio sink ``radio``: a KISS TNC sink (``type = "kiss"``, ``live = true``, so ``hold``: a
  transmitter must not air an alert twice unasked) sending each alert's radio text as an APRS
  directed message to ``VA3EOC``. Its far end is :mod:`bench.chaos_station`, a process of its
  own that survives the daemon's kills: it records every frame it is given, then acknowledges
  each numbered message as an addressee does. Each chaos alert's event is ``Chaos <n>``, which
  the text rendering keeps, so every message names its alert.

Alerts go in through ``POST /api/v1/alerts`` (acknowledged: a 202) and through the MQTT input
(acknowledged: the broker's PUBACK); meanwhile the daemon is SIGKILLed and restarted at random
moments, and now and then the broker too. At the end the daemon runs until the outbox is
settled, and the counts come from what the subscriber, the files and the radio station
received, held against the ledger:

* **lost**: an acknowledged alert a sink never received and the ledger does not account for
  (not held for an operator, not failed with a reason) -- must be 0;
* **duplicates** per sink: more than one copy of a delivery id -- allowed only on a
  ``resend`` sink, each listed with its delivery id. On the radio a copy is a message number
  the station accepted: the same number heard again is an APRS retry (the station acks it again
  and drops it, as APRS requires: a *repeat*, counted apart), the same alert under a second
  number is a duplicate, and a number heard again with another alert's text is a *reused*
  number -- the station would drop that alert, so it counts as not received;
* **in doubt**: attempts found under way at a restart, by sink and by how they were resolved.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from bench.chaos_common import (
    ROOT,
    TOKEN,
    broker_repeats_line,
    collect_copies,
    post_alert,
    publish_alert,
    publish_answers,
    sink_table,
    spawn_gateway,
    split_repeats,
    start_broker,
    stop_process,
)
from cap_schemas.model import AlertKey
from gateway.summary import delivery_id
from tests.daemon.conftest import CapFactory
from tests.helpers import _spawn_mosquitto, free_port, wait_for_port

# sink -> its in_doubt policy (the live sinks hold; the others resend)
SINKS = {"feed": "resend", "air": "hold", "files": "resend", "radio": "hold"}
MQTT_SINKS = ("feed", "air")  # what the subscriber hears
RADIO_CALL = "VA3EOC"  # the station the radio sink sends its directed messages to
_ALERT_NUMBER = re.compile(r"\bChaos (\d+)\b")  # the event of every chaos alert


@dataclass
class RadioTally:
    """The APRS side of the radio count, beyond the copies the station accepted."""

    frames: int = 0
    repeats: int = 0  # a (sender, number) heard again: an APRS retry, acked and dropped
    reused: list[str] = field(default_factory=list)  # numbers that came back with another text
    strays: list[str] = field(default_factory=list)  # frames that name no chaos alert


@dataclass
class Report:
    kills: int = 0
    broker_kills: int = 0
    acked: int = 0
    acked_http: int = 0
    admitted: int = 0
    lost_in_broker: list[str] = field(default_factory=list)
    lost: list[str] = field(default_factory=list)
    received: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, dict[str, int]] = field(default_factory=dict)
    broker_repeats: dict[str, dict[str, int]] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    in_doubt: Counter[str] = field(default_factory=Counter)
    in_doubt_by_sink: Counter[str] = field(default_factory=Counter)
    radio: RadioTally = field(default_factory=RadioTally)
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        """Nothing lost, no repeat where the policy forbids one, and every radio frame told
        apart (a reused message number or a frame naming no alert hides what was aired)."""
        forbidden = any(self.duplicates.get(s) for s, policy in SINKS.items() if policy != "resend")
        return not (self.lost or forbidden or self.radio.reused or self.radio.strays)

    def table(self) -> str:
        lines = [
            f"daemon SIGKILLs {self.kills}, broker SIGKILLs {self.broker_kills},"
            f" alerts acknowledged {self.acked} ({self.acked_http} by the gateway over HTTP,"
            f" {self.acked - self.acked_http} by the broker over MQTT), admitted"
            f" {self.admitted}, {self.seconds:.0f} s",
            f"acknowledged by the broker, then lost when it was killed before passing them"
            f" on: {len(self.lost_in_broker)} (Mosquitto's own durability, not the gateway's)",
            publish_answers(),
        ]
        lines += sink_table(SINKS, self.received, self.lost, self.duplicates, self.held,
                            self.in_doubt_by_sink)
        lines.append(broker_repeats_line(self.broker_repeats))
        radio = self.radio
        lines.append(
            f"radio: {radio.frames} frames heard by {RADIO_CALL}; {radio.repeats} repeats of a"
            f" message number (APRS retries: acked again and dropped, not duplicates);"
            f" {len(radio.reused)} numbers reused; {len(radio.strays)} frames naming no alert"
        )
        lines.extend(f"    {what}" for what in radio.reused + radio.strays)
        resolved = ", ".join(f"{k} {v}" for k, v in sorted(self.in_doubt.items())) or "none"
        lines.append(f"in doubt at restarts: {resolved}")
        lines.append("RESULT: " + ("ok" if self.ok else "FAILED"))
        return "\n".join(lines)


def _config(tmp: Path, broker_port: int, http_port: int, station_port: int) -> Path:
    (tmp / "token").write_text(TOKEN + "\n", encoding="utf-8")
    path = tmp / "chaos.toml"
    path.write_text(
        f'[gateway]\nname = "chaos"\ndata_dir = "{tmp}"\ndrain_timeout = 2\n'
        "housekeeping_interval = 0.5\n\n"
        f'[mqtt]\nbroker = "mqtt://127.0.0.1:{broker_port}"\nclient_id = "chaos"\n'
        'validation = "warn"\npublish_active = false\n\n'
        f'[http]\nport = {http_port}\ntoken_file = "token"\nvalidation = "warn"\n\n'
        f'[ledger]\npath = "{tmp / "ledger.sqlite3"}"\n\n'
        '[[sink]]\nname = "feed"\ntype = "mqtt"\ntopic = "out/feed/{key}"\n'
        "retry_initial = 0.05\nretry_max = 0.5\n\n"
        '[[sink]]\nname = "air"\ntype = "mqtt"\ntopic = "out/air/{key}"\nlive = true\nqos = 2\n'
        "retry_initial = 0.05\nretry_max = 0.5\n\n"
        '[[sink]]\nname = "files"\ntype = "file"\npath = "files"\n'
        "retry_initial = 0.05\nretry_max = 0.5\n\n"
        # retry_initial is the outbox's; the APRS retries (message_retry_initial) keep 15 s
        f'[[sink]]\nname = "radio"\ntype = "kiss"\nport = "socket://127.0.0.1:{station_port}"\n'
        f'live = true\ncallsign = "VE3BDR-10"\nmode = "message"\naddressees = ["{RADIO_CALL}"]\n'
        "retry_initial = 0.05\nretry_max = 0.5\n\n"
        '[[route]]\nname = "all"\nsinks = ["feed", "air", "files"]\nallow_unsigned_live = true\n'
        'live_trust = "anonymous"\n\n'  # the test broker is anonymous
        '[[route]]\nname = "radio"\nsinks = ["radio"]\ntranslation = "text"\n'
        'allow_unsigned_live = true\nlive_trust = "anonymous"\n'
        '[route.translation_options]\nradio = "aprs"\n',
        encoding="utf-8",
    )
    return path


def _station(tmp: Path) -> tuple[subprocess.Popen[bytes], int]:
    """The radio sink's far end (:mod:`bench.chaos_station`), a process of its own so that it
    outlives every kill of the daemon; its record is ``radio.jsonl``."""
    port = free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with (tmp / "station.log").open("ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "bench.chaos_station", "--port", str(port),
             "--callsign", RADIO_CALL, "--record", str(tmp / "radio.jsonl")],
            stdout=handle, stderr=handle, cwd=ROOT, env=env,
        )
    try:
        wait_for_port("127.0.0.1", port)
    except TimeoutError:
        stop_process(process, timeout=5)
        raise
    return process, port


async def _scenario(
    tmp: Path, *, alerts: int, kills: int, broker_kills: int, seed: int
) -> Report:
    rng = random.Random(seed)
    report = Report()
    factory = CapFactory(sender="chaos@borderlink.invalid")
    broker = start_broker(tmp)
    station, station_port = _station(tmp)
    http_port = free_port()
    config = _config(tmp, broker.port, http_port, station_port)
    log = tmp / "daemon.log"
    seen: list[tuple[str, str, str]] = []
    stop = asyncio.Event()
    collector = asyncio.create_task(collect_copies(broker, seen, stop))
    acked: set[str] = set()
    acked_http: set[str] = set()
    numbered: dict[str, str] = {}  # n of the event "Chaos <n>" -> the alert key
    daemon = spawn_gateway(config, log)
    started = time.monotonic()
    broker_every = max(1, kills // max(1, broker_kills)) if broker_kills else 0
    per_round = max(1, alerts // max(1, kills))
    url = f"http://127.0.0.1:{http_port}/api/v1/alerts"
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            for round_ in range(kills):
                with contextlib.suppress(TimeoutError):
                    await asyncio.to_thread(wait_for_port, "127.0.0.1", http_port, 20)
                for _ in range(per_round):
                    number = str(len(numbered) + 1)
                    body = factory(severity="Severe", event=f"Chaos {number}")
                    key = numbered[number] = CapFactory.key_of(body)
                    over_http = rng.random() < 0.5
                    done = await (post_alert(http, url, body) if over_http
                                  else publish_alert(broker, body))
                    if done:
                        acked.add(key)
                        if over_http:
                            acked_http.add(key)
                await asyncio.sleep(rng.uniform(0.0, 0.3))
                daemon.send_signal(signal.SIGKILL)
                daemon.wait()
                report.kills += 1
                if broker_every and (round_ + 1) % broker_every == 0 and (
                    report.broker_kills < broker_kills
                ):
                    broker.process.send_signal(signal.SIGKILL)
                    broker.process.wait()
                    broker.process = _spawn_mosquitto(broker.config)
                    wait_for_port(broker.host, broker.port)
                    report.broker_kills += 1
                daemon = spawn_gateway(config, log)
        # Settle: the daemon runs until no entry is pending or leased.
        with contextlib.suppress(TimeoutError):
            await asyncio.to_thread(wait_for_port, "127.0.0.1", http_port, 30)
        # Settled: every alert the gateway acknowledged admitted, nothing pending, and the MQTT
        # backlog drained (all admitted, or no admission for 20 s).
        deadline = time.monotonic() + 180
        quiet_since, last = time.monotonic(), -1
        while time.monotonic() < deadline:
            count = _admitted_count(tmp)
            if count != last:
                quiet_since, last = time.monotonic(), count
            if _settled(tmp, acked_http) and (
                _settled(tmp, acked) or time.monotonic() - quiet_since > 20
            ):
                break
            await asyncio.sleep(0.5)
        await _copies_arrived(tmp, seen)
    finally:
        stop_process(daemon)
        stop_process(station)
        stop.set()
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
        broker.stop()
    report.seconds = time.monotonic() - started
    report.acked = len(acked)
    report.acked_http = len(acked_http)
    seen.extend(_radio_copies(tmp / "radio.jsonl", numbered, report.radio))
    _account(tmp, report, acked, acked_http, seen)
    return report


async def _copies_arrived(tmp: Path, seen: list[tuple[str, str, str]]) -> None:
    """Wait (15 s at most) until every MQTT delivery the ledger marked delivered has reached
    the subscriber: the broker passes a copy on a moment after its PUBACK. What has not arrived
    by then is counted lost. The file and radio sinks need no wait: a file is in place, and
    the radio station has recorded a message, before the daemon hears it confirmed."""
    for _ in range(150):
        if _mqtt_copies_heard(tmp, seen):
            return
        await asyncio.sleep(0.1)


def _mqtt_copies_heard(tmp: Path, seen: list[tuple[str, str, str]]) -> bool:
    with contextlib.closing(sqlite3.connect(tmp / "ledger.sqlite3")) as db:
        delivered = set(db.execute(
            "SELECT o.sink, a.sender || ',' || a.identifier || ',' || a.sent"
            " FROM outbox o JOIN alerts a ON a.id = o.alert_id"
            " WHERE o.state = 'delivered' AND o.sink IN (?, ?)", MQTT_SINKS
        ).fetchall())
    return delivered <= {(sink, key) for sink, key, _ident in seen}


def _admitted_count(tmp: Path) -> int:
    with contextlib.closing(sqlite3.connect(tmp / "ledger.sqlite3")) as db:
        try:
            return int(db.execute("SELECT COUNT(*) FROM alerts").fetchone()[0])
        except sqlite3.Error:
            return -1


def _settled(tmp: Path, acked: set[str]) -> bool:
    """Every acknowledged alert admitted, and no delivery pending."""
    with contextlib.closing(sqlite3.connect(tmp / "ledger.sqlite3")) as db:
        try:
            pending = db.execute(
                "SELECT COUNT(*) FROM outbox WHERE state = 'pending'"
            ).fetchone()[0]
            admitted = {r[0] for r in db.execute(
                "SELECT sender || ',' || identifier || ',' || sent FROM alerts"
            )}
        except sqlite3.Error:
            return False
    return pending == 0 and acked <= admitted


def _radio_copies(
    record: Path, numbered: dict[str, str], tally: RadioTally
) -> list[tuple[str, str, str]]:
    """The copies the radio station accepted, as (sink, alert key, delivery id), from its
    record. A station keeps a message once per (sender, number): the same number again with
    the same text is an APRS retry (a repeat, not a copy); with another text it is a reused
    number, which a real station would ack and drop -- that alert was not received."""
    copies: list[tuple[str, str, str]] = []
    texts: dict[tuple[str, str], str] = {}
    for line in record.read_text(encoding="utf-8").splitlines():
        frame = json.loads(line)
        tally.frames += 1
        if frame["kind"] != "message" or frame.get("number") is None:
            tally.strays.append(f"not a numbered message: {line}")
            continue
        heard = (frame["source"], frame["number"])
        if heard in texts:
            if texts[heard] == frame["text"]:
                tally.repeats += 1
            else:
                tally.reused.append(f"number {heard} reused: {texts[heard]!r}, {frame['text']!r}")
            continue
        texts[heard] = frame["text"]
        found = _ALERT_NUMBER.search(frame["text"])
        key = numbered.get(found.group(1)) if found else None
        if key is None:
            tally.strays.append(f"names no chaos alert: {line}")
            continue
        copies.append(("radio", key, delivery_id(AlertKey.from_reference(key), "radio")))
    return copies


def _account(
    tmp: Path,
    report: Report,
    acked: set[str],
    acked_http: set[str],
    seen: list[tuple[str, str, str]],
) -> None:
    """Lost: an alert the gateway acknowledged (a 202) or admitted (from MQTT) that a sink
    never received and the ledger does not account for. An MQTT publish the broker
    acknowledged but never passed on (it was killed before saving it) is the broker's loss,
    counted apart."""
    with contextlib.closing(sqlite3.connect(tmp / "ledger.sqlite3")) as db:
        rows = db.execute(
            "SELECT a.sender || ',' || a.identifier || ',' || a.sent, o.sink, o.state,"
            " o.attributes, o.attempts FROM outbox o JOIN alerts a ON a.id = o.alert_id"
        ).fetchall()
        admitted = {r[0] for r in db.execute(
            "SELECT sender || ',' || identifier || ',' || sent FROM alerts"
        )}
        for sink, detail in db.execute(
            "SELECT sink, detail FROM journal WHERE event = 'in_doubt'"
        ):
            policy = detail.rsplit("in_doubt = ", 1)[-1].rstrip(")")
            report.in_doubt[policy] += 1
            report.in_doubt_by_sink[sink] += 1
    report.admitted = len(admitted & acked)
    report.lost_in_broker = sorted(acked - acked_http - admitted)
    gateway_owned = acked_http | (admitted & acked)
    for meta in sorted((tmp / "files").glob("*.json")):
        body = json.loads(meta.read_bytes())  # a file sink's copies: D.json, D~2.json, ...
        seen.append(("files", body["alert_key"], body["delivery_id"]))
    copies = Counter((sink, ident) for sink, _key, ident in seen)
    received = {(sink, key) for sink, key, _ident in seen}
    for sink in SINKS:
        report.received[sink] = sum(n for (s, _i), n in copies.items() if s == sink)
    report.duplicates, report.broker_repeats = split_repeats(
        seen, {(sink, key): n for key, sink, _st, _attrs, n in rows}
    )
    state = {(key, sink): (st, json.loads(attrs)) for key, sink, st, attrs, _n in rows}
    report.held = dict(Counter(sink for (_k, sink), (st, _a) in state.items() if st == "held"))
    for key in sorted(gateway_owned):
        for sink in SINKS:
            if (sink, key) in received:
                continue
            entry = state.get((key, sink))
            if entry is not None and entry[0] in ("held", "failed", "expired", "superseded"):
                continue  # accounted for by the ledger, with its reason
            report.lost.append(f"{sink}:{key}")


def run(*, alerts: int, kills: int, broker_kills: int, seed: int = 20261204) -> Report:
    with tempfile.TemporaryDirectory(prefix="chaos-") as tmp:
        return asyncio.run(
            _scenario(Path(tmp), alerts=alerts, kills=kills, broker_kills=broker_kills, seed=seed)
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--alerts", type=int, default=1000)
    parser.add_argument("--kills", type=int, default=100)
    parser.add_argument("--broker-kills", type=int, default=20)
    parser.add_argument("--seed", type=int, default=20261204)
    cluster = parser.add_argument_group(
        "cluster mode", "several instances on one PostgreSQL ledger (bench/chaos_cluster.py)"
    )
    cluster.add_argument("--cluster", type=int, default=0, metavar="N",
                         help="run N instances on one PostgreSQL ledger (--kills: instance kills)")
    cluster.add_argument("--leader-kills", type=int, default=5,
                         help="of the instance kills, those of the leader (timed takeovers)")
    cluster.add_argument("--pg-restarts", type=int, default=3,
                         help="PostgreSQL crashes (pg_ctl stop -m immediate) and starts")
    args = parser.parse_args(argv)
    if args.cluster:
        from bench import chaos_cluster  # noqa: PLC0415 - only in cluster mode

        cluster_report = chaos_cluster.run(
            instances=args.cluster, alerts=args.alerts, kills=args.kills,
            leader_kills=args.leader_kills, pg_restarts=args.pg_restarts,
            broker_kills=args.broker_kills, seed=args.seed,
        )
        print(cluster_report.table())
        return 0 if cluster_report.ok else 1
    report = run(
        alerts=args.alerts, kills=args.kills, broker_kills=args.broker_kills, seed=args.seed
    )
    print(report.table())
    return 0 if report.ok else 1


if __name__ == "__main__":
    sys.exit(main())
