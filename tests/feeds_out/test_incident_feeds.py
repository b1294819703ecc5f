"""Incidents in the partner feeds, and the Atom feed checked against RFC 4287's schema.

The feed of a running daemon, with alerts and an incident a field unit sent over MQTT, is
validated with lxml's RELAX NG against the RFC's Appendix B schema (written in the RELAX NG XML
syntax beside this file), its Schematron rules checked by XPath, read by feedparser, and its
GeoJSON twin checked by the geojson library; the schema refuses broken feeds."""

from __future__ import annotations

import asyncio
import copy
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import feedparser
import geojson
import pytest
from lxml import etree

from adapters.atom.codec import parse_feed
from gateway.console.incidents import current_incidents
from tests.daemon.conftest import (
    CapFactory,
    load,
    poll_until,
    publish_all,
    running_daemon,
)
from tests.feeds_out.test_partner_feeds import _config, _get, _post, _tornado
from tests.helpers import Broker

SCHEMA = Path(__file__).resolve().parent / "schemas" / "atom-rfc4287.rng"
NS = {
    "a": "http://www.w3.org/2005/Atom",
    "georss": "http://www.georss.org/georss",
    "age": "http://purl.org/atompub/age/1.0",
    "x": "http://www.w3.org/1999/xhtml",
}


@pytest.fixture(scope="module")
def atom_schema() -> etree.RelaxNG:
    return etree.RelaxNG(etree.parse(str(SCHEMA)))


def check_atom(schema: etree.RelaxNG, body: bytes) -> list[str]:
    """What is wrong with an Atom document: the RELAX NG errors, then the RFC's Schematron
    rules (an author for every entry, here or in the feed; an alternate link or content)."""
    doc = etree.fromstring(body)
    if not schema.validate(doc):
        return [str(e) for e in schema.error_log]
    problems = []
    feed_author = bool(doc.xpath("a:author", namespaces=NS))
    for entry in doc.xpath("a:entry", namespaces=NS):
        ident = entry.findtext("a:id", namespaces=NS)
        if not feed_author and not entry.xpath("a:author or a:source/a:author", namespaces=NS):
            problems.append(f"{ident}: no author")
        alternate = "a:link[@rel='alternate'] or a:link[not(@rel)] or a:content"
        if not entry.xpath(alternate, namespaces=NS):
            problems.append(f"{ident}: no alternate link and no content")
    return problems


FIELD = '[[source]]\nname = "field"\ntype = "mqtt"\nkind = "incident"\ntopics = ["field/#"]\n'


def incident_json(ident: str, *, status: str = "active", later: float = 0) -> bytes:
    created = datetime.now(UTC).replace(microsecond=0)
    updated = (created + timedelta(seconds=later)).isoformat()
    return json.dumps(
        {
            "$schema": "borderlink:incident:1",
            "incidentTrackingIdentifier": ident,
            "incidentTypeCommonRegistryText": "hazmat",
            "incidentStatusCommonRegistryText": status,
            "location": {
                "latitude": 42.3314,
                "longitude": -83.0458,
                "civicAddressText": "Riverside",
            },
            "units": ["HZ2"],
            "notesText": "Chlorine smell near the water plant",
            "notesTextFr": "Odeur de chlore près de l'usine de traitement d'eau",
            "agencyIdentifier": "DET-FD",
            "incidentPriority": "urgent",
            "createdTimestamp": created.isoformat(),
            "lastUpdateTimestamp": updated,
        }
    ).encode()


