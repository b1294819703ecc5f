"""Fixtures of the daemon tests: a CAP factory, configurations, an in-process daemon, MQTT
subscribers that count what sinks delivered, and a TCP proxy that can cut a link."""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import os
import subprocess
import sys
import tempfile
import time
import tomllib
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import aiomqtt
import pytest
from paho.mqtt.properties import Properties

from cap_schemas.model import format_cap_datetime
from gateway.config import Config, parse_config
from gateway.daemon import Daemon
from gateway.supervisor import Backoff
from tests.helpers import Broker, free_port, require_tool, wait_for_port

ROOT = Path(__file__).resolve().parents[2]
_counter = itertools.count(1)


# ------------------------------------------------------------------------------ CAP factory


@dataclass
class CapFactory:
    """Builds valid CAP 1.2 alerts with unique identifiers."""

    sender: str = "test-sender@borderlink.invalid"

    def __call__(
        self,
        *,
        identifier: str | None = None,
        sent: datetime | None = None,
        status: str = "Actual",
        msg_type: str = "Alert",
        scope: str = "Public",
        references: list[str] | None = None,
        event: str = "Test Event",
        severity: str = "Moderate",
        urgency: str = "Expected",
        certainty: str = "Likely",
        language: str = "en-US",
        broadcast_immediately: bool = False,
        expires_in: timedelta | None = timedelta(hours=2),
        geocodes: tuple[tuple[str, str], ...] = (("SAME", "036001"),),
        polygon: str | None = None,
        circle: str | None = None,
        event_codes: tuple[tuple[str, str], ...] = (),
        headline: str = "test headline",
    ) -> bytes:
        ident = identifier or f"T-{next(_counter)}-{uuid.uuid4().hex[:12]}"
        when = (sent or datetime.now(UTC)).replace(microsecond=0)
        refs = f"<references>{' '.join(references)}</references>" if references else ""
        expires = (
            f"<expires>{format_cap_datetime(when + expires_in)}</expires>"
            if expires_in is not None
            else ""
        )
        params = (
            "<parameter><valueName>layer:SOREM:1.0:Broadcast_Immediately</valueName>"
            "<value>Yes</value></parameter>"
            if broadcast_immediately
            else ""
        )
        codes = "".join(
            f"<eventCode><valueName>{n}</valueName><value>{v}</value></eventCode>"
            for n, v in event_codes
        )
        geo = "".join(
            f"<geocode><valueName>{n}</valueName><value>{v}</value></geocode>"
            for n, v in geocodes
        )
        shape = (f"<polygon>{polygon}</polygon>" if polygon else "") + (
            f"<circle>{circle}</circle>" if circle else ""
        )
        return (
            '<?xml version="1.0" encoding="UTF-8"?>\n'
            '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
            f"<identifier>{ident}</identifier><sender>{self.sender}</sender>"
            f"<sent>{format_cap_datetime(when)}</sent><status>{status}</status>"
            f"<msgType>{msg_type}</msgType><scope>{scope}</scope>{refs}"
            f"<info><language>{language}</language><category>Met</category>"
            f"<event>{event}</event><urgency>{urgency}</urgency><severity>{severity}</severity>"
            f"<certainty>{certainty}</certainty>{codes}{expires}"
            f"<headline>{headline}</headline>{params}"
            f"<area><areaDesc>Test Area</areaDesc>{shape}{geo}</area></info></alert>"
        ).encode()

    @staticmethod
    def key_of(raw: bytes) -> str:
        text = raw.decode()

        def tag(name: str) -> str:
            return text.split(f"<{name}>", 1)[1].split(f"</{name}>", 1)[0]

        return f"{tag('sender')},{tag('identifier')},{tag('sent')}"


@pytest.fixture
def cap() -> CapFactory:
    return CapFactory()


# --------------------------------------------------------------------------- configuration


