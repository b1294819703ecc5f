"""The HTTP API of a running daemon: tokens, alerts, holds, health, metrics, OpenAPI."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import quote

import aiohttp
import pytest

from gateway import simulators
from gateway.errors import ConfigError
from gateway.metrics import INPUT_REJECTED
from tests.daemon import fake_simulator
from tests.daemon.conftest import (
    CapFactory,
    daemon_toml,
    load,
    poll_until,
    running_daemon,
    subscriber,
)
from tests.helpers import Broker

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

HOLD_ROUTES = (
    '[[route]]\nname = "all-cap"\nsinks = ["out-cap"]\n\n'
    '[[route]]\nname = "held-json"\nsinks = ["out-json"]\naction = "hold"\n'
)


class TestHttpApi:
    """Writes need a bearer token; alerts go through the same pipeline as MQTT input."""

    async def test_post_get_raw_and_errors(
        self, mosquitto: Broker, tmp_path: Path, cap: CapFactory
    ) -> None:
        config = load(daemon_toml(tmp_path, mosquitto.url))
        raw = cap(severity="Severe")
        key = CapFactory.key_of(raw)
        async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{daemon.http_port}"
            before = INPUT_REJECTED.value(component="http", reason="unauthorized")
            async with http.post(f"{base}/api/v1/alerts", data=raw) as resp:
                assert resp.status == 401
            async with http.post(
                f"{base}/api/v1/alerts", data=raw, headers={"Authorization": "Bearer wrong"}
            ) as resp:
                assert resp.status == 401
            assert INPUT_REJECTED.value(component="http", reason="unauthorized") == before + 2

            async with http.post(f"{base}/api/v1/alerts", data=raw, headers=AUTH) as resp:
                assert resp.status == 202
                body = await resp.json()
            assert body["key"] == key
            assert body["decision"] == "new"
            assert {d["sink"] for d in body["deliveries"]} == {"out-cap", "out-json"}

            async with http.post(f"{base}/api/v1/alerts", data=raw, headers=AUTH) as resp:
                assert resp.status == 202
                assert (await resp.json())["decision"] == "duplicate"

            bad = cap().replace(b"<urgency>Expected</urgency>", b"<urgency>Soon</urgency>")
            async with http.post(f"{base}/api/v1/alerts", data=bad, headers=AUTH) as resp:
                assert resp.status == 400
                err = await resp.json()
            assert err["error"].startswith("parse_")
            assert "urgency" in err["message"]

            async with http.post(f"{base}/api/v1/alerts", data=b"", headers=AUTH) as resp:
                assert resp.status == 400

            async with http.get(f"{base}/api/v1/alerts/{quote(key, safe='')}") as resp:
                assert resp.status == 200
                detail = await resp.json()
            assert detail["key"] == key
            assert len(detail["deliveries"]) == 2
            assert any(j["event"] == "admitted" for j in detail["journal"])

            async with http.get(f"{base}/api/v1/alerts/{quote(key, safe='')}/raw") as resp:
                assert resp.status == 200
                assert await resp.read() == raw

            async with http.get(f"{base}/api/v1/alerts/nope") as resp:
                assert resp.status == 400
            missing = quote("a,b,2020-01-01T00:00:00-00:00", safe="")
            async with http.get(f"{base}/api/v1/alerts/{missing}") as resp:
                assert resp.status == 404

            async with http.get(f"{base}/api/v1/alerts?active=1") as resp:
                listed = await resp.json()
            assert [a["key"] for a in listed["alerts"]] == [key]

            async with http.get(f"{base}/api/v1/openapi.json") as resp:
                spec = await resp.json()
            assert spec["openapi"].startswith("3.")
            assert "/api/v1/holds/{id}/approve" in spec["paths"]

    async def test_body_too_large_is_refused(
        self, mosquitto: Broker, tmp_path: Path, cap: CapFactory
    ) -> None:
        path = daemon_toml(tmp_path, mosquitto.url)
        text = path.read_text().replace("[http]\n", "[http]\nmax_body_bytes = 2048\n")
        path.write_text(text)
        config = load(path)
        async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{daemon.http_port}"
            before = INPUT_REJECTED.value(component="http", reason="too_large")
            async with http.post(
                f"{base}/api/v1/alerts", data=b"<a>" + b"x" * 5000 + b"</a>", headers=AUTH
            ) as resp:
                assert resp.status == 413
            assert INPUT_REJECTED.value(component="http", reason="too_large") == before + 1
            alerts = daemon.ledger.alerts()
        assert alerts == []

    async def test_holds_approve_and_reject(
        self, mosquitto: Broker, tmp_path: Path, cap: CapFactory
    ) -> None:
        config = load(daemon_toml(tmp_path, mosquitto.url, routes=HOLD_ROUTES))
        first = cap(severity="Severe")
        second = cap(severity="Severe")
        async with (
            subscriber(mosquitto, ["out/json/#"]) as out,
            running_daemon(config) as daemon,
            aiohttp.ClientSession() as http,
        ):
            base = f"http://127.0.0.1:{daemon.http_port}"
            for raw in (first, second):
                async with http.post(f"{base}/api/v1/alerts", data=raw, headers=AUTH) as resp:
                    assert resp.status == 202
            async with http.get(f"{base}/api/v1/holds") as resp:
                holds = (await resp.json())["holds"]
            assert [h["alert_key"] for h in holds] == [
                CapFactory.key_of(first),
                CapFactory.key_of(second),
            ]
            one, two = holds[0]["id"], holds[1]["id"]
            async with http.post(f"{base}/api/v1/holds/{one}/approve") as resp:
                assert resp.status == 401
            async with http.post(f"{base}/api/v1/holds/{one}/approve", headers=AUTH) as resp:
                assert resp.status == 200
            async with http.post(
                f"{base}/api/v1/holds/{two}/reject", headers=AUTH, json={"reason": "not ours"}
            ) as resp:
                assert resp.status == 200
                assert (await resp.json())["state"] == "failed"
            async with http.post(f"{base}/api/v1/holds/{two}/approve", headers=AUTH) as resp:
                assert resp.status == 409
            async with http.post(f"{base}/api/v1/holds/999999/approve", headers=AUTH) as resp:
                assert resp.status == 404
            async with http.post(f"{base}/api/v1/holds/x/approve", headers=AUTH) as resp:
                assert resp.status == 400
            await out.wait_for(lambda: len(out.messages) == 1)
        assert out.messages[0].alert_key == CapFactory.key_of(first)

    async def test_healthz_and_metrics(
        self, mosquitto: Broker, tmp_path: Path, cap: CapFactory
    ) -> None:
        # A required source that can never connect turns /healthz red.
        extra = (
            '[[source]]\nname = "feed"\ntype = "mqtt"\nrequired = true\n'
            'url = "mqtt://127.0.0.1:9"\ntopics = ["x/y"]\n'
        )
        config = load(daemon_toml(tmp_path, mosquitto.url, extra=extra))
        async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{daemon.http_port}"
            async with http.post(
                f"{base}/api/v1/alerts", data=cap(severity="Severe"), headers=AUTH
            ) as resp:
                assert resp.status == 202
            health: dict[str, Any] = {}

            async def red() -> bool:
                # The source counts as running until its first connection attempt fails:
                # wait for the state, do not race it.
                async with http.get(f"{base}/healthz") as resp:
                    health.update(await resp.json())
                    return resp.status == 503

            await poll_until(red)
            assert health["status"] == "degraded"
            feed = next(s for s in health["sources"] if s["source"] == "feed")
            assert feed["required"] is True
            assert feed["healthy"] is False
            async with http.get(f"{base}/metrics") as resp:
                text = await resp.text()
        for name in (
            "borderlink_received_total",
            "borderlink_admitted_total",
            "borderlink_outbox_entries",
            "borderlink_source_last_message_timestamp_seconds",
            "borderlink_input_rejected_total",
        ):
            assert f"# TYPE {name}" in text
        assert 'borderlink_received_total{source="http"}' in text


class TestSimulators:
    """[[simulator]] blocks are opened before the adapters and closed after them."""

    async def test_simulator_lifecycle(
        self, mosquitto: Broker, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setitem(simulators.REGISTRY, "fake", "tests.daemon.fake_simulator:simulator")
        fake_simulator.EVENTS.clear()
        extra = '[[simulator]]\ntype = "fake"\nlabel = "one"\n'
        config = load(daemon_toml(tmp_path, mosquitto.url, extra=extra))
        async with running_daemon(config):
            assert fake_simulator.EVENTS == ["open one"]
        assert fake_simulator.EVENTS == ["open one", "close one"]

    def test_missing_module_is_named(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setitem(simulators.REGISTRY, "ghost", "hardware.no_such_module:simulator")
        with pytest.raises(ConfigError, match=r"hardware\.no_such_module"):
            simulators.load_simulator("ghost")


class TestHttpHostile:
    """Hostile bodies posted to the API are refused with 400, counted, and change nothing."""

    async def test_hostile_bodies(self, mosquitto: Broker, tmp_path: Path, cap: CapFactory) -> None:
        config = load(daemon_toml(tmp_path, mosquitto.url))
        bodies = [
            b"\xff\xfe\x00<",
            b'<?xml version="1.0"?><!DOCTYPE lol [<!ENTITY a "aaaa"><!ENTITY b "&a;&a;">]>'
            b"<alert>&b;</alert>",
            b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2" '
            b'xmlns:xi="http://www.w3.org/2001/XInclude"><xi:include href="/etc/passwd"/></alert>',
            b"<" * 5000,
            cap().replace(b"<sent>", b"<sent>yesterday"),
        ]
        async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{daemon.http_port}"
            before = sum(INPUT_REJECTED._values.values())
            for body in bodies:
                async with http.post(f"{base}/api/v1/alerts", data=body, headers=AUTH) as resp:
                    assert resp.status == 400
                    error = await resp.json()
                    assert error["error"]
                    assert error["message"]
            after = sum(INPUT_REJECTED._values.values())
            alerts = daemon.ledger.alerts()
            invalid = daemon.ledger.invalid_records()
        assert after - before == len(bodies)
        assert alerts == []
        assert len(invalid) == len(bodies)


class TestJsonErrors:
    """Every error answer is JSON, as docs/http-api.md says; limits are checked, not bent."""

    async def test_unknown_paths_methods_and_limits(
        self, mosquitto: Broker, tmp_path: Path
    ) -> None:
        config = load(daemon_toml(tmp_path, mosquitto.url))
        async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{daemon.http_port}"
            bad_limits = INPUT_REJECTED.value(component="http", reason="bad_limit")
            for path, status, error in (
                ("/api/v1/nope", 404, "not_found"),
                ("/nope", 404, "not_found"),
                ("/api/v1/alerts?limit=0", 400, "bad_limit"),
                ("/api/v1/alerts?limit=5000", 400, "bad_limit"),
                ("/api/v1/alerts?limit=x", 400, "bad_limit"),
            ):
                async with http.get(base + path) as resp:
                    assert resp.status == status, path
                    assert resp.content_type == "application/json", path
                    assert (await resp.json())["error"] == error, path
            # A bad limit is bad input like any other: counted.
            assert INPUT_REJECTED.value(component="http", reason="bad_limit") == bad_limits + 3
            # Without a [[partner]] there are no feeds, and the answer says so (not "the API
            # is under /api/v1", which would send a partner's reader looking in vain).
            async with http.get(f"{base}/feeds/alerts.atom") as resp:
                assert resp.status == 404
                refused = await resp.json()
            assert refused["error"] == "not_found"
            assert "no [[partner]]" in refused["message"]
            # "/" is the console: a person without a session is sent to sign in.
            async with http.get(base + "/", allow_redirects=False) as resp:
                assert resp.status == 302
                assert resp.headers["Location"].startswith("/login?next=")
            async with http.delete(f"{base}/api/v1/alerts") as resp:
                assert resp.status == 405
                body = await resp.json()
                assert body["error"] == "method_not_allowed"
                assert "DELETE" in body["message"]
            async with http.get(f"{base}/api/v1/alerts?limit=1") as resp:
                assert resp.status == 200