class TestIncidentsInTheFeeds:
    """An incident heard from the field is an Atom entry and a GeoJSON point, filtered like
    the alerts, valid against RFC 4287's schema and RFC 7946's rules."""

    async def test_atom_geojson_filters_and_schema(
        self, mosquitto: Broker, tmp_path: Path, atom_schema: etree.RelaxNG
    ) -> None:
        config = load(_config(tmp_path, mosquitto, FIELD))
        async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
            field = daemon.sources["field"]
            await asyncio.wait_for(field.subscribed.wait(), 10)  # type: ignore[attr-defined]
            base = f"http://127.0.0.1:{daemon.http_port}"
            await _post(http, base, _tornado())
            await _post(http, base, CapFactory()(event="Hazmat", circle="42.33,-83.05 10"))
            await publish_all(mosquitto, [incident_json("DET-FD-0042")], topic="field/us")
            atom_url = f"{base}/feeds/alerts.atom"

            async def incidents(count: int) -> bool:
                now = daemon.clock.now()
                return len(await asyncio.to_thread(current_incidents, daemon.ledger, now)) == count

            await poll_until(lambda: incidents(1))
            status, body, _h = await _get(http, atom_url)
            assert status == 200
            assert check_atom(atom_schema, body) == []

            # A real feed parser reads the incident's entry.
            parsed = feedparser.parse(body)
            assert parsed.bozo == 0, parsed.get("bozo_exception")
            (entry,) = [e for e in parsed.entries if e.id.startswith("urn:borderlink:incident:")]
            assert "Incident: hazmat (active), Riverside" in entry.title
            assert "Incident : hazmat (active), Riverside" in entry.title
            assert "Chlorine smell" in entry.summary
            assert "Odeur de chlore" in entry.summary
            assert entry.where["type"] == "Point"
            assert entry.where["coordinates"] == (-83.0458, 42.3314)
            terms = {(t["label"], t["term"]) for t in entry.tags}
            assert {("kind", "incident"), ("priority", "urgent"), ("event", "hazmat")} <= terms
            doc = etree.fromstring(body)
            (expires,) = doc.xpath(
                "a:entry[starts-with(a:id, 'urn:borderlink:incident:')]/age:expires/text()",
                namespaces=NS,
            )
            assert datetime.fromisoformat(expires) > datetime.now(UTC)
            link = next(x for x in entry.links if x.rel == "alternate")
            assert link.type == "application/vnd.borderlink.incident+json"
            status, doc_body, _h = await _get(http, base + link.href)
            assert status == 200
            assert json.loads(doc_body)["incidentTrackingIdentifier"] == "DET-FD-0042"
            # An incident is not a CAP alert: its key serves no CAP document.
            key = link.href.removeprefix("/feeds/incidents/").removesuffix(".json")
            assert (await _get(http, f"{base}/feeds/alerts/{key}.cap"))[0] == 404

            # Filters: kind, event, place, language, country.
            async def ids(query: str) -> set[str]:
                status, body, _h = await _get(http, f"{atom_url}?{query}")
                assert status == 200
                assert check_atom(atom_schema, body) == []
                return {e.id.split(":", 3)[2] for e in feedparser.parse(body).entries}

            assert await ids("kind=incidents") == {"incident"}
            assert await ids("kind=alerts") == {"alert"}
            assert await ids("event=hazmat") == {"alert", "incident"}
            assert await ids("point=42.33,-83.04&radius_km=1") == {"alert", "incident"}
            assert await ids("kind=incidents&bbox=-80,40,-70,45") == set()
            assert await ids("country=ca") == {"alert"}  # an incident has no country
            french = feedparser.parse((await _get(http, f"{atom_url}?kind=incidents&lang=fr"))[1])
            assert "Odeur de chlore" in french.entries[0].summary
            assert "Chlorine" not in french.entries[0].summary
            bad = await _get(http, f"{atom_url}?kind=people")
            assert bad[0] == 400
            assert "kind=alerts or kind=incidents" in json.loads(bad[1])["message"]

            # GeoJSON: a valid FeatureCollection with the incident as a Point.
            status, body, _h = await _get(http, f"{base}/feeds/alerts.geojson")
            collection = geojson.loads(body.decode())
            assert collection.is_valid, collection.errors()
            (point,) = [f for f in collection["features"] if f["properties"].get("kind")]
            assert point["geometry"] == {"type": "Point", "coordinates": [-83.0458, 42.3314]}
            assert point["properties"]["priority"] == "urgent"
            assert point["properties"]["notes"]["fr"].startswith("Odeur")
            only = json.loads((await _get(http, f"{base}/feeds/alerts.geojson?kind=incidents"))[1])
            assert len(only["features"]) == 1

            # Closed: out of the feeds.
            await publish_all(
                mosquitto,
                [incident_json("DET-FD-0042", status="closed", later=60)],
                topic="field/us",
            )
            await poll_until(lambda: incidents(0))
            after = feedparser.parse((await _get(http, atom_url))[1]).entries
            assert [e.id.split(":", 3)[2] for e in after] == ["alert", "alert"]


