"""A NAAD System simulator: stream servers, heartbeats and the short-term archive, with faults.

``borderlink sim naad --alerts DIR --port P [--port P2] [--archive-port Q] [--heartbeat S]``
serves on 127.0.0.1:

* one or more *streams* (TCP, or TLS with ``--tls-cert``/``--tls-key``): CAP documents written
  back to back as the NAAD System does, each alert of DIR made live (sent now, same duration)
  every ``--interval`` seconds, and a ``NAADS-Heartbeat`` document every ``--heartbeat``
  seconds listing the last ten alerts;
* the *archive* over HTTP on ``--archive-port``, laid out like capcp1/capcp2
  (``/{date}/{sent}I{identifier}.xml``), also under ``/capcp1/...`` and ``/capcp2/...`` so a
  client's fallback from one mirror to the other can be exercised;
* a *control interface* on the archive port (``POST /control/<action>``, ``GET
  /control/status``) and the same actions as methods of :class:`NaadSimulator` for tests:
  drop connections, stall a stream (connection open, nothing sent — a half-open link), split
  writes into tiny pieces, inject garbage, withhold an alert from the streams so only the
  heartbeat and the archive can recover it, send oversize documents, stop and restart a stream,
  make an archive mirror fail.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import random
import ssl
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import structlog
from aiohttp import web

from adapters.naad.codec import archive_component
from cap_schemas.model import format_cap_datetime
from gateway.commands import Subparsers
from hardware.command import add_kind, run_until_stopped
from hardware.feed_alerts import load_alerts, make_live, triple_of

log = structlog.get_logger(__name__)

Triple = tuple[str, str, str]
MIRRORS = ("capcp1", "capcp2")


def heartbeat_document(
    now: datetime, references: Sequence[Triple], *, sender: str = "NAADS-Heartbeat"
) -> bytes:
    """A heartbeat as the NAAD System sends it: status System, no info, the last alerts."""
    sent = format_cap_datetime(now.astimezone(UTC))
    refs = " ".join(",".join(t) for t in references)
    return (
        "<?xml version='1.0' encoding='UTF-8' standalone='no'?>\n"
        '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
        f"<identifier>{uuid.uuid4()}</identifier>"
        f"<sender>{sender}</sender>"
        f"<sent>{sent}</sent>"
        "<status>System</status><msgType>Alert</msgType><scope>Public</scope>"
        "<note>NAADS heartbeat</note>"
        f"<references>{refs}</references>"
        "</alert>\n"
    ).encode()


def archive_path(triple: Triple) -> str:
    """``{date}/{sent}I{identifier}.xml`` for an alert, as the capcp archive lays it out."""
    _sender, identifier, sent = triple
    return f"{sent[:10]}/{archive_component(sent)}I{archive_component(identifier)}.xml"


@dataclass(eq=False)
class _Client:
    writer: asyncio.StreamWriter
    queue: asyncio.Queue[bytes] = field(default_factory=asyncio.Queue)
    stalled: bool = False
    task: asyncio.Task[None] | None = None


@dataclass(eq=False)
class _Stream:
    index: int
    port: int
    server: asyncio.Server | None = None
    clients: set[_Client] = field(default_factory=set)
    fragment: int | None = None
    fragment_delay: float = 0.0
    garbage: bool = False
    connections: int = 0


class NaadSimulator:
    """Streams + archive + control; an async context manager that serves while open."""

    def __init__(
        self,
        alerts: Sequence[bytes] = (),
        *,
        host: str = "127.0.0.1",
        ports: Sequence[int] = (0,),
        archive_port: int | None = 0,
        heartbeat_interval: float | None = 60.0,
        replay_interval: float | None = None,
        repeat: bool = False,
        withhold_every: int = 0,
        start_delay: float = 0.0,
        live: bool = True,
        tls: ssl.SSLContext | None = None,
        seed: int | None = None,
    ) -> None:
        self.host = host
        self.alerts = list(alerts)
        self.heartbeat_interval = heartbeat_interval
        self.replay_interval = replay_interval
        self.repeat = repeat
        self.withhold_every = withhold_every
        self.start_delay = start_delay
        self.live = live
        self._tls = tls
        self._random = random.Random(seed)
        self._streams = [_Stream(i, p) for i, p in enumerate(ports)]
        self._archive_port_wanted = archive_port
        self._archive: dict[str, bytes] = {}
        self._recent: deque[Triple] = deque(maxlen=10)
        self._renamed: dict[Triple, Triple] = {}
        self._runner: web.AppRunner | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self.archive_port: int | None = None
        #: mirror name ("capcp1", "capcp2" or "" for the bare layout) -> HTTP status to answer.
        self.archive_faults: dict[str, int] = {}
        #: mirror -> a body served (status 200) instead of the alert: an HTML page, a cut file.
        self.archive_bodies: dict[str, bytes] = {}
        self.archive_delay = 0.0
        self.archive_requests: list[str] = []
        self.published: list[Triple] = []
        self.withheld: list[Triple] = []
        self.heartbeats_sent = 0

    # -- lifecycle ----------------------------------------------------------------------------

    async def __aenter__(self) -> Self:
        for stream in self._streams:
            await self._listen(stream)
        if self._archive_port_wanted is not None:
            app = web.Application()
            app.router.add_get("/control/status", self._http_status)
            app.router.add_post("/control/{action}", self._http_control)
            app.router.add_get("/{mirror}/{date}/{name}", self._http_archive)
            app.router.add_get("/{date}/{name}", self._http_archive)
            self._runner = web.AppRunner(app, access_log=None)
            await self._runner.setup()
            site = web.TCPSite(self._runner, self.host, self._archive_port_wanted)
            await site.start()
            server = site._server
            assert isinstance(server, asyncio.Server)
            self.archive_port = server.sockets[0].getsockname()[1]
        if self.heartbeat_interval:
            self._tasks.append(asyncio.create_task(self._heartbeat_loop()))
        if self.replay_interval is not None and self.alerts:
            self._tasks.append(asyncio.create_task(self._replay_loop()))
        log.info("naad_simulator_started", streams=self.ports, archive_port=self.archive_port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for stream in self._streams:
            await self._close_stream(stream)
        if self._runner is not None:
            await self._runner.cleanup()
        log.info("naad_simulator_stopped")

    @property
    def ports(self) -> list[int]:
        return [s.port for s in self._streams]

    def stream_urls(self) -> list[str]:
        scheme = "tls" if self._tls else "tcp"
        return [f"{scheme}://{self.host}:{p}" for p in self.ports]

    def archive_templates(self) -> list[str]:
        """URL templates for a client: mirror capcp1 first, capcp2 second."""
        base = f"http://{self.host}:{self.archive_port}"
        return [f"{base}/{m}/{{date}}/{{sent}}I{{identifier}}.xml" for m in MIRRORS]

    def connections(self, stream: int | None = None) -> int:
        """Clients connected now (to one stream or to all)."""
        return sum(len(s.clients) for s in self._select(stream))

    def total_connections(self, stream: int) -> int:
        return self._streams[stream].connections

    # -- streams ------------------------------------------------------------------------------

    async def _listen(self, stream: _Stream) -> None:
        async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            await self._serve_client(stream, reader, writer)

        stream.server = await asyncio.start_server(
            handle, self.host, stream.port, ssl=self._tls, reuse_address=True
        )
        stream.port = stream.server.sockets[0].getsockname()[1]

    async def _serve_client(
        self, stream: _Stream, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        client = _Client(writer)
        stream.clients.add(client)
        stream.connections += 1
        client.task = asyncio.create_task(self._pump(stream, client))
        try:
            while await reader.read(4096):  # clients send nothing; wait for them to go
                pass
        except (OSError, ssl.SSLError):
            pass
        finally:
            stream.clients.discard(client)
            client.task.cancel()
            with contextlib.suppress(asyncio.CancelledError, OSError, ssl.SSLError):
                await client.task
            writer.transport.abort()

    async def _pump(self, stream: _Stream, client: _Client) -> None:
        writer = client.writer
        try:
            while True:
                data = await client.queue.get()
                size = stream.fragment
                if not size:
                    writer.write(data)
                    await writer.drain()
                else:
                    for i in range(0, len(data), size):
                        writer.write(data[i : i + size])
                        await writer.drain()
                        await asyncio.sleep(stream.fragment_delay)
                client.queue.task_done()
        except (OSError, ssl.SSLError):
            writer.transport.abort()

    def _select(self, stream: int | None) -> list[_Stream]:
        return self._streams if stream is None else [self._streams[stream]]

    def _garbage(self) -> bytes:
        size = self._random.randint(1, 200)
        noise = bytes(self._random.getrandbits(8) for _ in range(size))
        return noise.replace(b"<", b"(")

    def write(self, data: bytes, *, stream: int | None = None) -> None:
        """Queue raw bytes (a document, garbage, anything) for every live client."""
        for s in self._select(stream):
            for client in list(s.clients):
                if client.stalled:
                    continue
                if s.garbage:
                    client.queue.put_nowait(self._garbage())
                client.queue.put_nowait(data)

    async def flush(self) -> None:
        """Wait until every client's queue is written (stalled clients excepted)."""
        queues = [c.queue for s in self._streams for c in s.clients if not c.stalled]
        await asyncio.gather(*(q.join() for q in queues))

    async def publish(
        self,
        raw: bytes,
        *,
        withhold: bool = False,
        stream: int | None = None,
        live: bool | None = None,
    ) -> Triple:
        """Send an alert on the streams (unless withheld) and file it in the archive."""
        if self.live if live is None else live:
            raw = make_live(raw, now=datetime.now(UTC), renamed=self._renamed).raw
        triple = triple_of(raw)
        self._archive[archive_path(triple)] = raw
        self._recent.append(triple)
        self.published.append(triple)
        if withhold:
            self.withheld.append(triple)
            log.info("naad_simulator_withheld", alert=",".join(triple))
        else:
            self.write(raw, stream=stream)
        return triple

    def archived(self, triple: Triple) -> bytes:
        """The document the archive holds for an alert (KeyError when it holds none)."""
        return self._archive[archive_path(triple)]

    def send_heartbeat(self, *, stream: int | None = None) -> bytes:
        doc = heartbeat_document(datetime.now(UTC), list(self._recent))
        self.write(doc, stream=stream)
        self.heartbeats_sent += 1
        return doc

    def drop_connections(self, stream: int | None = None) -> int:
        """Abort every client connection (clients may reconnect)."""
        count = 0
        for s in self._select(stream):
            for client in list(s.clients):
                client.writer.transport.abort()
                count += 1
        return count

    def stall(self, stream: int | None = None) -> int:
        """Stop writing to the clients connected now, keeping their connections open."""
        count = 0
        for s in self._select(stream):
            for client in s.clients:
                client.stalled = True
                count += 1
        return count

    def set_fragment(
        self, size: int | None, *, delay: float = 0.0, stream: int | None = None
    ) -> None:
        """Split every write into pieces of ``size`` bytes (None: whole writes)."""
        for s in self._select(stream):
            s.fragment, s.fragment_delay = size, delay

    def set_garbage(self, on: bool, *, stream: int | None = None) -> None:
        """Put random garbage before every document."""
        for s in self._select(stream):
            s.garbage = on

    async def stop_stream(self, stream: int) -> None:
        """Close the listener and every connection: the stream is gone until restarted."""
        await self._close_stream(self._streams[stream])

    async def start_stream(self, stream: int) -> None:
        s = self._streams[stream]
        if s.server is None:
            await self._listen(s)

    async def _close_stream(self, stream: _Stream) -> None:
        if stream.server is not None:
            stream.server.close()
            for client in list(stream.clients):
                client.writer.transport.abort()
            with contextlib.suppress(Exception):
                await asyncio.wait_for(stream.server.wait_closed(), 2)
            stream.server = None

    async def _heartbeat_loop(self) -> None:
        assert self.heartbeat_interval
        while True:
            await asyncio.sleep(self.heartbeat_interval)
            self.send_heartbeat()

    async def _replay_loop(self) -> None:
        assert self.replay_interval is not None
        await asyncio.sleep(self.start_delay)  # let clients connect before the first alert
        cycle = 0
        count = 0
        # Renamed on every pass, a copy kept its hours of validity: the alerts in force grew by
        # one per alert and pass. A copy now expires once the next pass brought its successor.
        lifetime = (
            timedelta(seconds=self.replay_interval * (len(self.alerts) + 1))
            if self.repeat
            else None
        )
        while True:
            suffix = f"-r{cycle}" if cycle else ""
            for raw in self.alerts:
                count += 1
                withhold = bool(self.withhold_every) and count % self.withhold_every == 0
                doc = make_live(
                    raw,
                    now=datetime.now(UTC),
                    identifier_suffix=suffix,
                    renamed=self._renamed,
                    lifetime=lifetime,
                ).raw
                await self.publish(doc, withhold=withhold, live=False)
                await asyncio.sleep(self.replay_interval)
            if not self.repeat:
                return
            cycle += 1

    # -- HTTP: archive and control ------------------------------------------------------------

    async def _http_archive(self, request: web.Request) -> web.StreamResponse:
        mirror = request.match_info.get("mirror", "")
        self.archive_requests.append(request.path)
        if self.archive_delay:
            await asyncio.sleep(self.archive_delay)
        fault = self.archive_faults.get(mirror)
        if fault:
            return web.Response(status=fault, text="simulated failure")
        if mirror and mirror not in MIRRORS:
            raise web.HTTPNotFound
        if mirror in self.archive_bodies:
            return web.Response(body=self.archive_bodies[mirror], content_type="application/xml")
        body = self._archive.get(f"{request.match_info['date']}/{request.match_info['name']}")
        if body is None:
            raise web.HTTPNotFound
        return web.Response(body=body, content_type="application/xml")

    async def _http_status(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "streams": [
                    {
                        "port": s.port,
                        "up": s.server is not None,
                        "clients": len(s.clients),
                        "stalled": sum(c.stalled for c in s.clients),
                        "fragment": s.fragment,
                        "garbage": s.garbage,
                    }
                    for s in self._streams
                ],
                "published": len(self.published),
                # each as "sender,identifier,sent": what a client must have seen, by key
                "published_keys": [",".join(t) for t in self.published],
                "withheld": len(self.withheld),
                "heartbeats": self.heartbeats_sent,
                "archive_faults": self.archive_faults,
            }
        )

    async def _http_control(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        query = request.query
        stream = int(query["stream"]) if "stream" in query else None
        result: dict[str, Any] = {"action": action}
        if action == "drop":
            result["dropped"] = self.drop_connections(stream)
        elif action == "stall":
            result["stalled"] = self.stall(stream)
        elif action == "fragment":
            size = int(query.get("size", "0")) or None
            self.set_fragment(size, delay=float(query.get("delay", "0")), stream=stream)
        elif action == "garbage":
            body = await request.read()
            if body:
                self.write(body, stream=stream)
            else:
                self.set_garbage(query.get("on", "1") != "0", stream=stream)
        elif action == "publish":
            body = await request.read()
            triple = await self.publish(body, withhold=query.get("withhold") == "1", stream=stream)
            result["alert"] = ",".join(triple)
        elif action == "heartbeat":
            self.send_heartbeat(stream=stream)
        elif action == "stop":
            await self.stop_stream(stream or 0)
        elif action == "start":
            await self.start_stream(stream or 0)
        elif action == "archive-body":
            mirror = query.get("mirror", "capcp1")
            body = await request.read()
            if body:
                self.archive_bodies[mirror] = body
            else:
                self.archive_bodies.pop(mirror, None)
        elif action == "archive-fault":
            mirror = query.get("mirror", "capcp1")
            status = int(query.get("status", "0"))
            if status:
                self.archive_faults[mirror] = status
            else:
                self.archive_faults.pop(mirror, None)
        else:
            raise web.HTTPNotFound(text=f"unknown action {action!r}")
        return web.json_response(result)


def _tls_context(cert: str | None, key: str | None) -> ssl.SSLContext | None:
    if not cert:
        return None
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(cert, key)
    return context


def simulator(options: Mapping[str, Any]) -> NaadSimulator:
    """The daemon's ``[[simulator]] type = "naad"`` entry.

    Options: ``alerts`` (folder; default the bundled CAP-CP alerts), ``ports`` (list, default
    ``[18080, 18081]``), ``archive_port`` (default 18088), ``heartbeat`` (s, default 60),
    ``interval`` (s between alerts, default 20), ``repeat`` (default true), ``withhold_every``
    (withhold every Nth alert from the streams, default 0), ``start_delay`` (s before the first
    alert, default 3: the daemon's sources connect after its simulators start), ``host``.
    """
    folder = options.get("alerts")
    alerts = load_alerts("naad", Path(folder) if folder else None)
    return NaadSimulator(
        alerts,
        host=str(options.get("host", "127.0.0.1")),
        ports=[int(p) for p in options.get("ports", [18080, 18081])],
        archive_port=int(options.get("archive_port", 18088)),
        heartbeat_interval=float(options.get("heartbeat", 60.0)),
        replay_interval=float(options.get("interval", 20.0)),
        repeat=bool(options.get("repeat", True)),
        withhold_every=int(options.get("withhold_every", 0)),
        start_delay=float(options.get("start_delay", 3.0)),
    )


# The real NAAD streams listen on 8080 -- the daemon's HTTP port on the same machine.
DEFAULT_STREAM_PORT = 18080


async def _serve(args: argparse.Namespace) -> None:
    alerts = load_alerts("naad", Path(args.alerts) if args.alerts else None)
    sim = NaadSimulator(
        alerts,
        host=args.host,
        ports=args.port or [DEFAULT_STREAM_PORT],
        archive_port=args.archive_port,
        heartbeat_interval=args.heartbeat or None,
        replay_interval=args.interval,
        repeat=args.repeat,
        withhold_every=args.withhold_every,
        tls=_tls_context(args.tls_cert, args.tls_key),
    )
    async with sim:
        if args.fragment:
            sim.set_fragment(args.fragment)
        if args.garbage:
            sim.set_garbage(True)
        print(  # noqa: T201 - the command's own output for the technician
            json.dumps(
                {
                    "streams": sim.stream_urls(),
                    "archive": sim.archive_templates() if sim.archive_port else [],
                    "control": f"http://{args.host}:{sim.archive_port}/control/"
                    if sim.archive_port
                    else None,
                    "alerts": len(alerts),
                }
            ),
            flush=True,
        )
        await asyncio.Event().wait()


def _run(args: argparse.Namespace) -> int:
    return run_until_stopped("naad", lambda: _serve(args))


def register(kinds: Subparsers) -> None:
    parser = add_kind(
        kinds,
        "naad",
        summary="NAAD System simulator: CAP streams with heartbeats, the archive, fault controls",
        description=(
            "Serve NAAD-style CAP streams on 127.0.0.1 with heartbeats and an HTTP archive. "
            "Fault controls: POST http://HOST:ARCHIVE_PORT/control/ACTION with ACTION one of "
            "drop, stall, fragment?size=N, garbage (body = bytes to inject, or ?on=1 for "
            "garbage before every document), publish (body = CAP; ?withhold=1), heartbeat, "
            "stop?stream=I, start?stream=I, archive-fault?mirror=capcp1&status=503, "
            "archive-body?mirror=capcp1 (body served instead of the alert); "
            "GET /control/status."
        ),
    )
    parser.add_argument("--alerts", metavar="DIR", help="folder of CAP files to replay")
    parser.add_argument(
        "--port",
        type=int,
        action="append",
        metavar="P",
        help=f"stream port (repeat for several streams; default {DEFAULT_STREAM_PORT}: the real"
        " streams use 8080, which is also the gateway's own HTTP port)",
    )
    parser.add_argument(
        "--archive-port",
        type=int,
        metavar="Q",
        help="HTTP port for the archive and the control interface",
    )
    parser.add_argument(
        "--heartbeat",
        type=float,
        default=60.0,
        metavar="SECONDS",
        help="heartbeat period (0: none; default 60)",
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=10.0,
        metavar="SECONDS",
        help="time between replayed alerts (default 10)",
    )
    parser.add_argument(
        "--repeat", action="store_true", help="replay forever, renaming identifiers on each pass"
    )
    parser.add_argument(
        "--withhold-every",
        type=int,
        default=0,
        metavar="N",
        help="withhold every Nth alert from the streams (archive only)",
    )
    parser.add_argument("--fragment", type=int, metavar="N", help="write in pieces of N bytes")
    parser.add_argument("--garbage", action="store_true", help="garbage before every document")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--tls-cert", help="PEM certificate: serve the streams over TLS")
    parser.add_argument("--tls-key", help="PEM private key for --tls-cert")
    parser.set_defaults(handler=_run)
