"""The console's live event stream (``/events``, server-sent events) as browsers use it: every
page holds one open and closes it when the operator moves on."""

from __future__ import annotations

import logging
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from gateway.console.accounts import add_account
from gateway.console.app import CONSOLE_KEY
from gateway.http import create_app
from tests.console_web.test_incident_reports import MACHINE, _sign_in
from tests.daemon.conftest import CapFactory, daemon_toml, load, running_daemon
from tests.feeds.conftest import wait_for
from tests.helpers import Broker

cap = CapFactory(sender="events@borderlink.invalid")


async def _leave_a_page(base: str, app: web.Application, http: aiohttp.ClientSession) -> None:
    """Open the event stream as a page does, close it, then make a change it would carry."""
    feed = app[CONSOLE_KEY].feed
    await _sign_in(http, base, "alice", "alice-pass-1234")
    stream = await http.get(f"{base}/events")
    assert stream.status == 200
    assert await stream.content.readline() == b"retry: 2000\n"
    await wait_for(lambda: feed.subscribers == 1)
    stream.close()  # the operator opens another page
    # A change makes the console write to the stream nobody reads any more.
    async with http.post(
        f"{base}/api/v1/alerts", data=cap(), headers={"Authorization": f"Bearer {MACHINE}"}
    ) as resp:
        assert resp.status == 202, await resp.text()
    await wait_for(lambda: feed.subscribers == 0)


class TestLeavingAPage:
    """A stream the browser closed ends quietly: no 'Error handling request' traceback in the
    log for each page an operator leaves."""

    async def test_a_closed_stream_ends_without_an_error(
        self, mosquitto: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
    ) -> None:
        users = tmp_path / "users"
        add_account(users, "alice", "operator", "alice-pass-1234")
        extra = f'[console]\nusers_file = "{users}"\nsecret_file = "{tmp_path / "secret"}"\n'
        config = load(daemon_toml(tmp_path, mosquitto.url, extra=extra, token=MACHINE))
        caplog.set_level(logging.ERROR, logger="aiohttp.server")
        jar = aiohttp.CookieJar(unsafe=True)
        async with running_daemon(config) as daemon, aiohttp.ClientSession(cookie_jar=jar) as http:
            # Served as the daemon serves it: aiohttp does not cancel a handler whose client
            # went away (its test server does), so the handler meets the closed stream itself.
            app = create_app(daemon)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            try:
                await web.TCPSite(runner, "127.0.0.1", 0).start()
                await _leave_a_page(f"http://127.0.0.1:{runner.addresses[0][1]}", app, http)
            finally:
                await runner.cleanup()
        errors = [r for r in caplog.records if r.name == "aiohttp.server"]
        assert errors == [], [r.getMessage() for r in errors]
