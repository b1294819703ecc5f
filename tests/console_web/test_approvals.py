"""The two-person rule and partners' receipt warnings, through a running daemon: an operator
issues an alert in the console, the route's ``approval = "two-person"`` holds it for a second
operator (the author and a machine token are refused, by the console and by the API), a
second operator releases it and the sink receives it once; a ``[[partner]]`` with
``ack_within`` is warned about until its Ack arrives."""

from __future__ import annotations

import asyncio
import contextlib
import re
import tomllib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import aiohttp
import pytest

from cap_schemas.model import AlertKey
from cap_schemas.parse import parse_alert
from gateway.approvals import author_of, hold_reason, refusal
from gateway.config import parse_config
from gateway.console.accounts import add_account, set_token
from gateway.daemon import Daemon
from gateway.errors import ConfigError
from gateway.ledger import EntryState
from gateway.receipts import ack_for
from tests.daemon.conftest import daemon_toml, load, poll_until, running_daemon
from tests.helpers import Broker

MACHINE = "test-token-0123456789abcdef"
PARTNER_TOKEN = "partner-token-0123456789abcdef"
PASSWORDS = {"alice": "alice-pass-1234", "bob": "bob-pass-1234"}
SINKS = (
    '[[sink]]\nname = "air"\ntype = "file"\npath = "air"\nlive = true\n\n'
    '[[sink]]\nname = "log"\ntype = "file"\npath = "log"\n'
)
PARTNER = "partner-token-0123456789abcdef"
ROUTES = (
    '[[route]]\nname = "to-air"\nsinks = ["air"]\napproval = "two-person"\n'
    "allow_unsigned_live = true\n\n"
    '[[route]]\nname = "to-log"\nsinks = ["log"]\n'
)
FORM = {
    "profile": "cap-cp",
    "msg_type": "Alert",
    "status": "Actual",
    "event": "hazmat",
    "category": "Safety",
    "urgency": "Immediate",
    "severity": "Severe",
    "certainty": "Observed",
    "headline_en": "Chlorine leak",
    "headline_fr": "Fuite de chlore",
    "description_en": "A chlorine leak at the water plant.",
    "description_fr": "Une fuite de chlore à l'usine de traitement d'eau.",
    "area_en": "Windsor",
    "area_fr": "Windsor",
    "codes": "3537039",
    "expires_hours": "2",
}


def _config(
    tmp: Path, broker: Broker, extra: str = "", routes: str = ROUTES
) -> tuple[Path, dict[str, str]]:
    users = tmp / "users"
    tokens = {}
    for name, password in PASSWORDS.items():
        add_account(users, name, "operator", password)
        tokens[name] = set_token(users, name)
    console = f'[console]\nusers_file = "{users}"\nsecret_file = "{tmp / "secret"}"\n'
    path = daemon_toml(tmp, broker.url, sinks=SINKS, routes=routes, extra=console + extra)
    return path, tokens


class Operator:
    """A console session of one account (cookies and CSRF token), as a browser has it."""

    def __init__(self, http: aiohttp.ClientSession, base: str) -> None:
        self.http = http
        self.base = base
        self.csrf = ""

    async def sign_in(self, name: str) -> None:
        async with self.http.get(f"{self.base}/login") as resp:
            page = await resp.text()
        token = page.split('name="form_token" value="', 1)[1].split('"', 1)[0]
        async with self.http.post(
            f"{self.base}/login",
            data={"name": name, "password": PASSWORDS[name], "form_token": token},
            allow_redirects=False,
        ) as resp:
            assert resp.status == 302
        self.csrf = (await self.text("/holds")).split('name="csrf" value="', 1)[1].split('"')[0]

    async def text(self, path: str) -> str:
        async with self.http.get(f"{self.base}{path}") as resp:
            assert resp.status == 200, path
            return await resp.text()

    async def post(self, path: str, form: dict[str, Any]) -> aiohttp.ClientResponse:
        async with self.http.post(
            f"{self.base}{path}", data={**form, "csrf": self.csrf}, allow_redirects=False
        ) as resp:
            await resp.read()
            return resp

    async def issue(self, **changes: str) -> AlertKey:
        resp = await self.post("/compose", {**FORM, **changes})
        assert resp.status == 302, await resp.text()
        location = resp.headers["Location"]
        assert location.startswith("/alerts/")
        return AlertKey.from_reference(unquote(location.removeprefix("/alerts/")))


def _files(folder: Path) -> list[Path]:
    """The deliveries a file sink wrote (one ``.json`` each, written last)."""
    return sorted(folder.glob("*.json")) if folder.exists() else []


def _session(daemon: Any) -> tuple[aiohttp.ClientSession, str]:
    jar = aiohttp.CookieJar(unsafe=True)  # cookies of 127.0.0.1
    return aiohttp.ClientSession(cookie_jar=jar), f"http://127.0.0.1:{daemon.http_port}"


@contextlib.asynccontextmanager
async def _signed_in(path: Path, name: str) -> AsyncIterator[tuple[Daemon, Operator]]:
    """A running daemon of ``path``, and the console session of account ``name``."""
    async with running_daemon(load(path)) as daemon:
        http, base = _session(daemon)
        async with http:
            operator = Operator(http, base)
            await operator.sign_in(name)
            yield daemon, operator


