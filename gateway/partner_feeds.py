"""Situational-awareness feeds for partners' tools: Atom with GeoRSS, GeoJSON, CAP per alert.

The other side's map tools read what we hold, the way the Canada–US experiments shared
alerts: an Atom entry per alert in force, its title and summary in each language the alert
has (XHTML ``div`` elements with ``xml:lang``), its area as GeoRSS (polygons, circles), its
expiry (``age:expires``), its severity and event as categories, and the CAP document itself
behind an ``enclosure`` link; the same as a GeoJSON FeatureCollection (RFC 7946: lon/lat,
closed rings, counter-clockwise exteriors; a CAP circle becomes a 32-sided polygon); and each
CAP alert byte for byte (``/feeds/alerts/{key}.cap``), so its signature still verifies.

Current incident reports (:mod:`gateway.console.incidents`: the latest update of each, for a
day, unless closed or cancelled) are in the same feeds: an Atom entry each (``id``
``urn:borderlink:incident:...``, the type and notes in English and French, the point as
``georss:point``, ``age:expires`` a day after the update, categories ``kind=incident``, type,
status and priority, and the incident JSON behind its ``alternate`` link,
``/feeds/incidents/{key}.json``), and a GeoJSON Point feature each (``"kind": "incident"``).
``kind=alerts`` or ``kind=incidents`` keeps one of the two; the other filters apply to
incidents as to alerts (``event`` matches their type, the spatial filters their point), but an
incident has no country: ``country=`` leaves incidents out.

Only ``[[partner]]`` tokens read them (``Authorization: Bearer``, or ``?token=`` for feed
readers that cannot set a header), each within its ``requests_per_minute``. Filters:
``bbox=minlon,minlat,maxlon,maxlat``, ``point=lat,lon&radius_km=R``, ``lang=en|fr``,
``country=ca|us``, ``event=`` (a word of the event). Answers carry an ``ETag`` and
``Last-Modified``; ``If-None-Match`` gets ``304`` when nothing changed.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import itertools
import json
import math
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import quote, unquote

import structlog
from aiohttp import web
from lxml import etree

from cap_schemas.model import Alert, AlertKey, Area, Info
from gateway.approvals import CONSOLE_SOURCE, author_of
from gateway.config import PartnerConfig
from gateway.console.incidents import IncidentRow, current_incidents, incident_of, point_feature
from gateway.console.views import ParsedCache
from gateway.ledger import EntryState, Ledger, StoredAlert
from gateway.metrics import INPUT_REJECTED, REGISTRY
from gateway.summary import alert_country
from gateway.translate.incident import incident_to_json

log = structlog.get_logger(__name__)

__all__ = ["Filters", "atom_document", "feature_collection", "feed_routes"]

CANCELS_KEPT = timedelta(hours=24)  # how long a Cancel stays in the partner feeds

ATOM = "http://www.w3.org/2005/Atom"
GEORSS = "http://www.georss.org/georss"
AGE = "http://purl.org/atompub/age/1.0"
XHTML = "http://www.w3.org/1999/xhtml"
XML_LANG = "{http://www.w3.org/XML/1998/namespace}lang"
CAP_TYPE = "application/common-alerting-protocol+xml"
INCIDENT_TYPE = "application/vnd.borderlink.incident+json"
KINDS = ("", "alerts", "incidents")
MESSAGE_TYPES = ("Incident", "RadioMessage")  # rows of inbound messages, never CAP
COMPONENT = "feeds"
CIRCLE_SIDES = 32
EARTH_KM = 6371.0088

SERVED = REGISTRY.counter(
    "borderlink_feed_requests_total", "Partner feed requests answered", ("partner", "outcome")
)


# ---------------------------------------------------------------------------------- filters


@dataclass(frozen=True, slots=True)
class Filters:
    bbox: tuple[float, float, float, float] | None = None  # min lon, min lat, max lon, max lat
    point: tuple[float, float] | None = None  # lat, lon
    radius_km: float = 0.0
    lang: str = ""
    country: str = ""
    event: str = ""
    kind: str = ""  # "alerts", "incidents" or both

    @classmethod
    def from_query(cls, query: Any) -> Filters:
        """The filters of a request; ValueError says which one is wrong and how."""
        bbox = None
        if query.get("bbox"):
            parts = _floats(query["bbox"], 4, "bbox=minlon,minlat,maxlon,maxlat")
            if not (-180 <= parts[0] <= parts[2] <= 180 and -90 <= parts[1] <= parts[3] <= 90):
                raise ValueError("bbox=minlon,minlat,maxlon,maxlat within -180..180, -90..90")
            bbox = (parts[0], parts[1], parts[2], parts[3])
        point, radius = None, 0.0
        if query.get("point"):
            lat, lon = _floats(query["point"], 2, "point=lat,lon")
            radius = _floats(query.get("radius_km", "0"), 1, "radius_km=kilometres")[0]
            if not (-90 <= lat <= 90 and -180 <= lon <= 180) or not 0 <= radius <= 5000:
                raise ValueError("point=lat,lon within range, radius_km from 0 to 5000")
            point = (lat, lon)
        lang = query.get("lang", "")
        if lang not in ("", "en", "fr"):
            raise ValueError("lang=en or lang=fr")
        country = query.get("country", "")
        if country not in ("", "ca", "us"):
            raise ValueError("country=ca or country=us")
        kind = query.get("kind", "")
        if kind not in KINDS:
            raise ValueError("kind=alerts or kind=incidents")
        event = query.get("event", "").lower()[:100]
        return cls(bbox, point, radius, lang, country, event, kind)

    def keep_incident(self, row: IncidentRow) -> bool:
        """An incident has no country (``country=`` leaves it out); ``event`` is a word of
        its type; the spatial filters need its point."""
        incident = row.incident
        if self.country or self.kind == "alerts":
            return False
        if self.event and self.event not in incident.incident_type.lower():
            return False
        if self.bbox is None and self.point is None:
            return True
        if incident.location is None:
            return False
        lat, lon = incident.location.latitude, incident.location.longitude
        box = (lon, lat, lon, lat)
        if self.bbox is not None and not _overlap(box, self.bbox):
            return False
        return self.point is None or _km_to_box(self.point, box) <= self.radius_km

    def keep(self, alert: Alert) -> bool:
        if self.kind == "incidents":
            return False
        if self.country and alert_country(alert) != self.country:
            return False
        if self.event and not any(self.event in i.event.lower() for i in alert.infos):
            return False
        if self.bbox is None and self.point is None:
            return True
        box = alert_bbox(alert)
        if box is None:
            return False  # no shape to place: a spatial filter leaves it out
        if self.bbox is not None and not _overlap(box, self.bbox):
            return False
        return self.point is None or _km_to_box(self.point, box) <= self.radius_km


def _floats(text: str, count: int, form: str) -> list[float]:
    try:
        values = [float(x) for x in text.split(",")]
    except ValueError:
        raise ValueError(form) from None
    if len(values) != count or not all(math.isfinite(v) for v in values):
        raise ValueError(form)
    return values


def _areas(alert: Alert) -> Iterable[Area]:
    return (area for info in alert.infos for area in info.areas)


def rings(alert: Alert) -> list[list[tuple[float, float]]]:
    """Every polygon and circle of the alert as a closed ring of (lon, lat), counter-clockwise,
    without repeats (the same area written in each language)."""
    out: list[list[tuple[float, float]]] = []
    seen: set[tuple[tuple[float, float], ...]] = set()
    for area in _areas(alert):
        shapes = [[(p.lon, p.lat) for p in polygon.points] for polygon in area.polygons]
        shapes += [_circle(c.center.lat, c.center.lon, c.radius_km) for c in area.circles]
        for shape in shapes:
            ring = _counter_clockwise(shape)
            if tuple(ring) not in seen:
                seen.add(tuple(ring))
                out.append(ring)
    return out


def _circle(lat: float, lon: float, radius_km: float) -> list[tuple[float, float]]:
    """A circle as a closed polygon of CIRCLE_SIDES sides (GeoJSON has no circles)."""
    ring = []
    for n in range(CIRCLE_SIDES):
        bearing = 2 * math.pi * n / CIRCLE_SIDES
        dlat = radius_km / EARTH_KM * math.cos(bearing)
        dlon = radius_km / EARTH_KM * math.sin(bearing) / max(math.cos(math.radians(lat)), 1e-6)
        ring.append((round(lon + math.degrees(dlon), 6), round(lat + math.degrees(dlat), 6)))
    ring.append(ring[0])
    return ring


def _counter_clockwise(ring: list[tuple[float, float]]) -> list[tuple[float, float]]:
    area2 = sum(x1 * y2 - x2 * y1 for (x1, y1), (x2, y2) in itertools.pairwise(ring))
    return ring if area2 >= 0 else list(reversed(ring))


def alert_bbox(alert: Alert) -> tuple[float, float, float, float] | None:
    points = [p for ring in rings(alert) for p in ring]
    if not points:
        return None
    lons, lats = [p[0] for p in points], [p[1] for p in points]
    return min(lons), min(lats), max(lons), max(lats)


def _overlap(a: Sequence[float], b: Sequence[float]) -> bool:
    return a[0] <= b[2] and b[0] <= a[2] and a[1] <= b[3] and b[1] <= a[3]


def _km_to_box(point: tuple[float, float], box: Sequence[float]) -> float:
    """Great-circle kilometres from a point to the nearest point of a lon/lat box."""
    lat, lon = point
    near_lat = min(max(lat, box[1]), box[3])
    near_lon = min(max(lon, box[0]), box[2])
    p1, p2 = math.radians(lat), math.radians(near_lat)
    dp, dl = p2 - p1, math.radians(near_lon - lon)
    h = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_KM * math.asin(min(1.0, math.sqrt(h)))


# ---------------------------------------------------------------------------------- content


@dataclass(frozen=True, slots=True)
class Item:
    stored: StoredAlert
    alert: Alert

    @property
    def updated(self) -> datetime:
        return self.stored.status_changed_at or self.stored.received_at


def _infos(alert: Alert, lang: str) -> list[Info]:
    chosen = [i for i in alert.infos if i.language.lower().startswith(lang)] if lang else []
    return chosen or list(alert.infos)


def cap_path(key: AlertKey) -> str:
    return f"/feeds/alerts/{quote(str(key), safe='')}.cap"


def incident_path(key: str) -> str:
    return f"/feeds/incidents/{quote(key, safe='')}.json"


def _xhtml(parent: etree._Element, name: str, infos: Sequence[Info], text: Any) -> None:
    element = etree.SubElement(parent, f"{{{ATOM}}}{name}", type="xhtml")
    outer = etree.SubElement(element, f"{{{XHTML}}}div")
    for info in infos:
        div = etree.SubElement(outer, f"{{{XHTML}}}div", {XML_LANG: info.language})
        div.text = text(info)


def _incident_texts(row: IncidentRow, lang: str) -> list[tuple[str, str, str]]:
    """(language, title, notes) of an incident in each language it has (or the one asked)."""
    incident = row.incident
    where = incident.location.description if incident.location is not None else ""
    where = where or incident.incident_id
    texts = [("en", f"Incident: {incident.incident_type} ({incident.status}), {where}",
              incident.text or incident.incident_type)]  # fmt: skip
    if incident.text_fr:
        texts.append(("fr", f"Incident : {incident.incident_type} ({incident.status}), {where}",
                      incident.text_fr))  # fmt: skip
    chosen = [t for t in texts if t[0] == lang] if lang else []
    return chosen or texts


def _incident_entry(feed: etree._Element, row: IncidentRow, lang: str, el: Any) -> None:
    incident = row.incident
    texts = _incident_texts(row, lang)
    entry = el(feed, "entry")
    el(entry, "id", f"urn:borderlink:incident:{row.key}")
    for name, index in (("title", 1), ("summary", 2)):
        element = el(entry, name, type="xhtml")
        outer = etree.SubElement(element, f"{{{XHTML}}}div")
        for text in texts:
            div = etree.SubElement(outer, f"{{{XHTML}}}div", {XML_LANG: text[0]})
            div.text = text[index]
    el(entry, "updated", incident.updated.isoformat())
    el(entry, "published", incident.created.isoformat())
    el(el(entry, "author"), "name", incident.agency or row.source)
    el(entry, "category", term="incident", label="kind")
    el(entry, "category", term=incident.incident_type or "other", label="event")
    el(entry, "category", term=incident.status, label="status")
    el(entry, "category", term=row.priority, label="priority")
    el(entry, "link", rel="alternate", type=INCIDENT_TYPE, href=incident_path(row.key))
    if incident.location is not None:
        point = etree.SubElement(entry, f"{{{GEORSS}}}point")
        point.text = f"{incident.location.latitude:g} {incident.location.longitude:g}"
    expires = etree.SubElement(entry, f"{{{AGE}}}expires")
    expires.text = row.expires.isoformat()


def atom_document(
    items: Sequence[Item],
    *,
    title: str,
    self_url: str,
    lang: str,
    incidents: Sequence[IncidentRow] = (),
) -> bytes:
    """The Atom feed (RFC 4287) of ``items`` and ``incidents``."""
    nsmap = {None: ATOM, "georss": GEORSS, "age": AGE}
    feed = etree.Element(f"{{{ATOM}}}feed", nsmap=nsmap)

    def el(parent: etree._Element, name: str, text: str = "", **attrs: str) -> etree._Element:
        child = etree.SubElement(parent, f"{{{ATOM}}}{name}", attrs)
        if text:
            child.text = text
        return child

    el(feed, "id", f"urn:borderlink:feed:{hashlib.sha256(title.encode()).hexdigest()[:16]}")
    el(feed, "title", title)
    newest = _newest(items, incidents)
    el(feed, "updated", (newest or datetime.fromtimestamp(0).astimezone()).isoformat())
    el(feed, "link", rel="self", href=self_url, type="application/atom+xml")
    el(el(feed, "author"), "name", title)
    for item in items:
        alert, stored = item.alert, item.stored
        infos = _infos(alert, lang)
        entry = el(feed, "entry")
        el(entry, "id", f"urn:borderlink:alert:{stored.key}")
        _xhtml(entry, "title", infos, lambda i: i.headline or i.event)
        _xhtml(entry, "summary", infos, lambda i: i.description or i.headline or i.event)
        el(entry, "updated", item.updated.isoformat())
        el(entry, "published", alert.sent.isoformat())
        el(el(entry, "author"), "name", infos[0].sender_name or alert.sender)
        el(entry, "category", term=stored.severity or "Unknown", label="severity",
           scheme="urn:oasis:names:tc:emergency:cap:1.2:severity")  # fmt: skip
        el(entry, "category", term=infos[0].event, label="event")
        el(entry, "category", term=alert_country(alert), label="country")
        href = cap_path(stored.key)
        el(entry, "link", rel="alternate", type=CAP_TYPE, href=href)
        el(entry, "link", rel="enclosure", type=CAP_TYPE, href=href, length=str(stored.raw_size))
        for ring in rings(alert):
            polygon = etree.SubElement(entry, f"{{{GEORSS}}}polygon")
            polygon.text = " ".join(f"{lat:g} {lon:g}" for lon, lat in ring)
        if stored.expires is not None:
            expires = etree.SubElement(entry, f"{{{AGE}}}expires")
            expires.text = stored.expires.isoformat()
    for row in incidents:
        _incident_entry(feed, row, lang, el)
    return bytes(etree.tostring(feed, xml_declaration=True, encoding="UTF-8"))


def _newest(items: Sequence[Item], incidents: Sequence[IncidentRow]) -> datetime | None:
    times = [i.updated for i in items] + [r.incident.updated for r in incidents]
    return max(times, default=None)


def _incident_feature(row: IncidentRow, lang: str) -> dict[str, Any]:
    feature = point_feature(row)
    properties = feature["properties"]
    properties["title"] = {t[0]: t[1] for t in _incident_texts(row, lang)}
    properties["notes"] = {t[0]: t[2] for t in _incident_texts(row, lang)}
    properties["incident"] = incident_path(row.key)
    return feature


def feature_collection(
    items: Sequence[Item], *, lang: str, incidents: Sequence[IncidentRow] = ()
) -> dict[str, Any]:
    """The GeoJSON FeatureCollection (RFC 7946) of ``items`` and ``incidents``."""
    features = []
    for item in items:
        alert, stored = item.alert, item.stored
        infos = _infos(alert, lang)
        shapes = rings(alert)
        geometry = (
            {"type": "MultiPolygon", "coordinates": [[[list(p) for p in ring]] for ring in shapes]}
            if shapes
            else None
        )
        features.append(
            {
                "type": "Feature",
                "id": str(stored.key),
                "geometry": geometry,
                "properties": {
                    "key": str(stored.key),
                    "country": alert_country(alert),
                    "event": infos[0].event,
                    "headline": {i.language: i.headline for i in infos},
                    "severity": stored.severity,
                    "urgency": stored.urgency,
                    "certainty": infos[0].certainty.value,
                    "msg_type": stored.msg_type,
                    "sent": alert.sent.isoformat(),
                    "expires": None if stored.expires is None else stored.expires.isoformat(),
                    "areas": list(stored.areas),
                    "geocodes": sorted(
                        {f"{g.name}={g.value}" for a in _areas(alert) for g in a.geocodes}
                    ),
                    "cap": cap_path(stored.key),
                },
            }
        )
    features += [_incident_feature(row, lang) for row in incidents]
    return {"type": "FeatureCollection", "features": features}


# ------------------------------------------------------------------------------------- HTTP


class _Bucket:
    """A partner's requests: ``per_minute`` at most, refilled continuously."""

    def __init__(self, per_minute: int) -> None:
        self.capacity = float(per_minute)
        self.tokens = float(per_minute)
        self.at = time.monotonic()

    def take(self) -> float | None:
        """None when allowed; else the seconds to wait."""
        now = time.monotonic()
        self.tokens = min(self.capacity, self.tokens + (now - self.at) * self.capacity / 60)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return None
        return (1 - self.tokens) * 60 / self.capacity


