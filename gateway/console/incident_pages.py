"""The console's incident pages: the report form, its live check, sending, and the map's points.

The form is for operators (a viewer gets ``403``, as for issuing an alert); every post carries
the session's CSRF token. What the pages compute lives in :mod:`gateway.console.incidents`.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote, unquote

from aiohttp import web

from cap_schemas.model import AlertKey
from gateway.console.app import (
    CONSOLE_KEY,
    SECURITY_HEADERS,
    Console,
    check_csrf,
    signed_in,
)
from gateway.console.geofiles import geo_urls
from gateway.console.incidents import (
    INCIDENT_TYPES,
    Destination,
    Report,
    ReportError,
    build_incident,
    current_incidents,
    destinations,
    incident_of,
    point_feature,
    report_of,
    submit,
)
from gateway.console.sessions import Session
from gateway.metrics import INPUT_REJECTED
from gateway.model import INCIDENT_PRIORITIES, INCIDENT_STATUSES

__all__ = ["incident_routes"]


def _operator(session: Session) -> None:
    if not session.can("approve"):
        INPUT_REJECTED.inc(component="console", reason="forbidden")
        raise web.HTTPForbidden(text=f"the role {session.role!r} may not send incident reports")


def _choices() -> dict[str, Any]:
    return {
        "types": INCIDENT_TYPES,
        "statuses": INCIDENT_STATUSES,
        "priorities": INCIDENT_PRIORITIES,
    }


def _checked(console: Console, report: Report) -> tuple[list[Destination], str]:
    """The destinations with the previews of the report, or none and why it cannot be sent."""
    now = console.now()
    try:
        incident = build_incident(report, agency=console.daemon.config.gateway.name, now=now)
    except ReportError as exc:
        return [], str(exc)
    return destinations(console.daemon.router, incident, now), ""


async def _form(
    request: web.Request, session: Session, report: Report, *, problem: str = "", status: int = 200
) -> web.Response:
    console = request.app[CONSOLE_KEY]

    available = destinations(console.daemon.router, None, console.now())
    chosen = set(report.destinations) if report.destinations is not None else None
    return await console.page(
        request, session, "incident_form.html", status=status, report=report,
        available=available, chosen=chosen, problem=problem, geo=geo_urls(), **_choices(),
    )  # fmt: skip


@signed_in
async def incident_form(request: web.Request, session: Session) -> web.StreamResponse:
    """The form: a new report, or an update of one we sent (``?of=KEY``, filled in)."""
    _operator(session)
    of = request.query.get("of", "")
    if not of:
        return await _form(request, session, Report())
    console = request.app[CONSOLE_KEY]
    try:
        key = AlertKey.from_reference(unquote(of))
    except ValueError:
        raise web.HTTPBadRequest(text="of: an incident key") from None
    stored = await asyncio.to_thread(console.daemon.ledger.get, key)
    incident = None if stored is None else incident_of(stored.raw)
    if incident is None:
        raise web.HTTPNotFound(text=f"no incident {key}")
    return await _form(request, session, report_of(incident))


async def _posted(request: web.Request, session: Session) -> Report:
    """The report of a posted form, from an operator, with the session's CSRF token."""
    form = await request.post()
    check_csrf(form, session)
    _operator(session)
    return Report.from_form(form)


@signed_in
async def incident_check(request: web.Request, session: Session) -> web.StreamResponse:
    """The previews of the report as it stands (fetched as the operator types)."""
    console = request.app[CONSOLE_KEY]
    report = await _posted(request, session)
    found, problem = await asyncio.to_thread(_checked, console, report)
    chosen = set(report.destinations or ())
    return console.render(
        request, "incident_check.html", session=session, problem=problem,
        previews=[d for d in found if d.sink in chosen],
    )  # fmt: skip


@signed_in
async def incident_send(request: web.Request, session: Session) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    report = await _posted(request, session)
    try:
        sent = await submit(console.daemon, report, who=session.name)
    except ReportError as exc:
        exc.count()
        return await _form(request, session, report, problem=str(exc), status=400)
    done = f"{sent.incident.incident_id}: {sent.admission.decision.value}" + (
        f" → {', '.join(sent.destinations)}" if sent.destinations else ""
    )
    raise web.HTTPFound(f"/incidents/new?done={quote(done, safe='')}")


@signed_in
async def incidents_geojson(request: web.Request, _session: Session) -> web.StreamResponse:
    """The current incidents with a location, as GeoJSON points (the map's markers)."""
    console = request.app[CONSOLE_KEY]
    rows = await asyncio.to_thread(current_incidents, console.daemon.ledger, console.now())
    features = [f for f in map(point_feature, rows) if f["geometry"] is not None]
    response = web.json_response(
        {"type": "FeatureCollection", "features": features},
        content_type="application/geo+json",
        headers=SECURITY_HEADERS,
    )
    response.enable_compression()
    return response


def incident_routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/incidents/new", incident_form),
        web.post("/incidents/new/check", incident_check),
        web.post("/incidents", incident_send),
        web.get("/map/incidents.geojson", incidents_geojson),
    ]
