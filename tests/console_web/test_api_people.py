"""The JSON API's writes by named people: personal tokens, the console's session with its
CSRF header, roles, and the whole-alert approve/reject -- each recorded under the name."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp

from cap_schemas.model import AlertKey
from gateway.console.accounts import add_account, set_token
from gateway.console.sessions import COOKIE_NAME
from tests.daemon.conftest import CapFactory, daemon_toml, load, running_daemon
from tests.helpers import Broker

MACHINE = "test-token-0123456789abcdef"
SINKS = (
    '[[sink]]\nname = "air"\ntype = "file"\npath = "air"\n\n'
    '[[sink]]\nname = "pager"\ntype = "file"\npath = "pager"\n\n'
    '[[sink]]\nname = "feed"\ntype = "file"\npath = "feed"\n'
)
ROUTES = '[[route]]\nname = "hold-all"\nsinks = ["air", "pager", "feed"]\naction = "hold"\n'


def _setup(tmp_path: Path, broker: Broker) -> tuple[Path, dict[str, str]]:
    users = tmp_path / "users"
    add_account(users, "alice", "operator", "alice-pass-1234")
    add_account(users, "victor", "viewer", "victor-pass-1234")
    tokens = {"alice": set_token(users, "alice"), "victor": set_token(users, "victor")}
    extra = f'[console]\nusers_file = "{users}"\nsecret_file = "{tmp_path / "secret"}"\n'
    return daemon_toml(tmp_path, broker.url, sinks=SINKS, routes=ROUTES, extra=extra), tokens


async def _post(http: aiohttp.ClientSession, url: str, token: str, body: Any = None) -> Any:
    async with http.post(url, headers={"Authorization": f"Bearer {token}"}, json=body) as resp:
        return resp.status, await resp.json()


class TestPeopleOnTheApi:
    async def test_personal_tokens_roles_and_whole_alert_approval(
        self, mosquitto: Broker, tmp_path: Path
    ) -> None:
        path, tokens = _setup(tmp_path, mosquitto)
        config = load(path)
        async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{daemon.http_port}"
            raw = CapFactory()(severity="Severe")
            async with http.post(
                f"{base}/api/v1/alerts", data=raw, headers={"Authorization": f"Bearer {MACHINE}"}
            ) as resp:
                assert resp.status == 202
                admitted = await resp.json()
            key = admitted["key"]
            quoted = aiohttp.helpers.quote(key, safe="")
            url = f"{base}/api/v1/alerts/{quoted}"
            # A viewer's own token: known, but may not approve.
            status, body = await _post(http, f"{url}/approve", tokens["victor"], {})
            assert (status, body["error"]) == (403, "forbidden")
            # An unknown token: not anybody.
            status, body = await _post(http, f"{url}/approve", "blk_" + "x" * 32, {})
            assert (status, body["error"]) == (401, "unauthorized")
            # Alice approves only the pager, with a comment; then rejects the rest at once.
            status, body = await _post(
                http, f"{url}/approve", tokens["alice"], {"sinks": ["pager"], "comment": "ok"}
            )
            assert status == 200
            assert [e["sink"] for e in body["changed"]] == ["pager"]
            status, body = await _post(
                http, f"{url}/reject", tokens["alice"], {"reason": "not for the air"}
            )
            assert sorted(e["sink"] for e in body["changed"]) == ["air", "feed"]
            status, body = await _post(http, f"{url}/approve", tokens["alice"], {})
            assert (status, body["error"]) == (409, "conflict")
            entries = {e.sink: e for e in daemon.ledger.deliveries(AlertKey.from_reference(key))}
            journal = daemon.ledger.journal(AlertKey.from_reference(key))
        assert "approved by alice: ok" in " | ".join(j.detail for j in journal)
        assert entries["pager"].state.value in ("pending", "delivered")  # released
        assert entries["air"].reason == "rejected by alice: not for the air"

    async def test_the_consoles_session_needs_its_csrf_header(
        self, mosquitto: Broker, tmp_path: Path
    ) -> None:
        path, _tokens = _setup(tmp_path, mosquitto)
        jar = aiohttp.CookieJar(unsafe=True)  # cookies of 127.0.0.1
        async with (
            running_daemon(load(path)) as daemon,
            aiohttp.ClientSession(cookie_jar=jar) as http,
        ):
            base = f"http://127.0.0.1:{daemon.http_port}"
            async with http.post(
                f"{base}/api/v1/alerts",
                data=CapFactory()(severity="Severe"),
                headers={"Authorization": f"Bearer {MACHINE}"},
            ) as resp:
                key = (await resp.json())["key"]
            held = [e.id for e in daemon.ledger.deliveries(AlertKey.from_reference(key))]
            # Sign in as a browser would, then call the API with the session cookie.
            async with http.get(f"{base}/login") as resp:
                page = await resp.text()
            token = page.split('name="form_token" value="', 1)[1].split('"', 1)[0]
            async with http.post(
                f"{base}/login",
                data={"name": "alice", "password": "alice-pass-1234", "form_token": token},
                allow_redirects=False,
            ) as resp:
                assert resp.status == 302
            assert any(c.key == COOKIE_NAME for c in http.cookie_jar)
            async with http.get(f"{base}/holds") as resp:
                holds_page = await resp.text()
            csrf = holds_page.split('name="csrf" value="', 1)[1].split('"', 1)[0]
            approve = f"{base}/api/v1/holds/{held[0]}/approve"
            async with http.post(approve, json={}) as resp:
                assert resp.status == 401  # the cookie alone is not enough (CSRF)
            async with http.post(
                approve, json={"comment": "x"}, headers={"X-CSRF-Token": csrf}
            ) as resp:
                assert resp.status == 200
                assert (await resp.json())["reason"] == "approved by alice: x"
            # The machine token still works, and is recorded as "operator".
            async with http.post(
                f"{base}/api/v1/holds/{held[1]}/approve",
                headers={"Authorization": f"Bearer {MACHINE}"},
            ) as resp:
                assert (await resp.json())["reason"] == "approved by operator"