class PartnerFeeds:
    def __init__(self, daemon: Any, partners: Sequence[PartnerConfig]) -> None:
        self.daemon = daemon
        self.partners = tuple(partners)
        self.buckets = {p.name: _Bucket(p.requests_per_minute) for p in partners}
        self.cache = ParsedCache()

    def partner(self, request: web.Request) -> PartnerConfig:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        given = token.strip() if scheme.lower() == "bearer" else request.query.get("token", "")
        found = next(
            (
                p
                for p in self.partners
                if given and hmac.compare_digest(given.encode(), p.token.encode())
            ),
            None,
        )
        if found is None:
            INPUT_REJECTED.inc(component=COMPONENT, reason="unauthorized")
            raise _error(401, "unauthorized", "a partner token is required")
        wait = self.buckets[found.name].take()
        if wait is not None:
            SERVED.inc(partner=found.name, outcome="rate_limited")
            raise _error(429, "rate_limited", f"{found.requests_per_minute} requests a minute",
                         headers={"Retry-After": str(math.ceil(wait))})  # fmt: skip
        return found

    def items(self, filters: Filters) -> list[Item]:
        """The alerts in force, and the Cancels of the last ``CANCELS_KEPT`` (a Cancel is
        never in force itself; without it a gateway linked by this feed alone would keep
        the cancelled alert until it expires)."""
        ledger: Ledger = self.daemon.ledger
        now = self.daemon.clock.now()
        out = []
        in_force = ledger.active(now, with_raw=True)
        cancels = ledger.cancels_since(now - CANCELS_KEPT, with_raw=True)
        for stored in [*in_force, *cancels]:
            if stored.source == CONSOLE_SOURCE and _awaiting_second_operator(ledger, stored):
                continue  # the two-person rule holds partners too
            alert = self.cache.get(stored)
            if alert is not None and filters.keep(alert):
                out.append(Item(stored, alert))
        return out

    def incidents(self, filters: Filters) -> list[IncidentRow]:
        rows = current_incidents(self.daemon.ledger, self.daemon.clock.now())
        return [row for row in rows if filters.keep_incident(row)]


