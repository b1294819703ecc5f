"""IPAWS-OPEN and api.weather.gov simulators: HTTP feed servers with fault controls.

``borderlink sim ipaws --port P`` serves ``/IPAWSOPEN_EAS_SERVICE/rest/<feed>/recent/<ts>``
(feeds ``eas``, ``nwem``, ``PublicWEA``, ``public``, ``public_non_eas``) with the alerts
"posted" after the timestamp, wrapped in the ``ns1:alerts`` envelope. ``borderlink sim nws
--port P`` serves ``/alerts/active?area=XX`` (GeoJSON, with ETag and Last-Modified, answering
conditional requests with 304) and ``/alerts/{id}`` (CAP XML for ``Accept:
application/cap+xml``); like the real API it refuses requests without a User-Agent.

Both take the bundled alerts (made live: sent now, original duration) or ``--alerts DIR``,
post a new one every ``--interval`` seconds, and obey ``POST /control/<action>``:
``fail?count=N&status=503[&retry_after=S]``, ``slow?seconds=S``, ``oversize?count=N&bytes=B``,
``garbage?count=N``, ``publish`` (body = CAP), ``reset``; ``GET /control/status`` lists the
requests received. Tests drive the same controls through the Python API.

Feed membership in the IPAWS simulator follows the alert's parameters: ``BLOCKCHANNEL``
keeps an alert out of the ``eas``/``nwem``/``PublicWEA`` feeds, ``PublicWEA`` carries alerts
with WEA text (``CMAMtext``), ``public_non_eas`` those without ``EAS-ORG``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email.utils import format_datetime, parsedate_to_datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Self

import structlog
from aiohttp import web

from cap_schemas.model import Alert
from cap_schemas.parse import parse_alert
from gateway.adapter import Clock, SystemClock
from gateway.commands import Subparsers
from hardware.command import add_kind, run_until_stopped
from hardware.feed_alerts import load_alerts, make_live

log = structlog.get_logger(__name__)

IPAWS_BASE_PATH = "/IPAWSOPEN_EAS_SERVICE/rest"
IPAWS_FEEDS = ("eas", "nwem", "PublicWEA", "public", "public_non_eas")
_DECLARATION = re.compile(rb"^\s*<\?xml[^>]*\?>\s*")
_ENCODING = re.compile(rb"""encoding\s*=\s*["']([A-Za-z0-9._\-]+)["']""")


@dataclass(frozen=True, slots=True)
class RequestRecord:
    """One request the simulator answered: when (on its clock), what, and how."""

    at: float
    path: str
    status: int
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Faults:
    """Fault controls shared by both simulators; counts go down as faults are served."""

    fail_count: int = 0
    fail_status: int = 503
    retry_after: float | None = None
    delay: float = 0.0
    oversize_count: int = 0
    oversize_bytes: int = 64 * 1024 * 1024
    garbage_count: int = 0

    def reset(self) -> None:
        self.fail_count = self.oversize_count = self.garbage_count = 0
        self.delay = 0.0
        self.retry_after = None


@dataclass(frozen=True, slots=True)
class _Posted:
    raw: bytes
    alert: Alert
    posted_at: datetime


class _FeedServer(ABC):
    """What the two simulators share: the HTTP server, the clock, faults, control, replay."""

    kind = ""

    def __init__(
        self,
        alerts: Sequence[bytes] = (),
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        clock: Clock | None = None,
        interval: float | None = None,
        live: bool = True,
    ) -> None:
        self.host = host
        self._port_wanted = port
        self.port = 0
        self.clock: Clock = clock or SystemClock()
        self.faults = Faults()
        self.requests: list[RequestRecord] = []
        self.posted: list[_Posted] = []
        self._pending = list(alerts)
        self.interval = interval
        self.live = live
        self._renamed: dict[tuple[str, str, str], tuple[str, str, str]] = {}
        self._runner: web.AppRunner | None = None
        self._task: asyncio.Task[None] | None = None
        self.changed_at = self.clock.now()

    @abstractmethod
    def routes(self, app: web.Application) -> None:
        """Add this feed's HTTP routes to the application."""

    async def __aenter__(self) -> Self:
        app = web.Application(middlewares=[self._faults_middleware])
        app.router.add_get("/control/status", self._http_status)
        app.router.add_post("/control/{action}", self._http_control)
        self.routes(app)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self._port_wanted)
        await site.start()
        server = site._server
        assert isinstance(server, asyncio.Server)
        self.port = server.sockets[0].getsockname()[1]
        if self.interval is None:
            for raw in self._pending:
                self.post(raw)
            self._pending = []
        else:
            self._task = asyncio.create_task(self._replay())
        log.info("feed_simulator_started", kind=self.kind, port=self.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._runner is not None:
            await self._runner.cleanup()

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def post(self, raw: bytes, *, live: bool | None = None) -> Alert:
        """Make an alert available from now on."""
        if self.live if live is None else live:
            raw = make_live(raw, now=self.clock.now(), renamed=self._renamed).raw
        alert = parse_alert(raw)
        self.posted.append(_Posted(raw, alert, self.clock.now()))
        self.changed_at = self.clock.now()
        return alert

    async def _replay(self) -> None:
        assert self.interval is not None
        for raw in self._pending:
            self.post(raw)
            await asyncio.sleep(self.interval)

    def requests_to(self, prefix: str) -> list[RequestRecord]:
        return [r for r in self.requests if r.path.startswith(prefix)]

    @web.middleware
    async def _faults_middleware(self, request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path.startswith("/control/"):
            response: web.StreamResponse = await handler(request)
            return response
        at = self.clock.monotonic()
        path = request.path_qs
        headers = dict(request.headers)
        if self.faults.delay:
            await asyncio.sleep(self.faults.delay)
        if self.faults.fail_count:
            self.faults.fail_count -= 1
            extra = {}
            if self.faults.retry_after is not None:
                extra["Retry-After"] = f"{self.faults.retry_after:g}"
            self.requests.append(RequestRecord(at, path, self.faults.fail_status, headers))
            return web.Response(
                status=self.faults.fail_status, text="simulated failure", headers=extra
            )
        if self.faults.oversize_count:
            self.faults.oversize_count -= 1
            self.requests.append(RequestRecord(at, path, 200, headers))
            return await self._oversize(request)
        if self.faults.garbage_count:
            self.faults.garbage_count -= 1
            self.requests.append(RequestRecord(at, path, 200, headers))
            return web.Response(
                body=b"<html><body>502 Bad Gateway</body></html>", content_type="text/html"
            )
        try:
            response = await handler(request)
        except web.HTTPException as exc:
            self.requests.append(RequestRecord(at, path, exc.status, headers))
            raise
        self.requests.append(RequestRecord(at, path, response.status, headers))
        return response

    async def _oversize(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "application/xml"})
        await response.prepare(request)
        chunk = b"<!-- padding -->" * 4096
        sent = 0
        with contextlib.suppress(ConnectionError, RuntimeError):
            while sent < self.faults.oversize_bytes:
                await response.write(chunk)
                sent += len(chunk)
            await response.write_eof()
        return response

    async def _http_status(self, _request: web.Request) -> web.Response:
        return web.json_response(
            {
                "posted": len(self.posted),
                "requests": [
                    {"at": r.at, "path": r.path, "status": r.status} for r in self.requests[-100:]
                ],
                "faults": {
                    "fail": self.faults.fail_count,
                    "delay": self.faults.delay,
                    "oversize": self.faults.oversize_count,
                    "garbage": self.faults.garbage_count,
                },
            }
        )

    async def _http_control(self, request: web.Request) -> web.Response:
        action = request.match_info["action"]
        q = request.query
        if action == "fail":
            self.faults.fail_count = int(q.get("count", "1"))
            self.faults.fail_status = int(q.get("status", "503"))
            self.faults.retry_after = float(q["retry_after"]) if "retry_after" in q else None
        elif action == "slow":
            self.faults.delay = float(q.get("seconds", "5"))
        elif action == "oversize":
            self.faults.oversize_count = int(q.get("count", "1"))
            self.faults.oversize_bytes = int(q.get("bytes", str(64 * 1024 * 1024)))
        elif action == "garbage":
            self.faults.garbage_count = int(q.get("count", "1"))
        elif action == "publish":
            alert = self.post(await request.read())
            return web.json_response({"alert": str(alert.key)})
        elif action == "reset":
            self.faults.reset()
        else:
            raise web.HTTPNotFound(text=f"unknown action {action!r}")
        return web.json_response({"action": action})


# ---------------------------------------------------------------------------------------------
# IPAWS-OPEN


def _in_feed(alert: Alert, feed: str) -> bool:
    params = {p.name: p.value for info in alert.infos for p in info.parameters}
    blocked = {
        p.value.upper() for info in alert.infos for p in info.parameters if p.name == "BLOCKCHANNEL"
    }
    if feed == "public":
        return True
    if feed == "eas":
        return "EAS-ORG" in params and "EAS" not in blocked
    if feed == "nwem":
        categories = {c.value for info in alert.infos for c in info.categories}
        return "NWEM" not in blocked and categories != {"Met"}
    if feed == "PublicWEA":
        return "CMAMtext" in params and "CMAS" not in blocked
    if feed == "public_non_eas":
        return "EAS-ORG" not in params or "EAS" in blocked
    return False


def utf8_body(raw: bytes) -> bytes:
    """The alert without its declaration, in UTF-8 (the envelope is UTF-8)."""
    head = _DECLARATION.match(raw)
    encoding = "utf-8"
    if head is not None:
        found = _ENCODING.search(head.group(0))
        if found is not None:
            encoding = found.group(1).decode("ascii")
        raw = raw[head.end() :]
    return raw.decode(encoding).encode("utf-8")


def ipaws_envelope(documents: Sequence[bytes]) -> bytes:
    body = b"".join(utf8_body(d) for d in documents)
    return (
        b'<?xml version="1.0" encoding="UTF-8" standalone="yes"?>'
        b'<ns1:alerts xmlns:ns1="http://gov.fema.ipaws.services/feed">' + body + b"</ns1:alerts>"
    )


def _parse_timestamp(text: str) -> datetime:
    when = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return when


class IpawsSimulator(_FeedServer):
    """IPAWS-OPEN public feeds."""

    kind = "ipaws"

    def routes(self, app: web.Application) -> None:
        app.router.add_get(IPAWS_BASE_PATH + "/{feed}/recent/{timestamp}", self._recent)

    @property
    def rest_url(self) -> str:
        return self.base_url + IPAWS_BASE_PATH

    async def _recent(self, request: web.Request) -> web.Response:
        feed = request.match_info["feed"]
        if feed not in IPAWS_FEEDS:
            raise web.HTTPNotFound(text=f"no feed {feed!r}")
        try:
            since = _parse_timestamp(request.match_info["timestamp"])
        except ValueError:
            raise web.HTTPBadRequest(text="timestamp must be ISO-8601") from None
        docs = [p.raw for p in self.posted if p.posted_at > since and _in_feed(p.alert, feed)]
        return web.Response(body=ipaws_envelope(docs), content_type="application/xml")


# ---------------------------------------------------------------------------------------------
# api.weather.gov


def _areas_of(alert: Alert) -> set[str]:
    """Two-letter state/marine codes from UGC geocodes (``VTZ002`` -> ``VT``)."""
    return {
        value[:2]
        for info in alert.infos
        for area in info.areas
        for value in area.geocode_values("UGC")
        if len(value) >= 2
    }


def _feature(base: str, alert: Alert) -> dict[str, Any]:
    info = alert.infos[0] if alert.infos else None
    return {
        "id": f"{base}/alerts/{alert.identifier}",
        "type": "Feature",
        "geometry": None,
        "properties": {
            "@id": f"{base}/alerts/{alert.identifier}",
            "@type": "wx:Alert",
            "id": alert.identifier,
            "areaDesc": "; ".join(a.area_desc for a in info.areas) if info else "",
            "sent": alert.sent.isoformat(),
            "expires": alert.expires.isoformat() if alert.expires else None,
            "status": alert.status.value,
            "messageType": alert.msg_type.value,
            "severity": info.severity.value if info else "Unknown",
            "event": info.event if info else "",
            "sender": alert.sender,
            "senderName": info.sender_name if info else None,
            "headline": info.headline if info else None,
        },
    }


class NwsSimulator(_FeedServer):
    """api.weather.gov active alerts."""

    kind = "nws"

    def routes(self, app: web.Application) -> None:
        app.router.add_get("/alerts/active", self._active)
        app.router.add_get("/alerts/{identifier}", self._one)

    def _check_agent(self, request: web.Request) -> None:
        if not request.headers.get("User-Agent", "").strip():
            raise web.HTTPForbidden(text="A User-Agent identifying your application is required")

    async def _active(self, request: web.Request) -> web.Response:
        self._check_agent(request)
        wanted = {a.strip().upper() for a in request.query.get("area", "").split(",") if a.strip()}
        now = self.clock.now()
        chosen = [
            p.alert
            for p in self.posted
            if not p.alert.is_expired(now) and (not wanted or _areas_of(p.alert) & wanted)
        ]
        body = json.dumps(
            {
                "type": "FeatureCollection",
                "features": [_feature(self.base_url, a) for a in chosen],
                "title": "Current watches, warnings, and advisories",
                "updated": now.isoformat(),
            },
            sort_keys=True,
        ).encode()
        etag = (
            '"' + hashlib.sha256(body.replace(now.isoformat().encode(), b"")).hexdigest()[:16] + '"'
        )
        last_modified = format_datetime(self.changed_at.astimezone(UTC), usegmt=True)
        headers = {"ETag": etag, "Last-Modified": last_modified, "Cache-Control": "max-age=30"}
        if request.headers.get("If-None-Match") == etag:
            return web.Response(status=304, headers=headers)
        since = request.headers.get("If-Modified-Since")
        if since and "If-None-Match" not in request.headers:
            with contextlib.suppress(TypeError, ValueError):
                if self.changed_at.replace(microsecond=0) <= parsedate_to_datetime(since):
                    return web.Response(status=304, headers=headers)
        return web.Response(body=body, content_type="application/geo+json", headers=headers)

    async def _one(self, request: web.Request) -> web.Response:
        self._check_agent(request)
        identifier = request.match_info["identifier"]
        for p in self.posted:
            if p.alert.identifier == identifier:
                if "application/cap+xml" in request.headers.get("Accept", ""):
                    return web.Response(body=p.raw, content_type="application/cap+xml")
                return web.json_response(_feature(self.base_url, p.alert))
        raise web.HTTPNotFound(text=f"no alert {identifier!r}")


# ---------------------------------------------------------------------------------------------
# Daemon registry entries and the command line


def _from_options(cls: type[_FeedServer], kind: str, options: Mapping[str, Any]) -> _FeedServer:
    folder = options.get("alerts")
    interval = options.get("interval")
    return cls(
        load_alerts(kind, Path(folder) if folder else None),
        host=str(options.get("host", "127.0.0.1")),
        port=int(options.get("port", 18090 if kind == "ipaws" else 18091)),
        interval=float(interval) if interval is not None else None,
    )


def ipaws_simulator(options: Mapping[str, Any]) -> IpawsSimulator:
    """``[[simulator]] type = "ipaws"``: options ``port`` (18090), ``alerts``, ``interval``."""
    sim = _from_options(IpawsSimulator, "ipaws", options)
    assert isinstance(sim, IpawsSimulator)
    return sim


def nws_simulator(options: Mapping[str, Any]) -> NwsSimulator:
    """``[[simulator]] type = "nws"``: options ``port`` (18091), ``alerts``, ``interval``."""
    sim = _from_options(NwsSimulator, "nws", options)
    assert isinstance(sim, NwsSimulator)
    return sim


async def _serve(args: argparse.Namespace) -> None:
    cls: type[_FeedServer] = IpawsSimulator if args.sim_kind == "ipaws" else NwsSimulator
    sim = cls(
        load_alerts(args.sim_kind, Path(args.alerts) if args.alerts else None),
        host=args.host,
        port=args.port,
        interval=args.interval,
    )
    async with sim:
        url = sim.base_url + (IPAWS_BASE_PATH if args.sim_kind == "ipaws" else "")
        print(  # noqa: T201 - the command's own output for the technician
            json.dumps({"url": url, "control": sim.base_url + "/control/"}), flush=True
        )
        await asyncio.Event().wait()


def _run(args: argparse.Namespace) -> int:
    return run_until_stopped(args.sim_kind, lambda: _serve(args))


def register(kinds: Subparsers) -> None:
    for kind, port, what in (
        ("ipaws", 18090, "IPAWS-OPEN public feeds simulator (eas, nwem, PublicWEA, public...)"),
        ("nws", 18091, "api.weather.gov active-alerts simulator (GeoJSON index, CAP XML)"),
    ):
        parser = add_kind(
            kinds,
            kind,
            summary=what,
            description=what + ". Fault controls: POST /control/fail?count=N&status=S"
            "[&retry_after=S], /control/slow?seconds=S, /control/oversize?count=N&bytes=B, "
            "/control/garbage?count=N, /control/publish (body = CAP), /control/reset; "
            "GET /control/status.",
        )
        parser.add_argument("--alerts", metavar="DIR", help="folder of CAP files to serve")
        parser.add_argument("--port", type=int, default=port, help=f"HTTP port (default {port})")
        parser.add_argument("--host", default="127.0.0.1")
        parser.add_argument(
            "--interval",
            type=float,
            metavar="SECONDS",
            help="post one alert every SECONDS instead of all at start",
        )
        parser.set_defaults(handler=_run)
