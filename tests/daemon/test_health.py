"""/healthz follows the health of required sources; components add HTTP routes."""

from __future__ import annotations

from pathlib import Path

import aiohttp
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from gateway import adapter
from gateway.http import create_app
from tests.daemon import fake_feed
from tests.daemon.conftest import daemon_toml, load, running_daemon
from tests.helpers import Broker

FEEDS = (
    '[[source]]\nname = "feed-a"\ntype = "fake-feed"\nrequired = true\n\n'
    '[[source]]\nname = "feed-b"\ntype = "fake-feed"\n'
)


class TestHealthz:
    """A stale required source turns /healthz to 503; an optional one does not."""

    async def test_required_source_health(
        self, mosquitto: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(adapter.REGISTRY, "fake-feed", "tests.daemon.fake_feed:from_context")
        fake_feed.STATE.clear()
        config = load(daemon_toml(tmp_path, mosquitto.url, extra=FEEDS))
        async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{daemon.http_port}/healthz"
            async with http.get(url) as resp:
                assert resp.status == 200
            fake_feed.STATE["feed-b"] = False  # optional: still fine
            async with http.get(url) as resp:
                assert resp.status == 200
                body = await resp.json()
            b = next(s for s in body["sources"] if s["source"] == "feed-b")
            assert b["healthy"] is False
            assert b["streams"][0]["detail"] == "no heartbeat for 80 s"
            fake_feed.STATE["feed-a"] = False  # required: red
            async with http.get(url) as resp:
                assert resp.status == 503
                assert (await resp.json())["status"] == "degraded"
            fake_feed.STATE["feed-a"] = True
            async with http.get(url) as resp:
                assert resp.status == 200


class _Component:
    def __init__(self) -> None:
        self.calls = 0

    def http_routes(self) -> list[web.RouteDef]:
        async def hello(_request: web.Request) -> web.Response:
            self.calls += 1
            return web.json_response({"hello": "links"})

        return [web.get("/api/v1/links", hello)]


class TestExtensionRoutes:
    """Components that provide http_routes() are served by the daemon's app."""

    async def test_component_routes(
        self, mosquitto: Broker, tmp_path: Path
    ) -> None:
        config = load(daemon_toml(tmp_path, mosquitto.url))
        async with running_daemon(config) as daemon:
            component = _Component()
            daemon.components.append(component)
            async with TestClient(TestServer(create_app(daemon))) as client:
                resp = await client.get("/api/v1/links")
                assert resp.status == 200
                assert await resp.json() == {"hello": "links"}
        assert component.calls == 1