def _awaiting_second_operator(ledger: Ledger, stored: StoredAlert) -> bool:
    """Whether an alert issued in the console still waits for a second operator on one of
    its routes: until then no partner reads it either."""
    return any(
        e.state is EntryState.HELD and author_of(e.reason) is not None
        for e in ledger.deliveries(stored.key)
    )


FEEDS_KEY: web.AppKey[PartnerFeeds] = web.AppKey("partner_feeds", PartnerFeeds)


def _error(
    status: int, error: str, message: str, headers: dict[str, str] | None = None
) -> web.HTTPException:
    cls = {401: web.HTTPUnauthorized, 429: web.HTTPTooManyRequests, 400: web.HTTPBadRequest,
           404: web.HTTPNotFound}[status]  # fmt: skip
    return cls(
        text=json.dumps({"error": error, "message": message}),
        content_type="application/json",
        headers=headers,
    )


def _conditional(
    request: web.Request, body: bytes, content_type: str, newest: datetime | None
) -> web.Response:
    etag = '"' + hashlib.sha256(body).hexdigest()[:32] + '"'
    headers = {"ETag": etag, "Cache-Control": "private, max-age=0, must-revalidate"}
    if newest is not None:
        headers["Last-Modified"] = newest.strftime("%a, %d %b %Y %H:%M:%S GMT")
    if etag in [t.strip() for t in request.headers.get("If-None-Match", "").split(",")]:
        return web.Response(status=304, headers=headers)
    response = web.Response(body=body, content_type=content_type, charset="utf-8", headers=headers)
    response.enable_compression()
    return response


