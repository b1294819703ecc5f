"""The console in French, as an operator in New Brunswick or Quebec chooses it: the words of
the pages are French; only alert content (and CAP's own code values) stays as it came."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import aiohttp

from gateway.console.accounts import add_account
from hardware.feed_alerts import FEED_ALERTS, make_live
from tests.console_web.test_incident_reports import _sign_in
from tests.daemon.conftest import daemon_toml, load, poll_until, publish_all, running_daemon
from tests.helpers import Broker


class TestComposeInFrench:
    """The compose form's own labels follow the chosen language."""

    async def test_profile_and_broadcast_labels(self, mosquitto: Broker, tmp_path: Path) -> None:
        users = tmp_path / "users"
        add_account(users, "alice", "operator", "alice-pass-1234")
        extra = f'[console]\nusers_file = "{users}"\nsecret_file = "{tmp_path / "secret"}"\n'
        config = load(daemon_toml(tmp_path, mosquitto.url, extra=extra))
        jar = aiohttp.CookieJar(unsafe=True)
        async with running_daemon(config) as daemon, aiohttp.ClientSession(cookie_jar=jar) as http:
            base = f"http://127.0.0.1:{daemon.http_port}"
            await _sign_in(http, base, "alice", "alice-pass-1234")
            async with http.get(f"{base}/compose") as resp:
                english = await resp.text()
            async with http.get(f"{base}/lang/fr?next=/compose") as resp:
                assert resp.status == 200
                french = await resp.text()
        for words in ("CAP-CP (Canada: English + French)", "IPAWS (United States)",
                      "Broadcast Immediately / EAS-Must-Carry"):  # fmt: skip
            assert words in english
            assert words not in french
        assert "CAP-CP (Canada : anglais et français)" in french
        assert "IPAWS (États-Unis)" in french
        assert "Diffusion immédiate / EAS-Must-Carry" in french


class TestBoardInFrench:
    """A bilingual alert is on the French board in its French block's words."""

    async def test_board_rows_in_the_consoles_language(
        self, mosquitto: Broker, tmp_path: Path
    ) -> None:
        users = tmp_path / "users"
        add_account(users, "alice", "operator", "alice-pass-1234")
        extra = f'[console]\nusers_file = "{users}"\nsecret_file = "{tmp_path / "secret"}"\n'
        config = load(daemon_toml(tmp_path, mosquitto.url, extra=extra))
        tornado = (FEED_ALERTS / "naad" / "eccc-tornado-warning-on.xml").read_bytes()
        live = make_live(tornado, now=datetime.now(UTC)).raw
        jar = aiohttp.CookieJar(unsafe=True)
        async with running_daemon(config) as daemon, aiohttp.ClientSession(cookie_jar=jar) as http:
            await publish_all(mosquitto, [live])
            await poll_until(lambda: _true(bool(daemon.ledger.active(datetime.now(UTC)))))
            base = f"http://127.0.0.1:{daemon.http_port}"
            await _sign_in(http, base, "alice", "alice-pass-1234")
            async with http.get(f"{base}/") as resp:
                english = await resp.text()
            async with http.get(f"{base}/lang/fr?next=/") as resp:
                french = await resp.text()
            async with http.get(f"{base}/board/rows") as resp:
                french_rows = await resp.text()
        assert "tornado warning in effect" in english
        assert "avertissement de tornade en vigueur" not in english
        for page in (french, french_rows):
            assert "avertissement de tornade en vigueur" in page
            assert "Prescott et Russell" in page
            assert "tornado warning in effect" not in page


async def _true(value: bool) -> bool:
    return value
