"""Chaos, cluster mode: several gateways on one PostgreSQL ledger while instances, the leader,
PostgreSQL and the broker are killed under a flow of alerts.

``python -m bench.chaos --cluster 3`` (``make chaos-cluster``) runs :func:`run` long;
``tests/daemon/test_chaos.py`` runs it short in every CI run. The scenario:

* **a cluster**: ``--cluster`` daemon instances (``gw0``, ``gw1`` ...) as child processes, each
  with its own ``[gateway] name``, data folder, ``[mqtt] client_id`` and HTTP port, all on one
  PostgreSQL ledger (one schema) and one real persistent Mosquitto, sharing the MQTT input as
  the MQTT 5 shared subscription ``$share/chaos/...`` (each message goes to one instance);
* **a leader_only feed**: a ``naad`` source against ``borderlink sim naad`` in a process of its
  own (one alert every 2 s, a heartbeat listing the last ten every 2 s, the archive to fetch
  what a stream missed). One instance at a time leads it; its alerts are counted like the
  others, and one the streams carried while no instance led must come back by the heartbeat
  and the archive;
* **sinks** as in the single-instance scenario: MQTT ``feed`` (``resend``) and ``air`` (``live``,
  so ``hold``) heard by a subscriber on a persistent session, and a file sink ``files``
  (``resend``) writing into one folder all instances share. The radio sink is left out: a TNC
  is one machine's hardware, and the scenario is about what the instances share.

Alerts go in over HTTP (``POST /api/v1/alerts`` to the instances in turn, acknowledged by a 202)
and over MQTT (acknowledged by the broker's PUBACK). Meanwhile, in a shuffled order:

* **leader kills**: the instance whose ``/healthz`` lists the feed in ``leads`` is SIGKILLed;
  the **takeover time** runs from the kill until another instance's ``/healthz`` lists it
  (polled every 0.1 s) -- at most 10 s; then the killed instance is started again;
* **instance kills**: another instance, delivering while alerts flow (its workers claim
  entries all the time), is SIGKILLed and started again at once;
* **PostgreSQL restarts**: ``pg_ctl stop -m immediate`` (a crash: connections cut, no
  checkpoint), a pause, ``pg_ctl start``; every running instance must write its heartbeat to
  the ledger again (its reconnect time is counted);
* **broker kills**: Mosquitto SIGKILLed and started again on its persistent store.

At the end every instance runs until the outbox is settled; the counts come from what the
subscriber and the file folder received, held against the ledger (queried in PostgreSQL): lost
(0), duplicates only on ``resend`` sinks, every attempt in doubt resolved, every takeover
within 10 s, every instance back on the ledger after each PostgreSQL restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
import psycopg

from bench.chaos_common import (
    BROKER_WINDOW,
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
from tests.daemon.conftest import CapFactory
from tests.helpers import Broker, Postgres, _spawn_mosquitto, free_port, run_postgres, wait_for_port

# sink -> its in_doubt policy (the live sink holds; the others resend)
SINKS = {"feed": "resend", "air": "hold", "files": "resend"}
MQTT_SINKS = ("feed", "air")
LED = "naad"  # the leader_only source
TAKEOVER_LIMIT = 10.0  # seconds from a leader's SIGKILL to another instance leading
RECONNECT_LIMIT = 30.0  # seconds from PostgreSQL's start to every instance's heartbeat
FAULTS = ("leader", "claims", "postgres", "broker")


@dataclass
class Instance:
    """One daemon of the cluster and how to reach it."""

    name: str
    config: Path
    http_port: int
    log: Path
    process: subprocess.Popen[bytes] | None = None
    ready: bool = False  # its HTTP port answers: it is given alerts over HTTP

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.http_port}"

    def start(self) -> None:
        self.ready = False
        self.process = spawn_gateway(self.config, self.log)

    def kill(self) -> None:
        """SIGKILL: nothing is given up (leases, claims, sessions stay as they were)."""
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGKILL)
            self.process.wait()
        self.ready = False

    async def wait_ready(self, within: float = 60) -> None:
        """Until its HTTP port answers; started again when it exits first, as systemd's
        ``Restart=always`` does (an instance started while PostgreSQL is down exits: it
        cannot open its ledger)."""
        deadline = time.monotonic() + within
        while time.monotonic() < deadline:
            with contextlib.suppress(TimeoutError):
                await asyncio.to_thread(wait_for_port, "127.0.0.1", self.http_port, 0.5)
                self.ready = True
                return
            if self.process is not None and self.process.poll() is not None:
                self.process = spawn_gateway(self.config, self.log)
        msg = f"{self.name}: nothing listening on port {self.http_port} after {within} s"
        raise TimeoutError(msg)


@dataclass
class ClusterReport:
    """What the cluster run did and what the sinks received, against the ledger."""

    instances: int
    seed: int
    kills: int = 0
    leader_kills: int = 0
    pg_restarts: int = 0
    broker_kills: int = 0
    acked: int = 0
    acked_http: int = 0
    admitted: int = 0
    naad_published: int = 0
    naad_missed: list[str] = field(default_factory=list)
    lost_in_broker: list[str] = field(default_factory=list)
    lost_in_broker_out: list[str] = field(default_factory=list)  # sink:key, after its PUBACK
    lost: list[str] = field(default_factory=list)
    received: dict[str, int] = field(default_factory=dict)
    duplicates: dict[str, dict[str, int]] = field(default_factory=dict)
    broker_repeats: dict[str, dict[str, int]] = field(default_factory=dict)
    held: dict[str, int] = field(default_factory=dict)
    in_doubt: Counter[str] = field(default_factory=Counter)
    in_doubt_by_sink: Counter[str] = field(default_factory=Counter)
    unresolved: list[str] = field(default_factory=list)  # claims still under way at the end
    takeovers: list[float] = field(default_factory=list)
    reconnects: list[float] = field(default_factory=list)
    unreconnected: list[str] = field(default_factory=list)
    seconds: float = 0.0
    evidence: list[str] = field(default_factory=list)  # the ledger's story of a few findings

    @property
    def ok(self) -> bool:
        """Nothing lost (the broker's own losses apart), no repeat where the policy forbids
        one, no claim left in doubt, every takeover within 10 s, every reconnect made."""
        forbidden = any(self.duplicates.get(s) for s, policy in SINKS.items() if policy != "resend")
        slow = any(t > TAKEOVER_LIMIT for t in self.takeovers)
        return not (
            self.lost or forbidden or self.unresolved or self.naad_missed or slow
            or self.unreconnected or len(self.takeovers) < self.leader_kills
        )

    def table(self) -> str:
        """The single-instance table, with the cluster's own lines."""
        mqtt = self.acked - self.acked_http
        lines = [
            f"cluster of {self.instances} instances on one PostgreSQL ledger, seed {self.seed},"
            f" {self.seconds:.0f} s",
            f"instance SIGKILLs {self.kills} ({self.leader_kills} of the leader, the others"
            f" of an instance delivering), PostgreSQL restarts"
            f" {self.pg_restarts}, broker SIGKILLs {self.broker_kills}",
            f"alerts acknowledged {self.acked} ({self.acked_http} by the gateways over HTTP,"
            f" {mqtt} by the broker over MQTT), admitted {self.admitted}; NAAD feed (leader"
            f" only): {self.naad_published} published, {len(self.naad_missed)} missed",
            f"acknowledged by the broker, then lost when it was killed before passing them"
            f" on: {len(self.lost_in_broker)} (Mosquitto's own durability, not the gateway's)",
            f"delivered to the broker (its PUBACK or PUBCOMP) within {BROKER_WINDOW:.0f} s before"
            f" it was killed and never passed on: {len(self.lost_in_broker_out)}"
            + "".join(f"\n    {what}" for what in self.lost_in_broker_out),
            publish_answers(),
        ]
        lines += sink_table(SINKS, self.received, self.lost, self.duplicates, self.held,
                            self.in_doubt_by_sink)
        lines.append(broker_repeats_line(self.broker_repeats))
        resolved = ", ".join(f"{k} {v}" for k, v in sorted(self.in_doubt.items())) or "none"
        lines.append(f"in doubt: {resolved}; unresolved at the end: {len(self.unresolved)}")
        lines.extend(f"    {what}" for what in self.lost + self.naad_missed + self.unresolved)
        lines.append(
            "leadership takeovers (s, SIGKILL of the leader -> another /healthz leads): "
            + (", ".join(f"{t:.1f}" for t in self.takeovers) or "none")
            + (f"; max {max(self.takeovers):.1f} (limit {TAKEOVER_LIMIT:.0f})"
               if self.takeovers else "")
        )
        lines.append(
            "back on the ledger after PostgreSQL restarts (s, start -> every heartbeat): "
            + (", ".join(f"{t:.1f}" for t in self.reconnects) or "none")
            + (f"; never: {', '.join(self.unreconnected)}" if self.unreconnected else "")
        )
        if not self.ok:
            lines.extend(self.evidence)
        lines.append("RESULT: " + ("ok" if self.ok else "FAILED"))
        return "\n".join(lines)


# ---------------------------------------------------------------------------- configuration


def _config(tmp: Path, n: int, *, broker: Broker, postgres: Postgres, schema: str,
            naad: tuple[int, int]) -> Instance:
    """Instance ``gw<n>``: its own name, folder, client id and HTTP port; the shared ledger,
    broker group, feed and file folder."""
    name = f"gw{n}"
    folder = tmp / name
    folder.mkdir()
    (folder / "token").write_text(TOKEN + "\n", encoding="utf-8")
    http_port = free_port()
    stream, archive = naad
    templates = [f"http://127.0.0.1:{archive}/{m}/{{date}}/{{sent}}I{{identifier}}.xml"
                 for m in ("capcp1", "capcp2")]
    retry = "retry_initial = 0.05\nretry_max = 0.5\n"
    path = folder / "borderlink.toml"
    path.write_text(
        f'[gateway]\nname = "{name}"\ndata_dir = "{folder}"\ndrain_timeout = 2\n'
        "housekeeping_interval = 0.5\n\n"
        f'[mqtt]\nbroker = "{broker.url}"\nclient_id = "chaos-{name}"\n'
        'shared_group = "chaos"\nvalidation = "warn"\npublish_active = false\n\n'
        f'[http]\nport = {http_port}\ntoken_file = "token"\nvalidation = "warn"\n\n'
        "[console]\nenabled = false\n\n"
        f'[ledger]\nbackend = "postgresql"\ndsn = "{postgres.dsn}"\nschema = "{schema}"\n\n'
        f'[[source]]\nname = "{LED}"\ntype = "naad"\n'
        f'streams = ["tcp://127.0.0.1:{stream}"]\narchive_templates = {json.dumps(templates)}\n'
        "liveness_timeout = 10\n\n"
        f'[[sink]]\nname = "feed"\ntype = "mqtt"\ntopic = "out/feed/{{key}}"\n{retry}\n'
        '[[sink]]\nname = "air"\ntype = "mqtt"\ntopic = "out/air/{key}"\nlive = true\nqos = 2\n'
        f"{retry}\n"
        f'[[sink]]\nname = "files"\ntype = "file"\npath = "{tmp / "files"}"\n{retry}\n'
        '[[route]]\nname = "all"\nsinks = ["feed", "air", "files"]\nallow_unsigned_live = true\n'
        'live_trust = "anonymous"\n',  # the test broker is anonymous
        encoding="utf-8",
    )
    return Instance(name, path, http_port, folder / "daemon.log")


def _naad_simulator(tmp: Path) -> tuple[subprocess.Popen[bytes], int, int]:
    """``borderlink sim naad`` in a process of its own (it outlives every instance): one
    stream, the archive and its control port; an alert and a heartbeat every 2 s."""
    stream, archive = free_port(), free_port()
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with (tmp / "naad.log").open("ab") as handle:
        process = subprocess.Popen(
            [sys.executable, "-m", "gateway", "sim", "naad", "--port", str(stream),
             "--archive-port", str(archive), "--heartbeat", "2", "--interval", "2", "--repeat"],
            stdout=handle, stderr=handle, cwd=ROOT, env=env,
        )
    try:
        wait_for_port("127.0.0.1", stream)
        wait_for_port("127.0.0.1", archive)
    except TimeoutError:
        stop_process(process, timeout=5)
        raise
    return process, stream, archive


# ---------------------------------------------------------------------------- the ledger


@contextlib.contextmanager
def _ledger(postgres: Postgres, schema: str) -> Iterator[psycopg.Connection[Any]]:
    """A plain connection to the shared ledger's schema (autocommit: each query sees now)."""
    with psycopg.connect(postgres.dsn, autocommit=True, connect_timeout=5) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        yield conn


def _query(postgres: Postgres, schema: str, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    """Rows of one query, or none while the server is down or the schema not made yet."""
    try:
        with _ledger(postgres, schema) as conn:
            return list(conn.execute(sql, args).fetchall())
    except psycopg.Error:
        return []


_KEY = "a.sender || ',' || a.identifier || ',' || a.sent"


def _admitted(postgres: Postgres, schema: str) -> set[str]:
    return {r[0] for r in _query(postgres, schema, f"SELECT {_KEY} FROM alerts a")}


def _heartbeats(postgres: Postgres, schema: str) -> dict[str, int]:
    """Each instance's last heartbeat on the ledger (microseconds since the epoch)."""
    return {r[0]: int(r[1]) for r in _query(
        postgres, schema, "SELECT name, last_seen FROM instances")}


# ---------------------------------------------------------------------------- observation


async def _leads(http: aiohttp.ClientSession, instance: Instance) -> list[str]:
    """What ``/healthz`` of ``instance`` says it leads (nothing when it does not answer)."""
    try:
        async with http.get(instance.url + "/healthz") as resp:
            body = await resp.json()
            return list(body.get("leads", []))
    except (aiohttp.ClientError, TimeoutError, ValueError):
        return []


async def _leader(http: aiohttp.ClientSession, cluster: list[Instance],
                  within: float = 30) -> Instance | None:
    """The instance leading the feed by its own ``/healthz`` (polled until one does)."""
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        for instance in cluster:
            if instance.ready and LED in await _leads(http, instance):
                return instance
        await asyncio.sleep(0.1)
    return None


async def _taken_over(http: aiohttp.ClientSession, others: list[Instance],
                      killed_at: float, within: float = 30) -> float | None:
    """Seconds from ``killed_at`` until one of ``others`` lists the feed in its ``leads``."""
    deadline = killed_at + within
    while time.monotonic() < deadline:
        leads = await asyncio.gather(*(_leads(http, i) for i in others))
        if any(LED in found for found in leads):
            return time.monotonic() - killed_at
        await asyncio.sleep(0.1)
    return None


# ---------------------------------------------------------------------------- the run


@dataclass
class _Flow:
    """The alerts sent so far and how each was acknowledged."""

    factory: CapFactory
    rng: random.Random
    broker: Broker
    acked: set[str] = field(default_factory=set)
    acked_http: set[str] = field(default_factory=set)
    published_at: dict[str, float] = field(default_factory=dict)  # MQTT acks: when
    sent: int = 0
    turn: int = 0

    async def send(self, http: aiohttp.ClientSession, cluster: list[Instance], count: int) -> None:
        """``count`` alerts, each over HTTP to the next ready instance or over MQTT."""
        for _ in range(count):
            self.sent += 1
            body = self.factory(severity="Severe", event=f"Chaos {self.sent}")
            key = CapFactory.key_of(body)
            ready = [i for i in cluster if i.ready]
            if ready and self.rng.random() < 0.5:
                target = ready[self.turn % len(ready)]
                self.turn += 1
                if await post_alert(http, target.url + "/api/v1/alerts", body):
                    self.acked.add(key)
                    self.acked_http.add(key)
            elif await publish_alert(self.broker, body):
                self.acked.add(key)
                self.published_at[key] = time.monotonic()
            await asyncio.sleep(self.rng.uniform(0.0, 0.03))


@dataclass
class _Chaos:
    """The faults, applied one at a time while alerts flow."""

    report: ClusterReport
    cluster: list[Instance]
    broker: Broker
    postgres: Postgres
    schema: str
    rng: random.Random
    restarts: set[asyncio.Task[None]] = field(default_factory=set)
    broker_killed_at: list[float] = field(default_factory=list)
    broker_killed_wall: list[float] = field(default_factory=list)  # time.time(), as the ledger

    def _restart(self, instance: Instance) -> None:
        instance.start()
        task = asyncio.create_task(instance.wait_ready())
        self.restarts.add(task)
        task.add_done_callback(self.restarts.discard)

    async def leader(self, http: aiohttp.ClientSession) -> None:
        """SIGKILL the leader; time the takeover; start it again once another leads."""
        leader = await _leader(http, self.cluster)
        if leader is None:
            self.report.takeovers.append(float("inf"))  # nobody led: counted as failed
            return
        leader.kill()
        killed_at = time.monotonic()
        self.report.kills += 1
        self.report.leader_kills += 1
        others = [i for i in self.cluster if i is not leader]
        took = await _taken_over(http, others, killed_at)
        self.report.takeovers.append(took if took is not None else float("inf"))
        self._restart(leader)

    async def claims(self, http: aiohttp.ClientSession) -> None:
        """SIGKILL an instance other than the leader while alerts flow (its sink workers
        claim entries all the time: what it had under way is left leased), and start it
        again at once."""
        leader = await _leader(http, self.cluster, within=5)
        candidates = [i for i in self.cluster if i.ready and i is not leader]
        if not candidates:
            return
        victim = self.rng.choice(candidates)
        victim.kill()
        self.report.kills += 1
        self._restart(victim)

    async def postgres_restart(self, _http: aiohttp.ClientSession) -> None:
        """A crash of the database (``-m immediate``), a pause, a start; then every running
        instance must write its heartbeat again."""
        await asyncio.to_thread(self.postgres.stop, "immediate")
        await asyncio.sleep(self.rng.uniform(0.5, 2.0))  # the outage itself, not a wait
        await asyncio.to_thread(self.postgres.start)
        started = time.monotonic()
        started_us = int(time.time() * 1_000_000)
        self.report.pg_restarts += 1
        waiting = {i.name for i in self.cluster if i.ready}
        while waiting and time.monotonic() - started < RECONNECT_LIMIT:
            beats = await asyncio.to_thread(_heartbeats, self.postgres, self.schema)
            waiting = {n for n in waiting if beats.get(n, 0) <= started_us}
            await asyncio.sleep(0.1)
        if waiting:
            self.report.unreconnected.extend(sorted(waiting))
        else:
            self.report.reconnects.append(time.monotonic() - started)

    async def broker_kill(self, _http: aiohttp.ClientSession) -> None:
        """SIGKILL Mosquitto and start it again on its persistent store."""
        self.broker.process.send_signal(signal.SIGKILL)
        self.broker.process.wait()
        self.broker_killed_at.append(time.monotonic())
        self.broker_killed_wall.append(time.time())
        self.broker.process = _spawn_mosquitto(self.broker.config)
        await asyncio.to_thread(wait_for_port, self.broker.host, self.broker.port)
        self.report.broker_kills += 1

    async def apply(self, fault: str, http: aiohttp.ClientSession) -> None:
        actions = {"leader": self.leader, "claims": self.claims,
                   "postgres": self.postgres_restart, "broker": self.broker_kill}
        await actions[fault](http)


def _plan(rng: random.Random, *, kills: int, leader_kills: int, pg_restarts: int,
          broker_kills: int) -> list[str]:
    """The faults in a shuffled order (the leader kills counted among the instance kills)."""
    leader_kills = min(leader_kills, kills)
    plan = (["leader"] * leader_kills + ["claims"] * (kills - leader_kills)
            + ["postgres"] * pg_restarts + ["broker"] * broker_kills)
    rng.shuffle(plan)
    return plan


async def _scenario(tmp: Path, postgres: Postgres, *, instances: int, alerts: int, kills: int,
                    leader_kills: int, pg_restarts: int, broker_kills: int,
                    seed: int) -> ClusterReport:
    rng = random.Random(seed)
    report = ClusterReport(instances=instances, seed=seed)
    schema = "chaos_" + uuid.uuid4().hex[:8]
    broker = start_broker(tmp)
    naad, stream, archive = _naad_simulator(tmp)
    cluster = [_config(tmp, n, broker=broker, postgres=postgres, schema=schema,
                       naad=(stream, archive)) for n in range(instances)]
    seen: list[tuple[str, str, str]] = []
    stop = asyncio.Event()
    collector = asyncio.create_task(collect_copies(broker, seen, stop))
    flow = _Flow(CapFactory(sender="chaos@borderlink.invalid"), rng, broker)
    chaos = _Chaos(report, cluster, broker, postgres, schema, rng)
    plan = _plan(rng, kills=kills, leader_kills=leader_kills, pg_restarts=pg_restarts,
                 broker_kills=broker_kills)
    started = time.monotonic()
    try:
        cluster[0].start()  # the first creates the schema; the others join it
        await cluster[0].wait_ready()
        for instance in cluster[1:]:
            instance.start()
        await asyncio.gather(*(i.wait_ready() for i in cluster[1:]))
        per_round = max(1, alerts // max(1, len(plan)))
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=10)) as http:
            for fault in plan:
                sender = asyncio.create_task(flow.send(http, cluster, per_round))
                await asyncio.sleep(rng.uniform(0.1, 0.5))  # let deliveries get under way
                await chaos.apply(fault, http)
                await sender
            if flow.sent < alerts:
                await flow.send(http, cluster, alerts - flow.sent)
            await asyncio.gather(*chaos.restarts, return_exceptions=True)
            owned_naad = await _naad_published(http, archive)
            await _settle(postgres, schema, flow, owned_naad)
            await _copies_arrived(postgres, schema, seen)
        report.seconds = time.monotonic() - started
        _account(postgres, schema, report, flow, owned_naad, seen, tmp / "files",
                 chaos.broker_killed_at, chaos.broker_killed_wall)
    finally:
        for instance in cluster:
            if instance.process is not None:
                stop_process(instance.process)
        stop_process(naad)
        stop.set()
        collector.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await collector
        broker.stop()
    return report


async def _naad_published(http: aiohttp.ClientSession, archive: int) -> set[str]:
    """The alerts the NAAD simulator has published so far (its control status)."""
    async with http.get(f"http://127.0.0.1:{archive}/control/status") as resp:
        body = await resp.json()
    return set(body["published_keys"])


async def _settle(postgres: Postgres, schema: str, flow: _Flow, naad: set[str]) -> None:
    """Wait (4 minutes at most) until every alert a gateway acknowledged and every NAAD alert
    published is admitted, no delivery of an admitted alert is pending, and the MQTT backlog
    is drained (every MQTT alert admitted, or no admission for 20 s)."""
    deadline = time.monotonic() + 240
    quiet_since, last = time.monotonic(), -1
    must = flow.acked_http | naad
    while time.monotonic() < deadline:
        admitted = await asyncio.to_thread(_admitted, postgres, schema)
        if len(admitted) != last:
            quiet_since, last = time.monotonic(), len(admitted)
        drained = flow.acked <= admitted or time.monotonic() - quiet_since > 20
        # every admitted alert's deliveries, not only the acknowledged ones': an MQTT
        # publish admitted but whose PUBACK a broker kill lost is delivered and accounted too
        if must <= admitted and drained and not await asyncio.to_thread(
            _open_entries, postgres, schema, must | admitted
        ):
            return
        await asyncio.sleep(0.5)


def _open_entries(postgres: Postgres, schema: str, keys: set[str]) -> bool:
    """Whether any delivery of ``keys`` is still pending (due, leased or retrying)."""
    rows = _query(postgres, schema,
                  f"SELECT {_KEY} FROM outbox o JOIN alerts a ON a.id = o.alert_id"
                  " WHERE o.state = 'pending'")
    return any(r[0] in keys for r in rows)


async def _copies_arrived(postgres: Postgres, schema: str,
                          seen: list[tuple[str, str, str]]) -> None:
    """Wait (15 s at most) until every MQTT delivery the ledger marked delivered reached the
    subscriber (the broker passes a copy on a moment after its PUBACK)."""
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        delivered = set(await asyncio.to_thread(
            _query, postgres, schema,
            f"SELECT o.sink, {_KEY} FROM outbox o JOIN alerts a ON a.id = o.alert_id"
            " WHERE o.state = 'delivered' AND o.sink IN ('feed', 'air')",
        ))
        if {(s, k) for s, k in delivered} <= {(s, k) for s, k, _i in seen}:
            return
        await asyncio.sleep(0.1)


def _near(at: float, kills: list[float]) -> bool:
    """Whether something the broker acknowledged at ``at`` came at most ``BROKER_WINDOW``
    before one of its SIGKILLs (its persistence may not have saved it)."""
    return any(0 <= k - at <= BROKER_WINDOW for k in kills)


def _account(postgres: Postgres, schema: str, report: ClusterReport, flow: _Flow,
             naad: set[str], seen: list[tuple[str, str, str]], files: Path,
             broker_kills: list[float], broker_wall: list[float]) -> None:
    """Lost: an alert a gateway acknowledged (a 202) or admitted (from MQTT or the feed)
    that a sink never received and the ledger does not account for (held, failed, expired,
    superseded -- each with its reason). An MQTT publish the broker acknowledged within 5 s
    of its own SIGKILL and never passed on is the broker's loss, counted apart; any other
    acknowledged publish never admitted is lost."""
    rows = _query(postgres, schema,
                  f"SELECT {_KEY}, o.sink, o.state, o.started_at IS NOT NULL, o.attempts,"
                  " o.updated_at FROM outbox o JOIN alerts a ON a.id = o.alert_id")
    admitted = _admitted(postgres, schema)
    for sink, detail in _query(postgres, schema,
                               "SELECT sink, detail FROM journal WHERE event = 'in_doubt'"):
        report.in_doubt[detail.rsplit("in_doubt = ", 1)[-1].rstrip(")")] += 1
        report.in_doubt_by_sink[sink] += 1
    report.acked, report.acked_http = len(flow.acked), len(flow.acked_http)
    report.admitted = len(admitted & flow.acked)
    report.naad_published = len(naad)
    report.naad_missed = sorted(f"naad alert never admitted: {k}" for k in naad - admitted)
    for key in sorted(flow.acked - flow.acked_http - admitted):
        at = flow.published_at.get(key, 0.0)
        near_kill = _near(at, broker_kills)
        (report.lost_in_broker if near_kill else report.lost).append(
            key if near_kill else f"mqtt:{key}"
        )
    for meta in sorted(files.glob("*.json")):
        body = json.loads(meta.read_bytes())  # the file sink's copies: D.json, D~2.json, ...
        seen.append(("files", body["alert_key"], body["delivery_id"]))
    copies = Counter((sink, ident) for sink, _key, ident in seen)
    received = {(sink, key) for sink, key, _ident in seen}
    for sink in SINKS:
        report.received[sink] = sum(n for (s, _i), n in copies.items() if s == sink)
    report.duplicates, report.broker_repeats = split_repeats(
        seen, {(sink, key): n for key, sink, _st, _claimed, n, _at in rows}
    )
    state = {(key, sink): st for key, sink, st, _claimed, _n, _at in rows}
    changed = {(key, sink): at / 1e6 for key, sink, _st, _claimed, _n, at in rows}
    report.unresolved = sorted(f"claim left under way: {sink}:{key}"
                               for key, sink, st, claimed, _n, _at in rows
                               if st == "pending" and claimed)
    report.held = dict(Counter(sink for (_k, sink), st in state.items() if st == "held"))
    chaos_owned = flow.acked_http | (admitted & flow.acked)
    for key in sorted(chaos_owned | (naad & admitted)):
        for sink in SINKS:
            if (sink, key) in received:
                continue
            entry = state.get((key, sink))
            if entry is None and key in naad:
                continue  # a feed alert no route sends to this sink
            if entry in ("held", "failed", "expired", "superseded"):
                continue  # accounted for by the ledger, with its reason
            if entry == "delivered" and sink in MQTT_SINKS and _near(
                changed[(key, sink)], broker_wall
            ):
                # the broker acknowledged it (PUBACK / PUBCOMP), then died before saving it
                report.lost_in_broker_out.append(f"{sink}:{key}")
                continue
            report.lost.append(f"{sink}:{key}")
    repeated = sorted({(s, k) for (s, k, i) in seen
                       if i in report.duplicates.get(s, {}) and SINKS.get(s) != "resend"})
    lost = [item.split(":", 1) for item in report.lost if not item.startswith("mqtt:")]
    report.evidence = _evidence(postgres, schema, repeated[:5] + [(s, k) for s, k in lost[:5]],
                                files.parent, [k.split(":", 1)[1] for k in report.lost
                                               if k.startswith("mqtt:")][:5])


def _evidence(postgres: Postgres, schema: str, findings: list[tuple[str, str]],
              tmp: Path, unadmitted: list[str]) -> list[str]:
    """For a few findings, what the ledger journalled of that sink's entry and what the
    instances' logs said of an MQTT alert never admitted: where to look first."""
    lines: list[str] = []
    for sink, key in findings:
        lines.append(f"  journal of {sink}:{key}")
        rows = _query(postgres, schema,
                      f"SELECT j.at, j.event, j.detail FROM journal j JOIN alerts a"
                      f" ON a.sender = j.sender AND a.identifier = j.identifier"
                      f" AND a.sent = j.sent WHERE {_KEY} = %s AND (j.sink = %s OR j.sink IS NULL"
                      " OR j.sink = '') ORDER BY j.id", key, sink)
        lines.extend(f"    {at} {event}: {detail}" for at, event, detail in rows)
    for key in unadmitted:
        ident = key.split(",")[1]
        lines.append(f"  logs on {ident} (never admitted)")
        for log in sorted(tmp.glob("gw*/daemon.log")):
            for text in log.read_text(encoding="utf-8", errors="replace").splitlines():
                if ident in text:
                    lines.append(f"    {log.parent.name}: {text[:300]}")
    return lines


def run(*, instances: int = 3, alerts: int, kills: int, leader_kills: int, pg_restarts: int,
        broker_kills: int, seed: int = 20261204) -> ClusterReport:
    """One cluster run in a temporary folder, on a PostgreSQL server of its own."""
    with tempfile.TemporaryDirectory(prefix="chaos-cluster-") as tmp, run_postgres() as pg:
        return asyncio.run(_scenario(
            Path(tmp), pg, instances=instances, alerts=alerts, kills=kills,
            leader_kills=leader_kills, pg_restarts=pg_restarts, broker_kills=broker_kills,
            seed=seed,
        ))