async def _feed(request: web.Request, kind: str) -> web.StreamResponse:
    feeds = request.app[FEEDS_KEY]
    partner = feeds.partner(request)
    try:
        filters = Filters.from_query(request.query)
    except ValueError as exc:
        INPUT_REJECTED.inc(component=COMPONENT, reason="bad_filter")
        raise _error(400, "bad_filter", str(exc)) from None
    items = await asyncio.to_thread(feeds.items, filters)
    incidents = await asyncio.to_thread(feeds.incidents, filters)
    if kind == "atom":
        config = feeds.daemon.config
        title = f"{config.console.title or config.gateway.name}: alerts in force"
        body = atom_document(
            items, title=title, self_url=str(request.url), lang=filters.lang, incidents=incidents
        )
        content_type = "application/atom+xml"
    else:
        collection = feature_collection(items, lang=filters.lang, incidents=incidents)
        body = json.dumps(collection, ensure_ascii=False).encode()
        content_type = "application/geo+json"
    SERVED.inc(partner=partner.name, outcome=kind)
    return _conditional(request, body, content_type, _newest(items, incidents))


async def atom_feed(request: web.Request) -> web.StreamResponse:
    return await _feed(request, "atom")


async def geojson_feed(request: web.Request) -> web.StreamResponse:
    return await _feed(request, "geojson")


