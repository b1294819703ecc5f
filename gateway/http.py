"""The daemon's HTTP face (aiohttp): the alert API, holds, links, health, metrics, OpenAPI.

Reads are open to whoever can reach the listener (``127.0.0.1`` by default); everything that
writes (posting an alert, approving or rejecting a hold, pausing a link, any non-GET route a
component adds) needs ``Authorization: Bearer <token>`` with one of the configured tokens,
else 401.

What this module needs of the daemon is the :class:`Gateway` protocol below, so it imports
nothing above the ledger. Components of the daemon that provide ``http_routes() ->
list[aiohttp.web.RouteDef]`` get their routes added (writing ones behind the token); a
component that is a :class:`LinkControl` (the talkgroup link manager) gets
``/api/v1/links``.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable
from urllib.parse import unquote

import structlog
from aiohttp import web

from cap_schemas.model import AlertKey
from cap_schemas.validate import Finding
from gateway import __version__, approvals
from gateway.adapter import Clock, Received
from gateway.config import Config
from gateway.console.app import identify as identify_console_user
from gateway.console.incidents import Report, ReportError, current_incidents, point_feature, submit
from gateway.console.web import install as install_console
from gateway.ledger import (
    Admission,
    ApprovalRefusedError,
    EntryNotFoundError,
    EntryState,
    EntryStateError,
    Ledger,
    OutboxEntry,
    Provenance,
)
from gateway.metrics import INPUT_REJECTED, REGISTRY
from gateway.model import INCIDENT_PRIORITIES, INCIDENT_STATUSES
from gateway.partner_feeds import FEEDS_KEY
from gateway.partner_feeds import install as install_feeds
from gateway.translate.incident import incident_to_json, incident_to_text

log = structlog.get_logger(__name__)

__all__ = [
    "DAEMON_KEY",
    "OPENAPI",
    "Gateway",
    "LinkControl",
    "create_app",
    "link_routes",
    "require_token",
    "start_http",
]


class IngestOutcome(Protocol):
    """What became of one posted document (the daemon's ``Outcome``)."""

    @property
    def admission(self) -> Admission | None: ...
    @property
    def findings(self) -> Sequence[Finding]: ...
    @property
    def signature(self) -> str: ...
    @property
    def provenance(self) -> Provenance | None: ...
    @property
    def rejected(self) -> str: ...
    @property
    def message(self) -> str: ...


class Gateway(Protocol):
    """What the HTTP face uses of the running daemon."""

    config: Config
    tokens: tuple[str, ...]
    clock: Clock
    components: list[object]
    http_port: int | None

    @property
    def ledger(self) -> Ledger: ...

    async def ingest(self, item: Received) -> IngestOutcome: ...

    def wake(self, sink: str) -> None: ...

    def health(self) -> tuple[bool, list[dict[str, Any]]]: ...

    def sink_health(self) -> list[dict[str, Any]]: ...

    def cluster(self) -> dict[str, Any]: ...


@runtime_checkable
class LinkControl(Protocol):
    """Operator control of talkgroup links (the link manager)."""

    @property
    def links(self) -> Mapping[str, Any]: ...

    def status(self) -> list[dict[str, Any]]: ...

    def pause(self, name: str) -> None: ...

    def resume(self, name: str) -> None: ...


DAEMON_KEY: web.AppKey[Gateway] = web.AppKey("daemon")
COMPONENT = "http"

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def _json(body: Any, status: int = 200) -> web.Response:
    return web.json_response(body, status=status, dumps=lambda o: json.dumps(o, ensure_ascii=False))


def _error(status: int, error: str, message: str, **extra: Any) -> web.Response:
    return _json({"error": error, "message": message, **extra}, status=status)


WHO: web.RequestKey[str] = web.RequestKey("who", str)  # the name a write is recorded under
NAMED: web.RequestKey[bool] = web.RequestKey("named", bool)  # a person, not a machine token


def require_token(handler: Handler, action: str = "approve") -> Handler:
    """Refuse the request unless it is allowed to write: a configured machine token (recorded
    as ``operator``), or a console account that may ``action`` -- by its personal token, or
    by its session with the CSRF header (recorded under its name). 401 without either, 403
    for an account whose role may not."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        daemon = request.app[DAEMON_KEY]
        header = request.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        machine = scheme.lower() == "bearer" and any(
            hmac.compare_digest(token.strip().encode(), t.encode()) for t in daemon.tokens
        )
        if machine:
            request[WHO] = "operator"
            request[NAMED] = False
            return await handler(request)
        person = identify_console_user(request)
        if person is None:
            INPUT_REJECTED.inc(component=COMPONENT, reason="unauthorized")
            log.warning("http_unauthorized", path=request.path, remote=request.remote)
            return web.json_response(
                {"error": "unauthorized", "message": "a valid bearer token is required"},
                status=401,
                headers={"WWW-Authenticate": 'Bearer realm="borderlink"'},
            )
        if not person.can(action):
            INPUT_REJECTED.inc(component=COMPONENT, reason="forbidden")
            log.warning("http_forbidden", path=request.path, name=person.name, role=person.role)
            return _error(403, "forbidden", f"the role {person.role!r} may not do this")
        request[WHO] = person.name
        request[NAMED] = True
        return await handler(request)

    return wrapped


def _entry(entry: OutboxEntry) -> dict[str, Any]:
    return {
        "id": entry.id,
        "alert_key": str(entry.key),
        "sink": entry.sink,
        "route": entry.route,
        "state": entry.state.value,
        "reason": entry.reason,
        "priority": entry.priority,
        "attempts": entry.attempts,
        "content_type": entry.content_type,
        "parts": len(entry.parts),
        "enqueued_at": entry.enqueued_at.isoformat(),
        "next_attempt_at": entry.next_attempt_at.isoformat(),
        "expires": None if entry.expires is None else entry.expires.isoformat(),
        "updated_at": None if entry.updated_at is None else entry.updated_at.isoformat(),
        "delivery_id": entry.attributes.get("delivery_id"),
    }


def _key(request: web.Request) -> AlertKey:
    text = unquote(request.match_info["key"])
    try:
        return AlertKey.from_reference(text)
    except ValueError:
        INPUT_REJECTED.inc(component=COMPONENT, reason="bad_key")
        raise web.HTTPBadRequest(
            text=json.dumps(
                {"error": "bad_key", "message": "the key is sender,identifier,sent (URL-encoded)"}
            ),
            content_type="application/json",
        ) from None


# ---------------------------------------------------------------------------------- handlers


class ByteBudget:
    """Bytes of request bodies held at once: a request waits until its share is free, so
    twenty maximum-size posts at once cost what ``max_inflight_bytes`` allows, not twenty
    times the largest alert."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.free = total
        self._changed = asyncio.Condition()

    @contextlib.asynccontextmanager
    async def take(self, size: int) -> AsyncIterator[None]:
        size = max(1, min(size, self.total))
        async with self._changed:
            await self._changed.wait_for(lambda: self.free >= size)
            self.free -= size
        try:
            yield
        finally:
            async with self._changed:
                self.free += size
                self._changed.notify_all()


BUDGET_KEY: web.AppKey[ByteBudget] = web.AppKey("body_budget")


async def post_alert(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    limit = daemon.config.http.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        INPUT_REJECTED.inc(component=COMPONENT, reason="too_large")
        return _error(413, "too_large", f"the body exceeds {limit} bytes")
    async with request.app[BUDGET_KEY].take(request.content_length or limit):
        timeout = daemon.config.http.body_timeout
        try:
            raw = await asyncio.wait_for(request.read(), timeout)
        except web.HTTPRequestEntityTooLarge:
            INPUT_REJECTED.inc(component=COMPONENT, reason="too_large")
            return _error(413, "too_large", f"the body exceeds {limit} bytes")
        except TimeoutError:
            INPUT_REJECTED.inc(component=COMPONENT, reason="body_timeout")
            log.warning("http_body_timeout", path=request.path, remote=request.remote)
            return _error(408, "body_timeout", f"the body did not arrive within {timeout} s")
        if not raw:
            INPUT_REJECTED.inc(component=COMPONENT, reason="empty")
            return _error(400, "empty", "the body must be a CAP XML document")
        outcome = await daemon.ingest(Received(raw=raw, source="http", channel=request.path))
        del raw
    findings = [
        {"severity": f.severity, "rule": f.rule, "xpath": f.xpath, "message": f.message}
        for f in outcome.findings
    ]
    if outcome.admission is None:
        return _error(400, outcome.rejected, outcome.message, findings=findings)
    admission = outcome.admission
    deliveries = await _to_thread(daemon.ledger.deliveries, admission.key)
    return _json(
        {
            "key": str(admission.key),
            "decision": admission.decision.value,
            "reason": admission.reason,
            "superseded": [str(k) for k in admission.superseded],
            "identity": {"event": admission.event or str(admission.key), "rule": admission.rule},
            "signature": outcome.signature,
            "trust": None if outcome.provenance is None else outcome.provenance.summary(),
            "findings": findings,
            "deliveries": [_entry(e) for e in deliveries],
        },
        status=202,
    )


async def post_incident(request: web.Request) -> web.Response:
    """``POST /api/v1/incidents``: an incident report (the console form's fields as JSON)
    sent to its ``destinations`` (or every one available) through the intake."""
    daemon = request.app[DAEMON_KEY]
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    try:
        sent = await submit(daemon, Report.from_json(body), who=request[WHO])
    except ReportError as exc:
        exc.count()
        return _error(400, "bad_report", str(exc))
    admission = sent.admission
    deliveries = await _to_thread(daemon.ledger.deliveries, admission.key)
    return _json(
        {
            "key": str(admission.key),
            "incident_id": sent.incident.incident_id,
            "decision": admission.decision.value,
            "destinations": list(sent.destinations),
            "incident": json.loads(incident_to_json(sent.incident)),
            "radio_text": incident_to_text(sent.incident),
            "deliveries": [_entry(e) for e in deliveries],
        },
        status=202,
    )


async def list_incidents(request: web.Request) -> web.Response:
    """``GET /api/v1/incidents``: the current incidents (latest update of each) as GeoJSON
    features (``geometry`` null for one without a location)."""
    daemon = request.app[DAEMON_KEY]
    rows = await _to_thread(current_incidents, daemon.ledger, daemon.clock.now())
    features = [point_feature(row) for row in rows]
    return _json({"type": "FeatureCollection", "features": features})


async def _to_thread(func: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    return await asyncio.to_thread(func, *args, **kwargs)


async def list_alerts(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    active = request.query.get("active", "") in ("1", "true", "yes")
    try:
        limit = int(request.query.get("limit", "100"))
    except ValueError:
        limit = 0
    if not 1 <= limit <= 1000:
        INPUT_REJECTED.inc(component=COMPONENT, reason="bad_limit")
        return _error(400, "bad_limit", "limit must be an integer from 1 to 1000")
    if active:
        alerts = await _to_thread(daemon.ledger.active, daemon.clock.now())
        alerts = alerts[:limit]
    else:
        alerts = await _to_thread(daemon.ledger.alerts, limit=limit)
    return _json({"alerts": [a.summary() for a in alerts], "count": len(alerts)})


async def get_alert(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    key = _key(request)
    stored = await _to_thread(daemon.ledger.get, key)
    if stored is None:
        return _error(404, "not_found", f"no alert {key}")
    deliveries = await _to_thread(daemon.ledger.deliveries, key)
    journal = await _to_thread(daemon.ledger.journal, key, limit=200)
    body = stored.summary()
    body["raw_size"] = stored.raw_size
    body["raw_sha256"] = stored.raw_sha256
    body["deliveries"] = [_entry(e) for e in deliveries]
    body["journal"] = [
        {"at": j.at.isoformat(), "event": j.event, "detail": j.detail, "sink": j.sink}
        for j in journal
    ]
    copies = await _to_thread(daemon.ledger.copies, key)
    body["identity"]["copies"] = [
        {"key": str(c.key), "source": c.source, "decision": c.decision.value, "rule": c.event_rule}
        for c in copies
    ]
    return _json(body)


async def get_raw(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    key = _key(request)
    stored = await _to_thread(daemon.ledger.get, key)
    if stored is None:
        return _error(404, "not_found", f"no alert {key}")
    return web.Response(body=stored.raw, content_type="application/cap+xml")


async def list_holds(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    holds = await _to_thread(daemon.ledger.holds)
    return _json({"holds": [_entry(e) for e in holds], "count": len(holds)})


def _entry_id(request: web.Request) -> int:
    try:
        return int(request.match_info["id"])
    except ValueError:
        INPUT_REJECTED.inc(component=COMPONENT, reason="bad_id")
        raise web.HTTPBadRequest(
            text='{"error":"bad_id","message":"hold ids are integers"}',
            content_type="application/json",
        ) from None


async def _json_body(request: web.Request) -> dict[str, Any] | web.Response:
    """An optional JSON object body (``{}`` when there is none), or the 400 to answer."""
    if not request.can_read_body:
        return {}
    try:
        body = await request.json()
    except (json.JSONDecodeError, UnicodeDecodeError):
        body = None
    if not isinstance(body, dict):
        INPUT_REJECTED.inc(component=COMPONENT, reason="bad_json")
        return _error(400, "bad_json", "the body must be a JSON object")
    return body


async def act_on_alert(request: web.Request) -> web.Response:
    """``POST /api/v1/alerts/{key}/approve`` or ``/reject``: every held delivery of one alert
    at once, or those of ``"sinks"``; ``"comment"`` (approve) or ``"reason"`` (reject)."""
    daemon = request.app[DAEMON_KEY]
    key = _key(request)
    action = request.match_info["action"]
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    sinks = body.get("sinks")
    if sinks is not None and not (
        isinstance(sinks, list) and all(isinstance(x, str) for x in sinks)
    ):
        return _error(400, "bad_sinks", '"sinks" is a list of sink names')
    deliveries = await _to_thread(daemon.ledger.deliveries, key)
    held = [
        e for e in deliveries
        if e.state is EntryState.HELD and (sinks is None or e.sink in sinks)
    ]  # fmt: skip
    if not held:
        return _error(
            409, "conflict", f"no held delivery of {key}" + (f" to {sinks}" if sinks else "")
        )
    who = request[WHO]
    if action == "approve":
        refused = _two_person_refusal(request, held)
        if refused is not None:
            return refused
    changed = []
    for entry in held:
        try:
            if action == "approve":
                after = await _to_thread(
                    daemon.ledger.approve,
                    entry.id,
                    by=who,
                    comment=str(body.get("comment", ""))[:500],
                )
                daemon.wake(after.sink)
            else:
                reason = str(body.get("reason") or "no reason given")[:500]
                after = await _to_thread(daemon.ledger.reject, entry.id, reason, by=who)
        except (EntryNotFoundError, EntryStateError):
            continue  # settled meanwhile (another operator, another instance)
        changed.append(after)
        event = "hold_approved" if action == "approve" else "hold_rejected"
        log.info(event, entry=entry.id, alert=str(key), sink=entry.sink, by=who)
    return _json({"key": str(key), "changed": [_entry(e) for e in changed]})


def _two_person_refusal(request: web.Request, entries: list[OutboxEntry]) -> web.Response | None:
    """The 403 when the two-person rule refuses this approver one of ``entries``."""
    why = approvals.first_refusal((e.reason for e in entries), request[WHO], named=request[NAMED])
    if not why:
        return None
    INPUT_REJECTED.inc(component=COMPONENT, reason="two_person")
    log.warning("http_approval_refused", path=request.path, who=request[WHO], reason=why)
    return _error(403, "two_person", why)


async def approve_hold(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    entry_id = _entry_id(request)
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    comment = str(body.get("comment", ""))[:500]
    found = await _to_thread(daemon.ledger.entry, entry_id)
    refused = _two_person_refusal(request, [found] if found is not None else [])
    if refused is not None:
        return refused
    try:
        entry = await _to_thread(daemon.ledger.approve, entry_id, by=request[WHO], comment=comment)
    except ApprovalRefusedError as exc:
        return _error(403, "two_person", str(exc))
    except EntryNotFoundError as exc:
        return _error(404, "not_found", str(exc))
    except EntryStateError as exc:
        return _error(409, "conflict", str(exc))
    log.info("hold_approved", entry=entry_id, alert=str(entry.key), sink=entry.sink)
    daemon.wake(entry.sink)
    return _json(_entry(entry))


async def reject_hold(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    entry_id = _entry_id(request)
    body = await _json_body(request)
    if isinstance(body, web.Response):
        return body
    reason = str(body.get("reason") or "no reason given")[:500]
    try:
        entry = await _to_thread(daemon.ledger.reject, entry_id, reason, by=request[WHO])
    except EntryNotFoundError as exc:
        return _error(404, "not_found", str(exc))
    except EntryStateError as exc:
        return _error(409, "conflict", str(exc))
    log.info("hold_rejected", entry=entry_id, alert=str(entry.key), reason=reason)
    return _json(_entry(entry))


async def healthz(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    ok, sources = daemon.health()
    cluster = await _to_thread(daemon.cluster)
    return _json(
        {
            "status": "ok" if ok else "degraded",
            "version": __version__,
            "sources": sources,
            **cluster,
        },
        status=200 if ok else 503,
    )


async def metrics(request: web.Request) -> web.Response:
    daemon = request.app[DAEMON_KEY]
    await _to_thread(daemon.ledger.outbox_counts)
    return web.Response(
        text=REGISTRY.render(),
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


async def openapi(_request: web.Request) -> web.Response:
    return _json(OPENAPI)


def link_routes(control: LinkControl) -> list[web.RouteDef]:
    """``GET /api/v1/links``, ``POST /api/v1/links/{name}/pause`` and ``.../resume`` (the
    writes behind the bearer token)."""

    async def list_links(_request: web.Request) -> web.Response:
        return _json({"links": control.status()})

    async def change(request: web.Request) -> web.Response:
        name = request.match_info["name"]
        action = request.match_info["action"]
        if name not in control.links:
            return _error(404, "not_found", f"no link named {name!r}")
        if action == "pause":
            control.pause(name)
        elif action == "resume":
            control.resume(name)
        else:
            return _error(404, "not_found", f"unknown action {action!r}; allowed: pause, resume")
        return _json({"name": name, "paused": control.links[name].paused})

    return [
        web.get("/api/v1/links", list_links),
        web.post("/api/v1/links/{name}/{action}", require_token(change)),
    ]


def _guarded(route: web.RouteDef) -> web.RouteDef:
    """A component's route, behind the bearer token when it writes."""
    if route.method in ("GET", "HEAD", "OPTIONS"):
        return route
    return web.route(route.method, route.path, require_token(route.handler), **route.kwargs)


# ----------------------------------------------------------------------------------- OpenAPI

_KEY_PARAM = {
    "name": "key",
    "in": "path",
    "required": True,
    "description": "sender,identifier,sent of the alert, URL-encoded",
    "schema": {"type": "string"},
}
_ID_PARAM = {"name": "id", "in": "path", "required": True, "schema": {"type": "integer"}}
_ERROR = {
    "type": "object",
    "properties": {
        "error": {"type": "string"},
        "message": {"type": "string"},
        "findings": {"type": "array", "items": {"$ref": "#/components/schemas/Finding"}},
    },
}
_JSON_ERROR = {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}}}

OPENAPI: dict[str, Any] = {
    "openapi": "3.1.0",
    "info": {
        "title": "borderlink gateway API",
        "version": __version__,
        "description": "Submit CAP alerts, follow their deliveries, release held alerts.",
    },
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        "schemas": {
            "Error": _ERROR,
            "Finding": {
                "type": "object",
                "properties": {
                    "severity": {"enum": ["error", "warning", "info"]},
                    "rule": {"type": "string"},
                    "xpath": {"type": "string"},
                    "message": {"type": "string"},
                },
            },
            "Delivery": {
                "type": "object",
                "properties": {
                    "id": {"type": "integer"},
                    "alert_key": {"type": "string"},
                    "sink": {"type": "string"},
                    "route": {"type": "string"},
                    "state": {
                        "enum": ["pending", "held", "delivered", "superseded", "expired", "failed"]
                    },
                    "reason": {"type": "string"},
                    "priority": {"type": "integer"},
                    "attempts": {"type": "integer"},
                    "delivery_id": {"type": "string"},
                },
            },
            "Admission": {
                "type": "object",
                "properties": {
                    "key": {"type": "string"},
                    "decision": {
                        "enum": [
                            "new",
                            "duplicate",
                            "update",
                            "cancel",
                            "expired",
                            "held",
                            "stale",
                            "receipt",
                        ]
                    },
                    "reason": {"type": "string"},
                    "superseded": {"type": "array", "items": {"type": "string"}},
                    "signature": {"enum": ["valid", "unsigned"]},
                    "trust": {"$ref": "#/components/schemas/Trust"},
                    "findings": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Finding"},
                    },
                    "deliveries": {
                        "type": "array",
                        "items": {"$ref": "#/components/schemas/Delivery"},
                    },
                },
            },
            "Trust": {
                "type": "object",
                "description": "Where an alert came from and why it is believed",
                "properties": {
                    "level": {"enum": ["anonymous", "authenticated", "verified"]},
                    "source": {"type": "string"},
                    "door": {"enum": ["anonymous", "authenticated", "verified"]},
                    "signature": {"enum": ["valid", "unsigned"]},
                    "signer": {"type": "string"},
                    "approved_by": {"type": "string"},
                },
            },
            "AlertSummary": {"type": "object", "additionalProperties": True},
            "IncidentReport": {
                "type": "object",
                "additionalProperties": False,
                "required": ["incident_type", "description_en"],
                "properties": {
                    "incident_type": {"type": "string"},
                    "status": {"enum": list(INCIDENT_STATUSES)},
                    "priority": {"enum": list(INCIDENT_PRIORITIES)},
                    "description_en": {"type": "string"},
                    "description_fr": {"type": "string"},
                    "latitude": {"type": ["number", "string"]},
                    "longitude": {"type": ["number", "string"]},
                    "location": {"type": "string"},
                    "units": {"type": ["array", "string"], "items": {"type": "string"}},
                    "incident_id": {"type": "string"},
                    "created": {"type": "string", "format": "date-time"},
                    "destinations": {"type": "array", "items": {"type": "string"}},
                },
            },
        },
    },
    "paths": {
        "/api/v1/alerts": {
            "post": {
                "summary": "Submit one CAP alert",
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {"application/cap+xml": {}, "application/xml": {}},
                },
                "responses": {
                    "202": {
                        "description": "Admitted (the decision says whether it is routed)",
                        "content": {
                            "application/json": {
                                "schema": {"$ref": "#/components/schemas/Admission"}
                            }
                        },
                    },
                    "400": {"description": "Refused: not CAP, hostile, invalid", **_JSON_ERROR},
                    "401": {"description": "No or wrong bearer token", **_JSON_ERROR},
                    "413": {"description": "Body too large", **_JSON_ERROR},
                },
            },
            "get": {
                "summary": "Recent alerts, or the active ones",
                "parameters": [
                    {"name": "active", "in": "query", "schema": {"enum": ["0", "1"]}},
                    {"name": "limit", "in": "query", "schema": {"type": "integer"}},
                ],
                "responses": {"200": {"description": "Alert summaries"}},
            },
        },
        "/api/v1/incidents": {
            "post": {
                "summary": "Send an incident report to its destinations",
                "security": [{"bearer": []}],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {"$ref": "#/components/schemas/IncidentReport"}
                        }
                    },
                },
                "responses": {
                    "202": {"description": "Admitted and routed to the destinations"},
                    "400": {"description": "A field that cannot make a report", **_JSON_ERROR},
                    "401": {"description": "No or wrong bearer token", **_JSON_ERROR},
                    "403": {"description": "A console account that may not write", **_JSON_ERROR},
                },
            },
            "get": {
                "summary": "The current incidents (latest update of each), as GeoJSON",
                "responses": {"200": {"description": "A FeatureCollection"}},
            },
        },
        "/api/v1/alerts/{key}": {
            "get": {
                "summary": "One alert with its deliveries and audit trail",
                "parameters": [_KEY_PARAM],
                "responses": {"200": {"description": "The alert"}, "404": _JSON_ERROR},
            }
        },
        "/api/v1/alerts/{key}/raw": {
            "get": {
                "summary": "The alert's original bytes",
                "parameters": [_KEY_PARAM],
                "responses": {
                    "200": {"description": "CAP XML", "content": {"application/cap+xml": {}}},
                    "404": _JSON_ERROR,
                },
            }
        },
        "/api/v1/holds": {
            "get": {"summary": "Deliveries waiting for an operator", "responses": {"200": {}}}
        },
        "/api/v1/holds/{id}/approve": {
            "post": {
                "summary": "Release a held delivery",
                "security": [{"bearer": []}],
                "parameters": [_ID_PARAM],
                "responses": {
                    "200": {},
                    "401": _JSON_ERROR,
                    "403": _JSON_ERROR,
                    "404": _JSON_ERROR,
                    "409": _JSON_ERROR,
                },
            }
        },
        "/api/v1/holds/{id}/reject": {
            "post": {
                "summary": "Refuse a held delivery (it fails with the reason)",
                "security": [{"bearer": []}],
                "parameters": [_ID_PARAM],
                "requestBody": {
                    "content": {
                        "application/json": {
                            "schema": {"properties": {"reason": {"type": "string"}}}
                        }
                    }
                },
                "responses": {
                    "200": {},
                    "401": _JSON_ERROR,
                    "404": _JSON_ERROR,
                    "409": _JSON_ERROR,
                },
            }
        },
        "/healthz": {
            "get": {
                "summary": "200 when every required source is alive, 503 otherwise",
                "responses": {"200": {}, "503": {}},
            }
        },
        "/metrics": {"get": {"summary": "Prometheus text exposition", "responses": {"200": {}}}},
        "/api/v1/openapi.json": {"get": {"summary": "This document", "responses": {"200": {}}}},
    },
}


# -------------------------------------------------------------------------------------- app


_ERROR_CODES = {
    404: "not_found",
    405: "method_not_allowed",
    413: "too_large",
    400: "bad_request",
}


@web.middleware
async def _errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Every error is JSON (``{"error", "message"}``), as the API documents, also for paths
    and methods that do not exist."""
    try:
        return await handler(request)
    except web.HTTPException as exc:
        if exc.status == 413:
            INPUT_REJECTED.inc(component=COMPONENT, reason="too_large")
        if exc.status < 400 or exc.content_type == "application/json":
            raise
        message = exc.reason
        if exc.text and exc.text != f"{exc.status}: {exc.reason}":
            message = exc.text  # what the handler said (the console's refusals say why)
        no_feeds = request.path.startswith("/feeds/") and FEEDS_KEY not in request.app
        if exc.status == 404 and no_feeds:
            message = (
                f"no such path {request.path}: the partner feeds are served only when the "
                "configuration names a partner, and it has no [[partner]]"
            )
        elif exc.status == 404:
            message = (
                f"no such path {request.path}; the API is under /api/v1 (see /api/v1/openapi.json)"
            )
        elif exc.status == 405:
            message = f"{request.method} is not allowed on {request.path}"
        return _error(exc.status, _ERROR_CODES.get(exc.status, "error"), message)


def create_app(daemon: Gateway) -> web.Application:
    """The aiohttp application of ``daemon`` (with every component's extra routes)."""
    app = web.Application(client_max_size=daemon.config.http.max_body_bytes, middlewares=[_errors])
    app[DAEMON_KEY] = daemon
    app[BUDGET_KEY] = ByteBudget(daemon.config.http.max_inflight_bytes)
    app.add_routes(
        [
            web.post("/api/v1/alerts", require_token(post_alert)),
            web.get("/api/v1/alerts", list_alerts),
            web.get("/api/v1/alerts/{key}/raw", get_raw),
            web.get("/api/v1/alerts/{key}", get_alert),
            web.get("/api/v1/holds", list_holds),
            web.post("/api/v1/incidents", require_token(post_incident)),
            web.get("/api/v1/incidents", list_incidents),
            web.post("/api/v1/alerts/{key}/{action:approve|reject}", require_token(act_on_alert)),
            web.post("/api/v1/holds/{id}/approve", require_token(approve_hold)),
            web.post("/api/v1/holds/{id}/reject", require_token(reject_hold)),
            web.get("/healthz", healthz),
            web.get("/metrics", metrics),
            web.get("/api/v1/openapi.json", openapi),
        ]
    )
    if daemon.config.console.enabled:
        install_console(app, daemon)
    if daemon.config.partners:
        install_feeds(app, daemon)
    for component in daemon.components:
        if isinstance(component, LinkControl):
            app.add_routes(link_routes(component))
        routes = getattr(component, "http_routes", None)
        if routes is not None:
            app.add_routes([_guarded(r) for r in routes()])
    return app


def _limit_connections(runner: web.AppRunner, limit: int) -> None:
    """Close a connection beyond ``limit`` open at once as soon as it is accepted."""
    server = runner.server
    if server is None:
        return
    accept = server.connection_made

    def connection_made(handler: Any, transport: asyncio.Transport) -> None:
        accept(handler, transport)
        if len(server.connections) > limit:
            INPUT_REJECTED.inc(component=COMPONENT, reason="too_many_connections")
            log.warning("http_connection_refused", open=len(server.connections), limit=limit)
            transport.close()

    server.connection_made = connection_made  # type: ignore[method-assign]


async def start_http(daemon: Gateway) -> web.AppRunner:
    """Serve the API on ``[http] host:port``; sets ``daemon.http_port`` (useful with port 0)."""
    cfg = daemon.config.http
    # keepalive_timeout also runs from the connection's start until its first request is
    # complete: a client that trickles its headers is closed after header_timeout.
    runner = web.AppRunner(
        create_app(daemon),
        access_log=None,
        keepalive_timeout=cfg.header_timeout,
        # Larger socket reads than aiohttp's 64 KiB: multi-megabyte alerts cost the event loop
        # fewer callbacks (measured: /healthz p99 under load 12 ms, not ~80 ms).
        read_bufsize=2**18,
    )
    await runner.setup()
    _limit_connections(runner, cfg.max_connections)
    site = web.TCPSite(runner, cfg.host, cfg.port)
    await site.start()
    # aiohttp exposes the bound port (needed with port = 0) only on the site's server.
    sockets = getattr(site._server, "sockets", None)
    port = int(sockets[0].getsockname()[1]) if sockets else cfg.port
    daemon.http_port = port
    log.info("http_listening", host=cfg.host, port=port)
    return runner