def _feed_of_incident() -> bytes:
    """An Atom feed with an incident entry as the daemon writes it (no daemon needed)."""
    from gateway.console.incidents import IncidentRow  # noqa: PLC0415 - test-only import
    from gateway.partner_feeds import atom_document  # noqa: PLC0415
    from gateway.translate.incident import incident_from_json  # noqa: PLC0415

    incident = incident_from_json(incident_json("DET-FD-0001"))
    row = IncidentRow("incident:DET-FD,DET-FD-0001,x", incident, "field", "field/us",
                      incident.updated, 3.0, 1)  # fmt: skip
    return atom_document([], title="EOC", self_url="http://127.0.0.1/f", lang="", incidents=[row])


def _remove(path: str) -> Callable[[etree._Element], None]:
    def change(doc: etree._Element) -> None:
        (node,) = doc.xpath(path, namespaces=NS)
        node.getparent().remove(node)

    return change


def _set_text(path: str, text: str) -> Callable[[etree._Element], None]:
    def change(doc: etree._Element) -> None:
        (node,) = doc.xpath(path, namespaces=NS)
        node.text = text

    return change


def _add(path: str, tag: str) -> Callable[[etree._Element], None]:
    def change(doc: etree._Element) -> None:
        (node,) = doc.xpath(path, namespaces=NS)
        etree.SubElement(node, tag)

    return change


def _both(*changes: Callable[[etree._Element], None]) -> Callable[[etree._Element], None]:
    def change(doc: etree._Element) -> None:
        for one in changes:
            one(doc)

    return change


class TestSchemaRefusesBrokenFeeds:
    """The check is real: each way of breaking a valid feed is found."""

    def test_our_incident_feed_is_valid(self, atom_schema: etree.RelaxNG) -> None:
        body = _feed_of_incident()
        assert check_atom(atom_schema, body) == []
        doc = etree.fromstring(body)
        assert doc.xpath("a:entry/georss:point/text()", namespaces=NS) == ["42.3314 -83.0458"]

    def test_a_partners_atom_source_passes_incidents_over(self) -> None:
        entries, skipped = parse_feed(_feed_of_incident(), base_url="http://127.0.0.1/f")
        assert (entries, skipped) == ([], 0)

    @pytest.mark.parametrize(
        ("change", "says"),
        [
            (_remove("a:entry/a:id"), "entry"),
            (_remove("a:entry/a:updated"), "entry"),
            (_remove("a:title"), "feed"),
            (_set_text("a:entry/a:updated", "yesterday"), "updated"),
            (_set_text("a:entry/a:published", "2026-12-04 07:00"), "published"),
            (_add("a:entry", "{http://www.w3.org/2005/Atom}where"), "entry"),
            (_add("a:entry/a:title", "{http://www.w3.org/1999/xhtml}div"), "title"),
            (_both(_remove("a:author"), _remove("a:entry/a:author")), "no author"),
            (_remove("a:entry/a:link"), "no alternate link"),
        ],
    )
    def test_broken_feed_is_refused(
        self, atom_schema: etree.RelaxNG, change: Callable[[etree._Element], None], says: str
    ) -> None:
        doc = etree.fromstring(_feed_of_incident())
        broken = copy.deepcopy(doc)
        change(broken)
        problems = check_atom(atom_schema, etree.tostring(broken))
        assert problems, "a broken feed passed the check"
        assert any(says in p for p in problems), problems