async def _stored(request: web.Request, outcome: str) -> tuple[AlertKey, StoredAlert | None]:
    """The ledger's row named by the path's key, for a partner (counted as ``outcome``)."""
    feeds = request.app[FEEDS_KEY]
    partner = feeds.partner(request)
    try:
        key = AlertKey.from_reference(unquote(request.match_info["key"]))
    except ValueError:
        raise _error(400, "bad_key", "the key is sender,identifier,sent (URL-encoded)") from None
    stored = await asyncio.to_thread(feeds.daemon.ledger.get, key)
    SERVED.inc(partner=partner.name, outcome=outcome)
    return key, stored


async def cap_document(request: web.Request) -> web.StreamResponse:
    key, stored = await _stored(request, "cap")
    if stored is None or stored.msg_type in MESSAGE_TYPES:
        raise _error(404, "not_found", f"no alert {key}")
    return web.Response(
        body=stored.raw, content_type=CAP_TYPE, headers={"ETag": f'"{stored.raw_sha256[:32]}"'}
    )


async def incident_document(request: web.Request) -> web.StreamResponse:
    """One incident update's JSON, as the ledger received it in any form (EIDO subset)."""
    key, stored = await _stored(request, "incident")
    incident = None if stored is None else incident_of(stored.raw)
    if incident is None:
        raise _error(404, "not_found", f"no incident {key}")
    return web.Response(body=incident_to_json(incident), content_type=INCIDENT_TYPE)


def feed_routes() -> list[web.RouteDef]:
    return [
        web.get("/feeds/alerts.atom", atom_feed),
        web.get("/feeds/alerts.geojson", geojson_feed),
        web.get("/feeds/alerts/{key}.cap", cap_document),
        web.get("/feeds/incidents/{key}.json", incident_document),
    ]


def install(app: web.Application, daemon: Any) -> None:
    """The feeds, when the configuration names partners."""
    app[FEEDS_KEY] = PartnerFeeds(daemon, daemon.config.partners)
    app.add_routes(feed_routes())
