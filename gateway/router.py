"""Routes: which alert goes to which sink, in which form, and whether it waits for an operator.

A route names a set of sources, filters (``[route.match]``), a translation and sinks. The
router is consulted by the ledger once it decided what an alert is (``plan``), before the
decision is recorded (no write transaction is open while it renders): for each matching
route and each of its sinks it renders the alert once and returns a
:class:`PlannedDelivery`. One sink receives one delivery per alert, from the first route (in
file order) that names it.

Safety rules applied here, whatever the routes say:

* an alert whose ``status`` is not ``Actual`` never reaches a sink with ``live = true``
  unless the route sets ``allow_non_actual = true``;
* an alert below the route's ``live_trust`` (default ``authenticated``: anonymous input) is
  never planned for a live sink;
* an alert that is not signed by a trusted signer is *held* for an operator before a live sink
  unless the route sets ``allow_unsigned_live = true``;
* ``approval = "two-person"`` holds every delivery of the route of an alert issued in the
  console until a second operator approves it (:mod:`gateway.approvals`);
* ``action = "hold"`` holds every delivery of the route; an alert the ledger holds as a whole
  (a source whose validation mode is ``hold`` and errors found, or an update or cancel less
  trusted than what it references: ``Admission.hold``) has every delivery held;
* an update or cancel also goes to every sink that received the alert it replaces, so a sink
  never keeps an alert in force that was withdrawn, even when the filters no longer match.

Area filters: a geocode prefix (``"SAME=036"``, ``"profile:CAP-CP:Location:0.3=35"``, or a
bare prefix matching any geocode), a region (polygon or circle) that must intersect an
alert polygon or circle, or ``near_border_km``: an area whose polygons, circles or (without
either) mapped geocodes lie within that many km of the Canada-US border
(:mod:`gateway.border`). An area passes when it meets any one of them. Geometry is planar
on a local equirectangular projection (good to a fraction of a percent at the size of a
county or a province; regions must not span the antimeridian); circle to circle distance is
haversine.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import structlog

from cap_schemas.location_shapes import EARTH_RADIUS_KM, distance_km
from cap_schemas.model import Alert, AlertKey, Area, Info, MsgType, Status
from gateway import approvals
from gateway.border import near_border
from gateway.border import preload as preload_border
from gateway.config import Config, Filters, Region, RouteConfig, SinkConfig
from gateway.errors import FrameError, LocationWideningError, TranslationError
from gateway.ledger import (
    ANONYMOUS,
    Admission,
    PlannedDelivery,
    message_priority,
    priority_of,
    trust_rank,
)
from gateway.messages import MESSAGE_RENDERERS, InboundMessage
from gateway.metrics import REGISTRY
from gateway.model import Rendered
from gateway.summary import alert_country, alert_event_code, delivery_id, summary_json, topic_key
from gateway.translate.registry import RENDERERS

__all__ = [
    "EARTH_RADIUS_KM",
    "PlanContext",
    "Router",
    "area_intersects_region",
    "circle_intersects_polygon",
    "haversine_km",
    "point_in_polygon",
    "polygons_intersect",
]

log = structlog.get_logger(__name__)

ROUTE_MATCHES = REGISTRY.counter(
    "borderlink_route_matches_total", "Alerts that matched a route, by route", ("route",)
)
ROUTE_SKIPPED = REGISTRY.counter(
    "borderlink_route_skipped_total",
    "Deliveries a matching route did not plan, by route, sink and reason",
    ("route", "sink", "reason"),
)

LatLon = tuple[float, float]


# ------------------------------------------------------------------------------- geometry


def haversine_km(a: LatLon, b: LatLon) -> float:
    """Great-circle distance in km between two (lat, lon) points."""
    return distance_km(a[0], a[1], b[0], b[1])


def _project(points: Iterable[LatLon], lat0: float) -> list[tuple[float, float]]:
    k = math.cos(math.radians(lat0))
    return [
        (math.radians(lon) * EARTH_RADIUS_KM * k, math.radians(lat) * EARTH_RADIUS_KM)
        for lat, lon in points
    ]


def _inside(x: float, y: float, ring: Sequence[tuple[float, float]]) -> bool:
    inside = False
    n = len(ring)
    j = n - 1
    for i in range(n):
        xi, yi = ring[i]
        xj, yj = ring[j]
        if (yi > y) != (yj > y) and x < (xj - xi) * (y - yi) / (yj - yi) + xi:
            inside = not inside
        j = i
    return inside


def point_in_polygon(point: LatLon, polygon: Sequence[LatLon]) -> bool:
    """Ray casting on (lat, lon) as planar coordinates (the ring may be open or closed)."""
    return _inside(point[1], point[0], [(lon, lat) for lat, lon in polygon])


def _orient(a: tuple[float, float], b: tuple[float, float], c: tuple[float, float]) -> float:
    return (b[0] - a[0]) * (c[1] - a[1]) - (b[1] - a[1]) * (c[0] - a[0])


def _on_segment(a: tuple[float, float], b: tuple[float, float], p: tuple[float, float]) -> bool:
    return min(a[0], b[0]) <= p[0] <= max(a[0], b[0]) and min(a[1], b[1]) <= p[1] <= max(a[1], b[1])


Vec = tuple[float, float]


def _segments_cross(p1: Vec, p2: Vec, q1: Vec, q2: Vec) -> bool:
    d1, d2 = _orient(q1, q2, p1), _orient(q1, q2, p2)
    d3, d4 = _orient(p1, p2, q1), _orient(p1, p2, q2)
    if ((d1 > 0) != (d2 > 0)) and ((d3 > 0) != (d4 > 0)) and d1 and d2 and d3 and d4:
        return True
    return (
        (d1 == 0 and _on_segment(q1, q2, p1))
        or (d2 == 0 and _on_segment(q1, q2, p2))
        or (d3 == 0 and _on_segment(p1, p2, q1))
        or (d4 == 0 and _on_segment(p1, p2, q2))
    )


def _edges(ring: Sequence[tuple[float, float]]) -> list[tuple[tuple[float, float], ...]]:
    return [(ring[i], ring[(i + 1) % len(ring)]) for i in range(len(ring))]


def polygons_intersect(a: Sequence[LatLon], b: Sequence[LatLon]) -> bool:
    """Whether two polygons share any point (one inside the other counts)."""
    if not a or not b:
        return False
    lat0 = (sum(p[0] for p in a) / len(a) + sum(p[0] for p in b) / len(b)) / 2
    pa, pb = _project(a, lat0), _project(b, lat0)
    if any(_inside(x, y, pb) for x, y in pa) or any(_inside(x, y, pa) for x, y in pb):
        return True
    return any(
        _segments_cross(e1[0], e1[1], e2[0], e2[1]) for e1 in _edges(pa) for e2 in _edges(pb)
    )


def _segment_distance(
    p: tuple[float, float], a: tuple[float, float], b: tuple[float, float]
) -> float:
    dx, dy = b[0] - a[0], b[1] - a[1]
    if dx == 0 and dy == 0:
        return math.hypot(p[0] - a[0], p[1] - a[1])
    t = max(0.0, min(1.0, ((p[0] - a[0]) * dx + (p[1] - a[1]) * dy) / (dx * dx + dy * dy)))
    return math.hypot(p[0] - (a[0] + t * dx), p[1] - (a[1] + t * dy))


def circle_intersects_polygon(center: LatLon, radius_km: float, polygon: Sequence[LatLon]) -> bool:
    """Whether a circle (centre, radius in km) and a polygon share any point."""
    if not polygon:
        return False
    ring = _project(polygon, center[0])
    (c,) = _project([center], center[0])
    if _inside(c[0], c[1], ring):
        return True
    return any(_segment_distance(c, a, b) <= radius_km for a, b in _edges(ring))


def area_intersects_region(area: Area, region: Region) -> bool:
    """Whether any polygon or circle of a CAP area intersects a configured region."""
    polygons = [[(p.lat, p.lon) for p in poly.points] for poly in area.polygons]
    circles = [((c.center.lat, c.center.lon), c.radius_km) for c in area.circles]
    if region.polygon:
        return any(polygons_intersect(poly, region.polygon) for poly in polygons) or any(
            circle_intersects_polygon(center, r, region.polygon) for center, r in circles
        )
    assert region.circle is not None
    lat, lon, radius = region.circle
    return any(circle_intersects_polygon((lat, lon), radius, poly) for poly in polygons) or any(
        haversine_km((lat, lon), center) <= radius + r for center, r in circles
    )


# -------------------------------------------------------------------------------- matching


def _prefix_match(spec: str, area: Area) -> bool:
    name, sep, prefix = spec.partition("=")
    if not sep:
        return any(g.value.startswith(spec) for g in area.geocodes)
    return any(g.name == name and g.value.startswith(prefix) for g in area.geocodes)


def _area_ok(f: Filters, info: Info) -> bool:
    if not f.geocodes and not f.regions and f.near_border_km is None:
        return True
    for area in info.areas:
        if any(_prefix_match(spec, area) for spec in f.geocodes):
            return True
        if any(area_intersects_region(area, region) for region in f.regions):
            return True
        if f.near_border_km is not None and near_border(area, f.near_border_km):
            return True
    return False


def _event_code_ok(f: Filters, info: Info) -> bool:
    if not f.event_codes:
        return True
    for spec in f.event_codes:
        name, sep, value = spec.partition("=")
        for pair in info.event_codes:
            if sep:
                if pair.name == name and pair.value.lower() == value.lower():
                    return True
            elif pair.value.lower() == spec.lower():
                return True
    return False


def _language_ok(f: Filters, info: Info) -> bool:
    if not f.language:
        return True
    lang = info.language.lower()
    return any(lang == want or lang.split("-")[0] == want for want in f.language)


def _info_ok(f: Filters, info: Info) -> bool:
    return (
        (not f.severity or info.severity.value in f.severity)
        and (not f.urgency or info.urgency.value in f.urgency)
        and (not f.certainty or info.certainty.value in f.certainty)
        and (not f.event or info.event.lower() in f.event)
        and _language_ok(f, info)
        and _event_code_ok(f, info)
        and _area_ok(f, info)
    )


_INFO_FILTERS = ("severity", "urgency", "certainty", "event", "language", "event_codes")
RECEIPTS = (MsgType.ACK, MsgType.ERROR)


def filters_match(
    f: Filters, alert: Alert, *, signature: str, profile: str, trust: str = ANONYMOUS
) -> bool:
    """Whether an alert passes every filter (one info block must pass all info filters)."""
    if f.status and alert.status.value not in f.status:
        return False
    if f.msg_type and alert.msg_type.value not in f.msg_type:
        return False
    if not f.msg_type and alert.msg_type in RECEIPTS:
        return False  # an Ack or Error goes only where a route asks for it by msg_type
    if f.scope and alert.scope.value not in f.scope:
        return False
    if f.signature and signature not in f.signature:
        return False
    if f.trust and trust not in f.trust:
        return False
    if f.profile and profile not in f.profile:
        return False
    info_filtered = (
        any(getattr(f, name) for name in _INFO_FILTERS)
        or f.geocodes
        or f.regions
        or f.near_border_km is not None
    )
    if not info_filtered:
        return True
    return any(_info_ok(f, info) for info in alert.infos)


# --------------------------------------------------------------------------------- planning


@dataclass(frozen=True, slots=True)
class PlanContext:
    """What the daemon learned about an alert before admitting it."""

    alert: Alert
    source: str
    signature: str = "unsigned"  # "valid" | "unsigned"
    profile: str = "cap"
    trust: str = ANONYMOUS  # the alert's trust level (Provenance.level)
    issued_by: str = ""  # the console account that issued it (source "console")


@dataclass(frozen=True, slots=True)
class MessageContext:
    """An inbound incident or radio message about to be admitted."""

    inbound: InboundMessage
    source: str
    key: AlertKey
    received_at: datetime
    destinations: frozenset[str] | None = None  # the sinks an operator chose (None: all)


class Router:
    """Plans deliveries from a configuration's routes and sinks; replaced whole on reload."""

    def __init__(self, config: Config) -> None:
        enabled = [r for r in config.routes if r.enabled]
        self.routes: tuple[RouteConfig, ...] = tuple(r for r in enabled if r.input == "cap")
        self.message_routes: tuple[RouteConfig, ...] = tuple(
            r for r in enabled if r.input == "incident"
        )
        self.sinks: dict[str, SinkConfig] = {s.name: s for s in config.sinks if s.enabled}
        if any(r.match.near_border_km is not None for r in self.routes):
            preload_border()  # read the border and the boundary files now, not per alert
        for route in self.routes:
            if route.translation not in RENDERERS:
                msg = f"route {route.name!r}: unknown translation {route.translation!r}"
                raise TranslationError(msg)
        for route in self.message_routes:
            if route.translation not in MESSAGE_RENDERERS:
                msg = f"route {route.name!r}: unknown incident translation {route.translation!r}"
                raise TranslationError(msg)
        # Each route's rendering key, made once (by identity: the routes live as long as the
        # router, and their options are not hashable).
        self._renderings = {id(r): _rendering_key(r) for r in self.routes}

    def matching(self, ctx: PlanContext) -> list[RouteConfig]:
        return [
            route
            for route in self.routes
            if (route.sources is None or ctx.source in route.sources)
            and filters_match(
                route.match,
                ctx.alert,
                signature=ctx.signature,
                profile=ctx.profile,
                trust=ctx.trust,
            )
        ]

    def planner(self, ctx: PlanContext) -> Callable[[Admission], Sequence[PlannedDelivery]]:
        """The ``plan`` callback ``Ledger.admit`` calls once it decided (before it records)."""

        def plan(admission: Admission) -> Sequence[PlannedDelivery]:
            return self.plan(ctx, admission)

        return plan

    def plan(self, ctx: PlanContext, admission: Admission) -> list[PlannedDelivery]:
        alert = ctx.alert
        planned: dict[str, PlannedDelivery] = {}
        rendered: dict[str, Rendered | str] = {}  # by translation and its options (str: why not)
        routes = self.matching(ctx)
        pairs: list[tuple[RouteConfig, str]] = [(r, s) for r in routes for s in r.sinks]
        for route in routes:
            ROUTE_MATCHES.inc(route=route.name)
        # Sinks that carried what this update/cancel replaces get it too -- and so does a sink
        # that may have: an attempt under way, or one that failed after the line took it.
        by_name = {r.name: r for r in self.routes}
        for sink_name, route_name in admission.reached:
            known = by_name.get(route_name) or RouteConfig(name=route_name, sinks=(sink_name,))
            pairs.append((known, sink_name))
        for route, sink_name in pairs:
            if sink_name in planned:
                continue
            sink = self.sinks.get(sink_name)
            if sink is None:
                ROUTE_SKIPPED.inc(route=route.name, sink=sink_name, reason="sink_disabled")
                continue
            refusal = _live_refusal(route, sink, ctx)
            if refusal is not None:
                code, why = refusal
                ROUTE_SKIPPED.inc(route=route.name, sink=sink_name, reason=code)
                log.warning(
                    "delivery_refused",
                    alert=str(alert.key),
                    route=route.name,
                    sink=sink_name,
                    reason=why,
                )
                continue
            # Each route renders with its own options (two text routes for a pager and a DMR
            # talkgroup differ); routes with the same translation and options share one.
            rendering = self._renderings.get(id(route)) or _rendering_key(route)
            if rendering not in rendered:
                rendered[rendering] = self._render(route, alert)
            result = rendered[rendering]
            if isinstance(result, str):
                ROUTE_SKIPPED.inc(route=route.name, sink=sink_name, reason=result)
                continue
            held = route.action == "hold" or bool(admission.hold)
            if sink.live and ctx.signature != "valid" and not route.allow_unsigned_live:
                held = True
            reason = ""
            if route.approval == approvals.TWO_PERSON and ctx.source == approvals.CONSOLE_SOURCE:
                held, reason = True, approvals.hold_reason(ctx.issued_by)
            planned[sink_name] = self._delivery(
                ctx, route, sink, result, held=held, hold_reason=reason
            )
        return list(planned.values())

    @staticmethod
    def _render(route: RouteConfig, alert: Alert) -> Rendered | str:
        """The rendering, or the reason code of the skip (``widening``: a location code
        would cover much more than the alert; ``translation``: any other refusal)."""
        try:
            return RENDERERS[route.translation](alert, route.translation_options)
        except TranslationError as exc:
            code = "widening" if isinstance(exc, LocationWideningError) else "translation"
            log.warning(
                "translation_failed",
                alert=str(alert.key),
                route=route.name,
                translation=route.translation,
                reason=str(exc),
                code=code,
            )
            return code
        except Exception:  # a renderer's bug must not block the input (the alert is kept)
            log.exception(
                "translation_crashed",
                alert=str(alert.key),
                route=route.name,
                translation=route.translation,
            )
            return "translation"

    @staticmethod
    def _delivery(
        ctx: PlanContext,
        route: RouteConfig,
        sink: SinkConfig,
        result: Rendered,
        *,
        held: bool,
        hold_reason: str = "",
    ) -> PlannedDelivery:
        alert = ctx.alert
        key = alert.key
        ident = delivery_id(key, sink.name)
        attributes: dict[str, str] = {
            "source": ctx.source,
            "country": alert_country(alert),
            "status": alert.status.value.lower(),
            "event": alert_event_code(alert),
            "key": topic_key(key),
            "alert_key": str(key),
            "msg_type": alert.msg_type.value.lower(),
            "delivery_id": ident,
            "signature": ctx.signature,
        }
        attributes.update({k: str(v) for k, v in _attributes(result).items()})
        if sink.format == "json":
            parts: tuple[bytes, ...] = (
                summary_json(alert, source=ctx.source, delivery_id=ident, route=route.name),
            )
            content_type = "application/json"
        else:
            parts = result.parts
            content_type = result.content_type
        return PlannedDelivery(
            sink=sink.name,
            route=route.name,
            parts=parts,
            content_type=content_type,
            attributes=attributes,
            priority=priority_of(alert),
            hold_reason=hold_reason,
            expires=alert.expires,
            held=held,
        )