def daemon_toml(
    tmp: Path,
    broker_url: str,
    *,
    sinks: str | None = None,
    routes: str | None = None,
    extra: str = "",
    http_port: int = 0,
    token: str = "test-token-0123456789abcdef",
    sink_url: str | None = None,
) -> Path:
    """A configuration file for a daemon on ``broker_url`` with two MQTT sinks."""
    (tmp / "token").write_text(token + "\n", encoding="utf-8")
    sink_broker = f'url = "{sink_url}"\n' if sink_url else ""
    sinks = sinks or (
        '[[sink]]\nname = "out-cap"\ntype = "mqtt"\ntopic = "out/cap/{country}/{key}"\n'
        f"retry_initial = 0.05\nretry_max = 0.5\n{sink_broker}\n"
        '[[sink]]\nname = "out-json"\ntype = "mqtt"\nformat = "json"\n'
        f'topic = "out/json/{{status}}/{{key}}"\nretry_initial = 0.05\nretry_max = 0.5\n'
        f"{sink_broker}\n"
    )
    routes = routes or (
        '[[route]]\nname = "all-cap"\nsinks = ["out-cap"]\n\n'
        '[[route]]\nname = "severe-json"\nsinks = ["out-json"]\n'
        '[route.match]\nseverity = ["Extreme", "Severe"]\n'
    )
    text = (
        f'[gateway]\nname = "test"\ndata_dir = "{tmp}"\ndrain_timeout = 5\n'
        "housekeeping_interval = 0.2\n\n"
        f'[mqtt]\nbroker = "{broker_url}"\nclient_id = "bl-{uuid.uuid4().hex[:8]}"\n'
        'prefix = "borderlink"\nvalidation = "reject"\n\n'
        f'[http]\nhost = "127.0.0.1"\nport = {http_port}\ntoken_file = "token"\n\n'
        f'[ledger]\npath = "{tmp / "ledger.sqlite3"}"\n\n'
        f"{sinks}\n{routes}\n{extra}\n"
    )
    path = tmp / "borderlink.toml"
    path.write_text(text, encoding="utf-8")
    return path


def load(path: Path) -> Config:
    return parse_config(tomllib.loads(path.read_text(encoding="utf-8")), path=path)


@contextlib.asynccontextmanager
async def running_daemon(config: Config, *, wait_input: bool = True) -> AsyncIterator[Daemon]:
    """Run a daemon in this event loop; wait until its MQTT input is subscribed."""
    daemon = Daemon(config, backoff=Backoff(initial=0.05, maximum=0.5))
    task = asyncio.create_task(daemon.run())
    await asyncio.wait_for(daemon.started.wait(), 10)
    source = daemon.sources.get("mqtt")
    if source is not None and wait_input:
        waiter = asyncio.ensure_future(source.subscribed.wait())  # type: ignore[attr-defined]
        done, _ = await asyncio.wait({waiter, task}, timeout=10, return_when="FIRST_COMPLETED")
        if task in done:
            task.result()
        assert waiter in done, "the MQTT input did not subscribe"
    try:
        yield daemon
    finally:
        daemon.request_stop()
        await asyncio.wait_for(task, 15)


async def console_login(http: aiohttp.ClientSession, base: str, name: str, password: str) -> int:
    """Sign in through the console's form at ``base`` as a browser does (its form token, its
    cookies in ``http``); the answer's HTTP status (302 signed in, 401 refused, 429 locked)."""
    async with http.get(f"{base}/login") as resp:
        page = await resp.text()
    token = page.split('name="form_token" value="', 1)[1].split('"', 1)[0]
    async with http.post(
        f"{base}/login",
        data={"name": name, "password": password, "form_token": token},
        allow_redirects=False,
    ) as resp:
        await resp.read()
        return resp.status


# ----------------------------------------------------------------------------- subscribers


@dataclass
class Received:
    topic: str
    payload: bytes
    delivery_id: str | None
    alert_key: str | None
    retain: bool


@dataclass
class Collector:
    """Everything a subscriber received, with waits on counts."""

    messages: list[Received] = field(default_factory=list)
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    def add(self, message: Received) -> None:
        self.messages.append(message)
        self.changed.set()

    def on(self, prefix: str) -> list[Received]:
        return [m for m in self.messages if m.topic.startswith(prefix)]

    def keys(self, prefix: str) -> dict[str, list[Received]]:
        out: dict[str, list[Received]] = defaultdict(list)
        for m in self.on(prefix):
            out[m.alert_key or ""].append(m)
        return out

    async def wait_for(self, predicate: Callable[[], bool], within: float = 20.0) -> None:
        deadline = time.monotonic() + within
        while not predicate():
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise AssertionError("timed out waiting for MQTT messages")
            self.changed.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.changed.wait(), min(remaining, 0.5))


def _props(message: aiomqtt.Message) -> dict[str, str]:
    props: Properties | None = message.properties
    pairs = getattr(props, "UserProperty", None) or []
    return dict(pairs)