async def _api(
    http: aiohttp.ClientSession, url: str, token: str, body: Any = None
) -> tuple[int, Any]:
    async with http.post(url, headers={"Authorization": f"Bearer {token}"}, json=body) as resp:
        return resp.status, await resp.json()


class TestTwoPersonRule:
    """A console alert on a two-person route waits for a second, named operator; the author
    and a machine token are refused (403, saying why); the other route is not held."""

    async def test_the_author_is_refused_and_a_second_operator_releases_it(
        self, mosquitto: Broker, tmp_path: Path
    ) -> None:
        (tmp_path / "partner").write_text(PARTNER + "\n", encoding="utf-8")
        partner = '[[partner]]\nname = "whatcom"\ntoken_file = "partner"\n'
        path, tokens = _config(tmp_path, mosquitto, extra=partner)
        async with _signed_in(path, "alice") as (daemon, alice), aiohttp.ClientSession() as api:
            base = alice.base
            key = await alice.issue()

            async def in_partner_feed() -> bool:
                async with api.get(
                    f"{base}/feeds/alerts.atom", headers={"Authorization": f"Bearer {PARTNER}"}
                ) as resp:
                    assert resp.status == 200
                    return key.identifier in await resp.text()

            planned = await asyncio.to_thread(daemon.ledger.deliveries, key)
            entries = {e.sink: e for e in planned}
            air = entries["air"]
            assert air.state is EntryState.HELD
            assert air.reason == "awaiting second operator: issued by alice"

            # Without the option the old behaviour stays: the log route delivers at once.
            async def logged() -> bool:
                return len(_files(tmp_path / "log")) == 1

            await poll_until(logged, within=10)
            board = await alice.text("/board/rows")
            assert "awaiting second operator (issued by alice)" in board
            # The author, in the console: 403, and nothing released.
            resp = await alice.post(
                "/holds", {"action": "approve", "entry": str(air.id), "back": "/holds"}
            )
            assert resp.status == 403
            assert "alice issued this alert; a second operator must approve it" in (
                await resp.text()
            )
            # The author, by the API with her personal token: 403.
            quoted = quote(str(key), safe="")
            status, body = await _api(
                api, f"{base}/api/v1/alerts/{quoted}/approve", tokens["alice"], {}
            )
            assert (status, body["error"]) == (403, "two_person")
            assert "a second operator must approve it" in body["message"]
            status, body = await _api(
                api, f"{base}/api/v1/holds/{air.id}/approve", tokens["alice"], {}
            )
            assert (status, body["error"]) == (403, "two_person")
            # A machine token names nobody: it cannot be the second person.
            status, body = await _api(api, f"{base}/api/v1/holds/{air.id}/approve", MACHINE)
            assert (status, body["error"]) == (403, "two_person")
            assert "not with a machine token" in body["message"]
            still = await asyncio.to_thread(daemon.ledger.entry, air.id)
            assert still is not None
            assert still.state is EntryState.HELD
            assert not _files(tmp_path / "air")
            # Nor does a partner read it before a second operator approved it.
            assert not await in_partner_feed()
            # Bob, the second operator, approves in the console.
            bob = Operator(aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True)),
                           base)  # fmt: skip
            async with bob.http:
                await bob.sign_in("bob")
                resp = await bob.post(
                    "/holds", {"action": "approve", "entry": str(air.id), "back": "/holds"}
                )
                assert resp.status == 302

            async def aired() -> bool:
                entry = await asyncio.to_thread(daemon.ledger.entry, air.id)
                return entry is not None and entry.state is EntryState.DELIVERED

            await poll_until(aired, within=10)
            assert len(_files(tmp_path / "air")) == 1  # exactly once
            assert await in_partner_feed()
            (payload,) = (tmp_path / "air").glob("*.1")
            assert parse_alert(payload.read_bytes()).key == key
            journal = await asyncio.to_thread(daemon.ledger.journal, key)
            lines = [f"{j.event}: {j.detail}" for j in journal if j.sink == "air"]
            assert any(
                line.startswith("held:") and "issued by alice" in line for line in lines
            )
            assert any(
                line.startswith("approved:") and "approved by bob" in line for line in lines
            )
            assert "awaiting second operator" not in await alice.text("/board/rows")

    async def test_without_the_option_nothing_waits(
        self, mosquitto: Broker, tmp_path: Path
    ) -> None:
        routes = ROUTES.replace('approval = "two-person"\n', "")
        path, _tokens = _config(tmp_path, mosquitto, routes=routes)
        async with _signed_in(path, "alice") as (daemon, alice):
            key = await alice.issue()

            async def both() -> bool:
                entries = await asyncio.to_thread(daemon.ledger.deliveries, key)
                return len(entries) == 2 and all(
                    e.state is EntryState.DELIVERED for e in entries
                )

            await poll_until(both, within=10)