def _rendering_key(route: RouteConfig) -> str:
    options = json.dumps(dict(route.translation_options), sort_keys=True, default=str)
    return f"{route.translation}\n{options}"


def _live_refusal(route: RouteConfig, sink: SinkConfig, ctx: PlanContext) -> tuple[str, str] | None:
    """Why a live sink may not get this alert at all (reason code, words), or None."""
    if not sink.live:
        return None
    if ctx.alert.status is not Status.ACTUAL and not route.allow_non_actual:
        return "not_actual_live", f"status {ctx.alert.status.value} never reaches a live sink"
    if trust_rank(ctx.trust) < trust_rank(route.live_trust):
        return "trust", (
            f"{ctx.trust} input never reaches a live sink (route live_trust = {route.live_trust})"
        )
    return None


def _message_matches(route: RouteConfig, ctx: MessageContext) -> bool:
    message = ctx.inbound.message
    if route.sources is not None and ctx.source not in route.sources:
        return False
    if route.channels and message.channel.casefold() not in route.channels:
        return False
    if route.senders:
        senders = {message.sender.casefold()}
        if ctx.inbound.incident is not None:
            senders.add(ctx.inbound.incident.agency.casefold())
        if not senders & set(route.senders):
            return False
    return True


def message_routes_for(router: Router, ctx: MessageContext) -> list[RouteConfig]:
    """The ``input = "incident"`` routes that take this message, in configuration order
    (counts nothing: the console's previews ask before anything is sent)."""
    return [route for route in router.message_routes if _message_matches(route, ctx)]


