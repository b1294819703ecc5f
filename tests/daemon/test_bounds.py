"""Bounded doors: request bodies held at once, documents parsed at once."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import datetime
from pathlib import Path

import aiohttp
import pytest

from gateway.adapter import Received
from gateway.errors import ConfigError
from gateway.http import ByteBudget
from gateway.intake import Intake, Outcome, Screened
from gateway.metrics import INPUT_REJECTED
from tests.daemon.conftest import CapFactory, daemon_toml, load, poll_until, running_daemon
from tests.helpers import Broker

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}


class TestByteBudget:
    """Bodies wait for their share; never more than the budget is held at once."""

    async def test_never_more_than_the_budget(self) -> None:
        budget = ByteBudget(3000)
        held = 0
        peak = 0

        async def one(size: int) -> None:
            nonlocal held, peak
            share = min(size, budget.total)  # a body larger than the budget takes all of it
            async with budget.take(size):
                held += share
                peak = max(peak, held)
                await asyncio.sleep(0.01)
                held -= share

        await asyncio.gather(*(one(1000) for _ in range(20)), one(5000))
        assert peak <= 3000
        assert budget.free == 3000

    def test_budget_below_the_largest_body_is_refused(self, tmp_path: Path) -> None:
        path = daemon_toml(tmp_path, "mqtt://127.0.0.1:1")
        path.write_text(
            path.read_text().replace(
                'token_file = "token"\n',
                'token_file = "token"\nmax_body_bytes = 2000000\nmax_inflight_bytes = 1000000\n',
            )
        )
        with pytest.raises(ConfigError, match=r"http.max_inflight_bytes: 1000000 is below"):
            load(path)


class TestParseSlots:
    """At most max_concurrent_parses documents are screened at once, whatever arrives."""

    async def test_concurrent_posts(
        self, mosquitto: Broker, tmp_path: Path, cap: CapFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        path = daemon_toml(tmp_path, mosquitto.url)
        path.write_text(
            path.read_text().replace("[gateway]\n", "[gateway]\nmax_concurrent_parses = 2\n")
        )
        config = load(path)
        assert config.gateway.max_concurrent_parses == 2
        lock = threading.Lock()
        running = 0
        peak = 0
        original = Intake.screen

        def slow(
            self: Intake, raw: bytes, source: str, received_at: datetime
        ) -> Outcome | Screened:
            nonlocal running, peak
            with lock:
                running += 1
                peak = max(peak, running)
            time.sleep(0.05)  # the worker thread, standing in for a large alert's parse
            try:
                return original(self, raw, source, received_at)
            finally:
                with lock:
                    running -= 1

        monkeypatch.setattr(Intake, "screen", slow)
        async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{daemon.http_port}/api/v1/alerts"

            async def post() -> int:
                async with http.post(url, data=cap(), headers=AUTH) as resp:
                    return resp.status

            statuses = await asyncio.gather(*(post() for _ in range(12)))
            assert statuses == [202] * 12
            # the MQTT input shares the same slots
            outcome = await daemon.ingest(Received(raw=cap(), source="mqtt"))
            assert outcome.accepted
        assert peak == 2


def _http_limits(tmp_path: Path, broker: Broker, text: str) -> Path:
    path = daemon_toml(tmp_path, broker.url)
    path.write_text(
        path.read_text().replace('token_file = "token"\n', f'token_file = "token"\n{text}')
    )
    return path


class TestSlowAndManyClients:
    """A client that trickles its headers or its body is cut off; connections beyond the
    limit are closed at once; the API keeps answering."""

    async def test_slow_headers_body_and_too_many_connections(
        self, mosquitto: Broker, tmp_path: Path, cap: CapFactory
    ) -> None:
        path = _http_limits(
            tmp_path, mosquitto, "header_timeout = 0.5\nbody_timeout = 0.5\nmax_connections = 4\n"
        )
        config = load(path)
        before = {
            r: INPUT_REJECTED.value(component="http", reason=r)
            for r in ("body_timeout", "too_many_connections")
        }
        async with running_daemon(config) as daemon:
            port = daemon.http_port
            assert port is not None
            # Headers trickled, never finished: closed after the header timeout.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            await writer.drain()
            started = time.monotonic()
            assert await asyncio.wait_for(reader.read(), 10) == b""  # closed by the server
            assert time.monotonic() - started < 5
            writer.close()
            # A body announced but not sent: 408.
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(
                b"POST /api/v1/alerts HTTP/1.1\r\nHost: x\r\n"
                + f"Authorization: Bearer {TOKEN}\r\n".encode()
                + b"Content-Length: 5000\r\n\r\n<alert"
            )
            await writer.drain()
            head = await asyncio.wait_for(reader.readline(), 10)
            assert b" 408 " in head
            writer.close()
            # Beyond max_connections: closed at once; the ones within still work.
            held = [await asyncio.open_connection("127.0.0.1", port) for _ in range(4)]
            extra_reader, extra_writer = await asyncio.open_connection("127.0.0.1", port)
            assert await asyncio.wait_for(extra_reader.read(), 10) == b""
            extra_writer.close()
            for _r, w in held:
                w.close()

            async def healthy() -> bool:
                async with (
                    aiohttp.ClientSession() as http,
                    http.get(f"http://127.0.0.1:{port}/healthz") as resp,
                ):
                    return resp.status == 200

            await poll_until(healthy)
        for reason, count in before.items():
            assert INPUT_REJECTED.value(component="http", reason=reason) > count, reason