class TestApprovalRules:
    def test_the_reason_names_the_author(self) -> None:
        reason = hold_reason("alice")
        assert author_of(reason) == "alice"
        assert author_of("held for an operator") is None
        assert refusal(reason, "bob") == ""
        assert "alice issued this alert" in refusal(reason, "alice")
        assert "machine token" in refusal(reason, "operator", named=False)
        assert refusal("held for an operator", "alice", named=False) == ""

    @pytest.mark.parametrize(
        ("text", "message"),
        [
            (
                '[[route]]\nname = "r"\nsinks = ["s"]\napproval = "one"\n',
                "route #1 \"r\".approval: 'one' is not allowed; allowed: single, two-person",
            ),
            (
                '[[route]]\nname = "r"\nsinks = ["s"]\ninput = "incident"\n'
                'approval = "two-person"\n',
                'route #1 "r".approval: applies to alerts issued in the console',
            ),
            (
                '[[partner]]\nname = "p"\ntoken_env = "BL_PARTNER_TOKEN"\nack_within = "5m"\n',
                "ack_within: needs ack_sender",
            ),
            (
                '[[partner]]\nname = "p"\ntoken_env = "BL_PARTNER_TOKEN"\nack_sender = "b@x"\n'
                'ack_within = "soon"\n',
                "ack_within: 'soon' is not a duration",
            ),
        ],
    )
    def test_config_errors_say_where(
        self, text: str, message: str, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("BL_PARTNER_TOKEN", PARTNER_TOKEN)
        sink = '[[sink]]\nname = "s"\ntype = "file"\npath = "s"\n'
        with pytest.raises(ConfigError, match=re.escape(message)):
            parse_config(tomllib.loads(sink + text), path=Path("b.toml"))

    @pytest.mark.parametrize(("written", "seconds"), [("5m", 300.0), ("90s", 90.0), (2, 2.0)])
    def test_ack_within_units(
        self, written: object, seconds: float, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("BL_PARTNER_TOKEN", PARTNER_TOKEN)
        value = f'"{written}"' if isinstance(written, str) else str(written)
        text = (
            '[[partner]]\nname = "p"\ntoken_env = "BL_PARTNER_TOKEN"\n'
            f'ack_sender = "b@borderlink.invalid"\nack_within = {value}\n'
        )
        (partner,) = parse_config(tomllib.loads(text), path=Path("b.toml")).partners
        assert partner.ack_within == seconds


def _metric(text: str, name: str, partner: str) -> float:
    found = re.search(rf'^{name}{{[^}}]*partner="{partner}"[^}}]*}} (\S+)$', text, re.MULTILINE)
    return float(found[1]) if found else 0.0


class TestPartnerReceipts:
    """A partner with ``ack_sender`` and ``ack_within``: our alert unacknowledged past that
    time is warned about (alert page, banner, health strip, metrics) until its Ack comes."""

    async def test_late_until_the_ack_arrives(self, mosquitto: Broker, tmp_path: Path) -> None:
        (tmp_path / "partner").write_text(PARTNER_TOKEN + "\n", encoding="utf-8")
        partner = (
            '[[partner]]\nname = "whatcom"\ntoken_file = "partner"\n'
            'ack_sender = "whatcom@borderlink.invalid"\nack_within = "1s"\n'
        )
        path, _tokens = _config(tmp_path, mosquitto, extra=partner)
        async with _signed_in(path, "alice") as (daemon, alice):
            http, base = alice.http, alice.base
            key = await alice.issue()
            href = f"/alerts/{quote(str(key), safe='')}?part=live"
            page = await alice.text(href)
            assert 'data-partner="whatcom" data-state="waiting"' in page

            async def metric(name: str) -> float:
                async with http.get(f"{base}/metrics") as resp:
                    return _metric(await resp.text(), name, "whatcom")

            async def warned() -> bool:
                return await metric("borderlink_partner_receipts_late") == 1

            await poll_until(warned, within=10)
            assert await metric("borderlink_partner_receipts_late_total") == 1
            banner = await alice.text("/attention")
            assert 'data-testid="partner-late"' in banner
            assert "whatcom has not acknowledged this alert" in banner
            health = await alice.text("/health")
            assert 'data-testid="health-whatcom" data-state="late"' in health
            assert 'data-state="late"' in await alice.text(href)
            # The partner's Ack arrives (as their gateway writes it): the warning clears.
            stored = await asyncio.to_thread(daemon.ledger.get, key)
            assert stored is not None
            ack = ack_for(
                parse_alert(stored.raw),
                sender="whatcom@borderlink.invalid",
                received_at=stored.received_at,
            )
            async with http.post(
                f"{base}/api/v1/alerts",
                data=ack,
                headers={"Authorization": f"Bearer {MACHINE}"},
            ) as resp:
                assert resp.status == 202

            async def cleared() -> bool:
                return await metric("borderlink_partner_receipts_late") == 0

            await poll_until(cleared, within=10)
            assert 'data-testid="partner-late"' not in await alice.text("/attention")
            assert 'data-state="late"' not in await alice.text("/health")
            assert 'data-partner="whatcom" data-state="acknowledged"' in await alice.text(
                href
            )
            assert await metric("borderlink_partner_receipts_late_total") == 1