def plan_message(router: Router, ctx: MessageContext) -> list[PlannedDelivery]:
    """Deliveries of an inbound message by the routes with ``input = "incident"``.

    A message never goes back to the adapter it came from, and a copy a talkgroup link
    relayed (it carries a relay id) is not routed again. Radio messages are never signed: a
    live sink gets them held for an operator unless the route allows unsigned input.
    """
    inbound = ctx.inbound
    if inbound.message.relay_id:
        return []
    planned: dict[str, PlannedDelivery] = {}
    ident_attrs = {
        "source": ctx.source,
        "channel": inbound.message.channel,
        "sender": inbound.message.sender,
        "kind": inbound.kind,
        "key": topic_key(ctx.key),
        "alert_key": str(ctx.key),
        "msg_type": inbound.kind.lower(),
        "country": "",
        "status": "actual",
        "event": "" if inbound.incident is None else inbound.incident.incident_type,
        "signature": "unsigned",
        "priority": "chatter",
    }
    priority = message_priority(inbound.incident.priority if inbound.incident else "")
    for route in router.message_routes:
        if not _message_matches(route, ctx):
            continue
        ROUTE_MATCHES.inc(route=route.name)
        for sink_name in route.sinks:
            if sink_name in planned:
                continue
            if sink_name == ctx.source:
                ROUTE_SKIPPED.inc(route=route.name, sink=sink_name, reason="origin")
                continue
            if ctx.destinations is not None and sink_name not in ctx.destinations:
                ROUTE_SKIPPED.inc(route=route.name, sink=sink_name, reason="not_chosen")
                continue
            sink = router.sinks.get(sink_name)
            if sink is None:
                ROUTE_SKIPPED.inc(route=route.name, sink=sink_name, reason="sink_disabled")
                continue
            try:
                result = MESSAGE_RENDERERS[route.translation](inbound, route.translation_options)
            except (FrameError, TranslationError) as exc:
                ROUTE_SKIPPED.inc(route=route.name, sink=sink_name, reason="translation")
                log.warning(
                    "translation_failed",
                    message=str(ctx.key),
                    route=route.name,
                    translation=route.translation,
                    reason=str(exc),
                )
                continue
            ident = delivery_id(ctx.key, sink.name)
            attributes = {**ident_attrs, "delivery_id": ident}
            attributes.update({k: str(v) for k, v in _attributes(result).items()})
            expires = (
                None
                if route.expire_after is None
                else ctx.received_at + timedelta(seconds=route.expire_after)
            )
            held = route.action == "hold" or (sink.live and not route.allow_unsigned_live)
            planned[sink_name] = PlannedDelivery(
                sink=sink.name,
                route=route.name,
                parts=result.parts,
                content_type=result.content_type,
                attributes=attributes,
                priority=priority,
                expires=expires,
                held=held,
            )
    return list(planned.values())


def _attributes(result: Rendered) -> Mapping[str, Any]:
    return result.attributes
