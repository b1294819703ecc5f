"""Fixtures for the feed tests: a fake clock, alert documents, collectors of adapter output, and a
NAAD source running on the NAAD simulator."""

from __future__ import annotations

import asyncio
import ipaddress
import ssl
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from adapters.feeds.base import SeenCheck
from adapters.naad.adapter import NaadSource, from_context
from gateway.adapter import AdapterContext, Clock, Received, SystemClock
from gateway.metrics import INPUT_REJECTED
from hardware.sim_naad import NaadSimulator

ALERT_TEMPLATE = """<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
<identifier>{identifier}</identifier>
<sender>{sender}</sender>
<sent>{sent}</sent>
<status>Actual</status><msgType>Alert</msgType><scope>Public</scope>
<info><language>en-CA</language><category>Met</category><event>{event}</event>
<urgency>Immediate</urgency><severity>Severe</severity><certainty>Observed</certainty>
<headline>{event} warning</headline>
<area><areaDesc>Test area</areaDesc></area></info>
</alert>"""


def make_alert(
    identifier: str,
    *,
    sender: str = "cap-pac@canada.ca",
    sent: str = "2026-01-15T10:00:00-00:00",
    event: str = "tornado",
) -> bytes:
    return ALERT_TEMPLATE.format(
        identifier=identifier, sender=sender, sent=sent, event=event
    ).encode()


@pytest.fixture
def alert_factory() -> Callable[..., bytes]:
    return make_alert


class FakeClock:
    """Time that moves only when the test says so; ``sleep`` waits for :meth:`advance`."""

    def __init__(self, start: datetime | None = None) -> None:
        self._wall = start or datetime(2026, 1, 15, 12, 0, tzinfo=UTC)
        self._mono = 1000.0
        self._sleepers: list[tuple[float, asyncio.Future[None]]] = []
        self._changed = asyncio.Event()

    def now(self) -> datetime:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._sleepers.append((self._mono + seconds, future))
        self._changed.set()
        try:
            await future
        finally:
            self._sleepers = [(t, f) for t, f in self._sleepers if f is not future]

    @property
    def sleepers(self) -> int:
        return sum(1 for _, f in self._sleepers if not f.done())

    async def wait_for_sleepers(self, count: int, limit: float = 5.0) -> None:
        """Wait (in real time) until ``count`` tasks are asleep on this clock."""
        async with asyncio.timeout(limit):
            while self.sleepers < count:
                self._changed.clear()
                await self._changed.wait()

    async def advance(self, seconds: float) -> None:
        self._mono += seconds
        self._wall += timedelta(seconds=seconds)
        for deadline, future in list(self._sleepers):
            if deadline <= self._mono and not future.done():
                future.set_result(None)
        for _ in range(5):
            await asyncio.sleep(0)


@pytest.fixture
def fake_clock() -> FakeClock:
    return FakeClock()


class Collector:
    """Reads an adapter's ``messages()`` in the background; tests await what they expect."""

    def __init__(self, adapter: Any) -> None:
        self.items: list[Received] = []
        self._adapter = adapter
        self._arrived = asyncio.Event()
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async for item in self._adapter.messages():
            self.items.append(item)
            self._arrived.set()

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def wait_until(
        self, predicate: Callable[[list[Received]], bool], limit: float = 10.0
    ) -> None:
        async with asyncio.timeout(limit):
            while not predicate(self.items):
                self._arrived.clear()
                await self._arrived.wait()

    async def wait_count(self, count: int, limit: float = 10.0) -> None:
        await self.wait_until(lambda items: len(items) >= count, limit)


@asynccontextmanager
async def collecting(adapter: Any) -> AsyncIterator[Collector]:
    async with adapter:
        collector = Collector(adapter)
        collector.start()
        try:
            yield collector
        finally:
            await collector.stop()


def rejected(component: str, reason: str) -> float:
    return INPUT_REJECTED.value(component=component, reason=reason)


async def wait_for(predicate: Callable[[], bool], limit: float = 10.0) -> None:
    """Poll a condition on real time (for state that has no event to await)."""
    async with asyncio.timeout(limit):
        while not predicate():  # noqa: ASYNC110 - polls state that no event announces
            await asyncio.sleep(0.01)


def source_context(
    name: str,
    options: dict[str, object],
    *,
    clock: Clock | None = None,
    seen: SeenCheck | None = None,
) -> AdapterContext:
    """What the daemon hands a source's factory; without ``seen``, a ledger that has seen
    nothing."""
    ctx = AdapterContext(name=name, options=options, clock=clock or SystemClock())
    return ctx if seen is None else replace(ctx, seen=seen)


def naad_source(
    sim: NaadSimulator,
    *,
    clock: Clock | None = None,
    seen: SeenCheck | None = None,
    **options: object,
) -> NaadSource:
    """A source named ``naad-test`` on every stream and archive mirror of ``sim``, built by the
    registry factory, with reconnects and archive retries quick enough for real-time tests."""
    opts: dict[str, object] = {
        "streams": sim.stream_urls(),
        "archive_templates": sim.archive_templates(),
        "reconnect_initial": 0.05,
        "reconnect_max": 0.2,
        "archive_retry_delay": 0.01,
        **options,
    }
    return from_context(source_context("naad-test", opts, clock=clock, seen=seen))


class NaadRun(NamedTuple):
    """A NAAD simulator, a source reading it, and what the source has yielded so far."""

    sim: NaadSimulator
    source: NaadSource
    got: Collector


@asynccontextmanager
async def naad_run(
    streams: int = 1,
    *,
    live: bool = False,
    tls: ssl.SSLContext | None = None,
    seed: int | None = None,
    connect: bool = True,
    clock: Clock | None = None,
    seen: SeenCheck | None = None,
    **options: object,
) -> AsyncIterator[NaadRun]:
    """Serve ``streams`` NAAD streams that send heartbeats only when the test says so, run
    :func:`naad_source` on them and collect its output; with ``connect``, wait until every
    stream is connected. ``live`` makes published alerts current (as the simulator's replay
    does); otherwise they go out byte for byte."""
    async with NaadSimulator(
        ports=[0] * streams, heartbeat_interval=None, live=live, tls=tls, seed=seed
    ) as sim:
        source = naad_source(sim, clock=clock, seen=seen, **options)
        async with collecting(source) as got:
            if connect:
                await wait_for(lambda: sim.connections() == streams)
            yield NaadRun(sim, source, got)


@dataclass(frozen=True)
class TlsFiles:
    """A throw-away CA and a server certificate for 127.0.0.1, as PEM files."""

    ca: Path
    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(self.cert, self.key)
        return context


@pytest.fixture(scope="session")
def tls_files(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    folder = tmp_path_factory.mktemp("tls")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "feeds test CA")])
    start = datetime(2020, 1, 1, tzinfo=UTC)
    end = datetime(2099, 1, 1, tzinfo=UTC)
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                key_cert_sign=True,
                crl_sign=True,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start)
        .not_valid_after(end)
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    files = TlsFiles(folder / "ca.pem", folder / "server.pem", folder / "server.key")
    files.ca.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    files.cert.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    files.key.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return files
