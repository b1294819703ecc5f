"""The partner feeds through a running daemon: tokens and rate limits, filters, Atom read by a
real feed parser (feedparser), GeoJSON checked by a GeoJSON library, CAP byte for byte,
conditional GET."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import feedparser
import geojson

from adapters.demo.codec import bundled_templates, render
from tests.daemon.conftest import CapFactory, daemon_toml, load, running_daemon
from tests.helpers import Broker

MACHINE = "test-token-0123456789abcdef"
PARTNER = "partner-token-0123456789abcdef"
SLOW = "slow-partner-token-0123456789"


def _config(tmp: Path, broker: Broker, more: str = "") -> Path:
    """Two partners (one allowed 3 requests a minute), a file sink, and ``more``."""
    (tmp / "partner").write_text(PARTNER + "\n", encoding="utf-8")
    (tmp / "slow").write_text(SLOW + "\n", encoding="utf-8")
    extra = (
        '[[partner]]\nname = "wayne-eoc"\ntoken_file = "partner"\n\n'
        '[[partner]]\nname = "slow"\ntoken_file = "slow"\nrequests_per_minute = 3\n'
        f"\n{more}"
    )
    sinks = '[[sink]]\nname = "out"\ntype = "file"\npath = "out"\n'
    routes = '[[route]]\nname = "all"\nsinks = ["out"]\n'
    return daemon_toml(tmp, broker.url, sinks=sinks, routes=routes, extra=extra)


def _tornado() -> bytes:
    template = next(t for t in bundled_templates() if t.name == "01-ca-tornado-warning")
    return render(template, now=datetime.now(UTC), serial=uuid.uuid4().hex[:8],
                  lifetime=timedelta(hours=1), earlier={})  # fmt: skip


async def _post(http: aiohttp.ClientSession, base: str, raw: bytes) -> str:
    headers = {"Authorization": f"Bearer {MACHINE}"}
    async with http.post(f"{base}/api/v1/alerts", data=raw, headers=headers) as resp:
        assert resp.status == 202
        key: str = (await resp.json())["key"]
        return key


async def _get(
    http: aiohttp.ClientSession, url: str, token: str | None = PARTNER, **headers: str
) -> tuple[int, bytes, Any]:
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    async with http.get(url, headers=headers) as resp:
        return resp.status, await resp.read(), resp.headers


class TestPartnerFeeds:
    async def test_feeds_filters_and_formats(self, mosquitto: Broker, tmp_path: Path) -> None:
        config = load(_config(tmp_path, mosquitto))
        async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{daemon.http_port}"
            tornado = _tornado()
            keys = {
                "tornado": await _post(http, base, tornado),
                "circle": await _post(http, base, CapFactory()(
                    event="Hazmat", circle="42.33,-83.05 10", severity="Severe")),
                "codes": await _post(http, base, CapFactory()(event="Winter Storm")),
            }  # fmt: skip
            atom_url = f"{base}/feeds/alerts.atom"

            # Only partners read, by header or by ?token=.
            assert (await _get(http, atom_url, token=None))[0] == 401
            assert (await _get(http, atom_url, token="nope-" * 4))[0] == 401
            status, body, _h = await _get(http, f"{atom_url}?token={PARTNER}", token=None)
            assert status == 200

            parsed = feedparser.parse(body)
            assert parsed.bozo == 0, parsed.get("bozo_exception")
            assert len(parsed.entries) == 3
            by_id = {e.id.removeprefix("urn:borderlink:alert:"): e for e in parsed.entries}
            entry = by_id[keys["tornado"]]
            assert "tornado warning in effect" in entry.title
            assert "avertissement de tornade" in entry.title  # both languages
            assert entry.where["type"] == "Polygon"
            enclosure = next(link for link in entry.links if link.rel == "enclosure")
            assert enclosure.type == "application/common-alerting-protocol+xml"
            assert by_id[keys["codes"]].get("where") is None  # geocodes only: no shape

            # The CAP behind the enclosure is the alert, byte for byte.
            status, cap, _h = await _get(http, base + enclosure.href)
            assert (status, cap) == (200, tornado)

            # Filters.
            windsor = "-83.3,42.0,-82.4,42.5"
            near = feedparser.parse((await _get(http, f"{atom_url}?bbox={windsor}"))[1])
            assert {e.id.rsplit(":", 1)[-1] for e in near.entries} == {
                k.rsplit(":", 1)[-1] for k in (keys["tornado"], keys["circle"])
            }
            far = feedparser.parse(
                (await _get(http, f"{atom_url}?point=49.0,-123.0&radius_km=50"))[1]
            )
            assert far.entries == []
            us = feedparser.parse((await _get(http, f"{atom_url}?country=us"))[1])
            assert len(us.entries) == 2
            french = feedparser.parse((await _get(http, f"{atom_url}?lang=fr&event=tornad"))[1])
            (only,) = french.entries
            assert "avertissement de tornade" in only.title
            assert "tornado warning in effect" not in only.title
            status, body, _h = await _get(http, f"{atom_url}?bbox=1,2,3")
            assert status == 400
            assert "bbox=minlon,minlat,maxlon,maxlat" in json.loads(body)["message"]

            # GeoJSON: valid, longitude first, circles as polygons, geocodes kept.
            status, body, _h = await _get(http, f"{base}/feeds/alerts.geojson")
            collection = geojson.loads(body.decode())
            assert collection.is_valid, collection.errors()
            features = {f["id"]: f for f in collection["features"]}
            ring = features[keys["tornado"]]["geometry"]["coordinates"][0][0]
            assert ring[0] == [-83.15, 42.05]
            assert ring[0] == ring[-1]
            circle = features[keys["circle"]]["geometry"]["coordinates"][0][0]
            assert len(circle) == 33
            assert features[keys["codes"]]["geometry"] is None
            assert "SAME=036001" in features[keys["codes"]]["properties"]["geocodes"]

            # Conditional GET: nothing changed, 304; a new alert, a new ETag.
            status, _b, headers = await _get(http, atom_url)
            etag = headers["ETag"]
            assert "Last-Modified" in headers
            assert (await _get(http, atom_url, **{"If-None-Match": etag}))[0] == 304
            await _post(http, base, CapFactory()(event="Another"))
            status, _b, headers = await _get(http, atom_url, **{"If-None-Match": etag})
            assert status == 200
            assert headers["ETag"] != etag

            # A partner beyond its requests a minute waits.
            statuses = [(await _get(http, atom_url, token=SLOW))[0] for _ in range(4)]
            assert statuses == [200, 200, 200, 429]
            assert int((await _get(http, atom_url, token=SLOW))[2]["Retry-After"]) >= 1
            missing = quote("a@b,c,2026-01-01T00:00:00-00:00", safe="")
            assert (await _get(http, f"{base}/feeds/alerts/{missing}.cap"))[0] == 404