@contextlib.asynccontextmanager
async def subscriber(
    broker: Broker,
    topics: list[str],
    *,
    client_id: str | None = None,
    persistent: bool = False,
    v5: bool = True,
) -> AsyncIterator[Collector]:
    """An MQTT subscriber (5 unless ``v5=False``) collecting every message on ``topics``."""
    collector = Collector()
    kwargs: dict[str, Any] = {}
    if persistent:
        props = Properties(packetType=1)  # type: ignore[no-untyped-call]
        props.SessionExpiryInterval = 3600
        kwargs = {"clean_start": False, "properties": props}
    ready = asyncio.Event()

    async def run() -> None:
        while True:
            try:
                async with aiomqtt.Client(
                    broker.host,
                    broker.port,
                    identifier=client_id or f"sub-{uuid.uuid4().hex[:8]}",
                    protocol=aiomqtt.ProtocolVersion.V5 if v5 else aiomqtt.ProtocolVersion.V311,
                    **kwargs,
                ) as client:
                    for topic in topics:
                        await client.subscribe(topic, qos=1)
                    ready.set()
                    async for message in client.messages:
                        props = _props(message)
                        payload = message.payload
                        assert isinstance(payload, bytes)
                        collector.add(
                            Received(
                                str(message.topic),
                                payload,
                                props.get("borderlink-delivery-id"),
                                props.get("borderlink-alert-key"),
                                message.retain,
                            )
                        )
            except aiomqtt.MqttError:
                await asyncio.sleep(0.1)

    task = asyncio.create_task(run())
    try:
        await asyncio.wait_for(ready.wait(), 10)
        yield collector
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def publish_all(
    broker: Broker, payloads: list[bytes], topic: str = "borderlink/in/cap"
) -> None:
    """Publish each payload with QoS 1 (waits for every PUBACK)."""
    async with aiomqtt.Client(
        broker.host, broker.port, identifier=f"pub-{uuid.uuid4().hex[:8]}"
    ) as client:
        for payload in payloads:
            await client.publish(topic, payload, qos=1)


async def poll_until(
    check: Callable[[], Awaitable[bool]], within: float = 20.0, step: float = 0.05
) -> None:
    """Check a condition that has no event to await (ledger state) until it holds."""
    for _ in range(int(within / step)):
        if await check():
            return
        await asyncio.sleep(step)
    raise AssertionError("condition not reached in time")


# ---------------------------------------------------------------------------- TCP proxy


class Proxy:
    """A loopback TCP forwarder that can be opened and cut, to take a link down."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def cut(self) -> None:
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in list(self._writers):
            writer.close()
        self._writers.clear()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        self._writers -= {writer, up_writer}


# ---------------------------------------------------------------------- persistent broker


@contextlib.contextmanager
def persistent_mosquitto() -> Iterator[Broker]:
    """Mosquitto with persistence on: sessions and queued messages survive a restart."""
    binary = require_tool("mosquitto")
    port = free_port()
    with tempfile.TemporaryDirectory(prefix="mosq-p-") as tmp:
        # Mosquitto started as root drops to the "mosquitto" user: let it write its store.
        Path(tmp).chmod(0o777)
        config = Path(tmp) / "mosquitto.conf"
        config.write_text(
            f"listener {port} 127.0.0.1\nallow_anonymous true\npersistence true\n"
            f"persistence_location {tmp}/\nautosave_interval 1\n"
            "max_queued_messages 100000\nmax_inflight_messages 100\n",
            encoding="utf-8",
        )

        def spawn() -> subprocess.Popen[bytes]:
            return subprocess.Popen(
                [binary, "-c", str(config)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
            )

        broker = Broker("127.0.0.1", port, spawn(), config)
        try:
            wait_for_port("127.0.0.1", port)
            yield broker
        finally:
            broker.stop()


# ------------------------------------------------------------------------- subprocesses


def spawn_daemon(config: Path, log: Path) -> subprocess.Popen[bytes]:
    """``python -m gateway run CONFIG`` as a child process (JSON logs to ``log``)."""
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    with log.open("ab") as handle:
        return subprocess.Popen(
            [sys.executable, "-m", "gateway", "--log-json", "run", str(config)],
            stdout=handle,
            stderr=handle,
            cwd=str(ROOT),
            env=env,
        )


def summary_of(message: Received) -> dict[str, Any]:
    body: dict[str, Any] = json.loads(message.payload)
    return body
