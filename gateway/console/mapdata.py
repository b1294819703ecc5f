"""The console's map: the alerts in force as GeoJSON, the page, and the boundary files.

Every active alert is drawn from what it says of its areas: its CAP polygons (``lat,lon``
pairs, turned into GeoJSON's ``[lon, lat]``), its circles (a point with ``radius_m``), and,
for an alert that has neither, its geocodes, which the page looks up in the shipped
boundaries (``gateway/console/geo/``): US counties by FIPS (a SAME or FIPS6 code ``PSSCCC`` is
county ``SSCCC``, ``SS000`` the whole state; an NWS county UGC ``MIC163`` is ``26163``), and
Canadian SGC codes (``profile:CAP-CP:Location:0.3``) by their census division -- the first
four digits (``3537039`` is in ``3537``, Essex) -- or, for a division the shipped file does not
know (or a bare 2-digit code), by their province -- the first two digits
(:func:`gateway.places.geocodes`, which the routes' distance to the border shares).

The boundary files are served from memory, gzip-compressed once, under a URL that carries
their digest, so a browser keeps them for a year and fetches them again only when they change.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from aiohttp import web

from cap_schemas.model import Alert, Area
from gateway.console import views
from gateway.console.app import CONSOLE_KEY, SECURITY_HEADERS, signed_in
from gateway.console.geofiles import GEO_FILES, geo_file, geo_urls
from gateway.console.sessions import Session
from gateway.ledger import Ledger, StoredAlert
from gateway.places import Codes, geocodes

__all__ = [
    "SEVERITIES",
    "Codes",
    "MapAlert",
    "alert_features",
    "geocodes",
    "map_alerts",
    "map_routes",
]

#: The legend's order, most severe first; the rank of an alert on the list beside the map.
SEVERITIES = ("Extreme", "Severe", "Moderate", "Minor", "Unknown")
GEO_CACHE = "public, max-age=31536000, immutable"  # the URL changes with the content


@dataclass(frozen=True, slots=True)
class MapAlert:
    """One alert in force as the map draws it."""

    key: str
    href: str
    event: str
    headline: str
    severity: str
    polygons: tuple[tuple[tuple[float, float], ...], ...] = ()  # rings of (lon, lat)
    circles: tuple[tuple[float, float, float], ...] = ()  # (lon, lat, radius in metres)
    codes: Codes = field(default_factory=Codes)

    @property
    def shown(self) -> bool:
        """Whether the map can draw it at all (a shape, or a place it knows)."""
        return bool(self.polygons or self.circles or self.codes.mappable)

    @property
    def properties(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "href": self.href,
            "event": self.event,
            "headline": self.headline,
            "severity": self.severity if self.severity in SEVERITIES else "Unknown",
        }


def _areas(alert: Alert | None) -> list[Area]:
    """The areas of every language of an alert, each once (a bilingual CAP-CP alert repeats
    the same polygon in its English and French infos)."""
    if alert is None:
        return []
    return list(dict.fromkeys(area for info in alert.infos for area in info.areas))


def map_alert(stored: StoredAlert, alert: Alert | None) -> MapAlert:
    areas = _areas(alert)
    polygons = tuple(
        dict.fromkeys(
            tuple((p.lon, p.lat) for p in polygon.points) for a in areas for polygon in a.polygons
        )
    )
    circles = tuple(
        dict.fromkeys(
            (c.center.lon, c.center.lat, c.radius_km * 1000.0) for a in areas for c in a.circles
        )
    )
    info = alert.infos[0] if alert is not None and alert.infos else None
    return MapAlert(
        key=str(stored.key),
        href=views.alert_href(stored.key),
        event=(info.event if info is not None else stored.event) or stored.event,
        headline=stored.headline,
        severity=stored.severity,
        polygons=polygons,
        circles=circles,
        codes=Codes() if polygons or circles else geocodes(areas),
    )


def map_alerts(ledger: Ledger, now: datetime, cache: views.ParsedCache) -> list[MapAlert]:
    """The alerts in force, most severe first (then in the ledger's order of priority)."""
    alerts = [map_alert(s, cache.get(s)) for s in ledger.active(now, with_raw=True)]
    rank = {s: n for n, s in enumerate(SEVERITIES)}
    return sorted(alerts, key=lambda a: rank.get(a.severity, len(SEVERITIES)))


def _features(alert: MapAlert) -> list[dict[str, Any]]:
    features = []
    for ring in alert.polygons:
        polygon = {"type": "Polygon", "coordinates": [[list(p) for p in ring]]}
        features.append(_feature(polygon, alert.properties | {"shape": "polygon"}))
    for lon, lat, radius in alert.circles:
        centre = {"type": "Point", "coordinates": [lon, lat]}
        properties = alert.properties | {"shape": "circle", "radius_m": radius}
        features.append(_feature(centre, properties))
    if not features and alert.codes.mappable:
        codes = alert.codes
        properties = alert.properties | {
            "shape": "area",
            "same": list(codes.same),
            "ugc": list(codes.ugc),
            "sgc": list(codes.sgc),
            "fips": list(codes.counties),
            "states": list(codes.states),
            "divisions": list(codes.divisions),
            "provinces": list(codes.provinces),
        }
        features.append(_feature(None, properties))
    return features


def _feature(geometry: dict[str, Any] | None, properties: dict[str, Any]) -> dict[str, Any]:
    return {"type": "Feature", "geometry": geometry, "properties": properties}


def alert_features(ledger: Ledger, now: datetime, cache: views.ParsedCache) -> dict[str, Any]:
    """The alerts in force as a GeoJSON FeatureCollection: one feature per polygon and per
    circle, and for an alert with neither one feature without geometry that lists the
    boundary keys to fill (``fips``, ``states``, ``divisions``, ``provinces``) and the codes
    they came from."""
    alerts = map_alerts(ledger, now, cache)
    return {
        "type": "FeatureCollection",
        "features": [f for alert in alerts for f in _features(alert)],
    }


# ----------------------------------------------------------------------------- web face


@signed_in
async def map_page(request: web.Request, session: Session) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    alerts = await asyncio.to_thread(
        map_alerts, console.daemon.ledger, console.now(), console.cache
    )
    template = "map_list.html" if request.query.get("part") == "list" else "map.html"
    return await console.page(
        request, session, template, alerts=alerts, severities=SEVERITIES, geo=geo_urls()
    )


@signed_in
async def map_geojson(request: web.Request, _session: Session) -> web.StreamResponse:
    console = request.app[CONSOLE_KEY]
    collection = await asyncio.to_thread(
        alert_features, console.daemon.ledger, console.now(), console.cache
    )
    response = web.json_response(
        collection, content_type="application/geo+json", headers=SECURITY_HEADERS
    )
    response.enable_compression()
    return response


async def boundaries(request: web.Request) -> web.StreamResponse:
    """A shipped boundary file (public data: no sign-in), gzip when the browser takes it."""
    name = request.match_info["name"]
    if name not in GEO_FILES:
        raise web.HTTPNotFound(text="no such boundary file")
    found = geo_file(name)
    headers = {
        "Cache-Control": GEO_CACHE,
        "ETag": found.etag,
        "Vary": "Accept-Encoding",
        "X-Content-Type-Options": "nosniff",
    }
    if request.headers.get("If-None-Match") == found.etag:
        return web.Response(status=304, headers=headers)
    body = found.raw
    if "gzip" in request.headers.get("Accept-Encoding", ""):
        body = found.gzipped
        headers["Content-Encoding"] = "gzip"
    return web.Response(body=body, content_type="application/geo+json", headers=headers)


def map_routes() -> list[web.AbstractRouteDef]:
    return [
        web.get("/map", map_page),
        web.get("/map/alerts.geojson", map_geojson),
        web.get("/map/geo/{name}", boundaries),
    ]
