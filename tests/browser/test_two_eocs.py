"""Two EOCs linked, in a real browser: Windsor (CAP-CP) issues an alert and Whatcom County
(another borderlink, its own configuration and console) receives it.

An operator composes a bilingual CAP-CP alert with its area drawn on the map, sees the
errors as they type, previews the IPAWS and SAME outputs and issues it; it is signed,
admitted, delivered to the EOC's files at once and -- on the two-person route to the air --
only once a second operator approved it. Whatcom admits it from MQTT with its signature
verified against Windsor's pinned CA and answers with a CAP Ack that Windsor's board shows.
Then Windsor cancels it and both consoles see it cancelled.
"""

from __future__ import annotations

import json
import re
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote, urljoin

import pytest
from playwright.sync_api import Page, expect

from gateway.console.accounts import add_account
from tests.browser.conftest import PASSWORDS, ConsoleDaemon, artifacts, console_process
from tests.browser.test_compose_map import draw_polygon
from tests.browser.test_console import sign_in
from tests.helpers import Broker, free_port
from tests.signature.pki import Pki, build_pki, key_pem, pem

TOKEN = "two-eocs-machine-token-0123456789"
WINDSOR_SENDER = "windsor@borderlink.invalid"
WHATCOM_SENDER = "whatcom@borderlink.invalid"


def _common(name: str, folder: Path, port: int, broker: Broker, title: str) -> str:
    (folder / "token").write_text(TOKEN + "\n", encoding="utf-8")
    return f"""
[gateway]
name = "{name}"
data_dir = "{folder}"
housekeeping_interval = 0.5

[mqtt]
broker = "{broker.url}"
client_id = "{name}-{uuid.uuid4().hex[:8]}"
prefix = "{name}"
validation = "warn"

[http]
host = "127.0.0.1"
port = {port}
token_file = "token"

[ledger]
path = "{folder / "ledger.sqlite3"}"

[console]
title = "{title}"
users_file = "users"
"""


def windsor_config(folder: Path, port: int, broker: Broker) -> Path:
    """Ours: signs what its console issues, sends it to Whatcom by MQTT, airs it only with a
    second operator's approval, and expects Whatcom's receipt within two minutes."""
    text = _common("windsor", folder, port, broker, "Windsor EOC") + f"""
signing_key_file = "{folder / "eoc.key"}"
signing_cert_file = "{folder / "eoc.pem"}"

[[partner]]
name = "whatcom"
token_file = "partner.token"
ack_sender = "{WHATCOM_SENDER}"
ack_within = "2m"

[[sink]]
name = "eoc-files"
type = "file"
path = "eoc-files"

[[sink]]
name = "air-files"
type = "file"
path = "air-files"
live = true

[[sink]]
name = "to-whatcom"
type = "mqtt"
topic = "whatcom/in/cap"

[[route]]
name = "to-eoc"
sinks = ["eoc-files"]

[[route]]
name = "to-air"
sinks = ["air-files"]
approval = "two-person"

[[route]]
name = "to-whatcom"
sources = ["console"]
sinks = ["to-whatcom"]
"""
    (folder / "partner.token").write_text("whatcom-reads-our-feeds-0123456789\n", "utf-8")
    path = folder / "borderlink.toml"
    path.write_text(text, encoding="utf-8")
    return path


def whatcom_config(folder: Path, port: int, broker: Broker) -> Path:
    """The partner: admits only what Windsor's pinned CA signed, acknowledges each alert
    admitted from Windsor, and sends the Acks back to Windsor's MQTT input."""
    text = _common("whatcom", folder, port, broker, "Whatcom County EOC") + f"""
[[source]]
name = "windsor"
type = "mqtt"
topics = ["whatcom/in/cap"]
require_signature = true
trust_anchors = ["{folder / "windsor-ca.pem"}"]
acknowledge = true
validation = "warn"

[[sink]]
name = "files"
type = "file"
path = "files"

[[sink]]
name = "to-windsor"
type = "mqtt"
topic = "windsor/in/cap"

[[route]]
name = "local"
sinks = ["files"]

[[route]]
name = "receipts-back"
sinks = ["to-windsor"]
match.msg_type = ["Ack"]
"""
    text = text.replace("[mqtt]\n", "[mqtt]\ninput = false\n", 1)
    path = folder / "borderlink.toml"
    path.write_text(text, encoding="utf-8")
    return path


@pytest.fixture
def two_eocs(
    tmp_path: Path, mosquitto: Broker
) -> Iterator[tuple[ConsoleDaemon, ConsoleDaemon, Pki]]:
    ours, theirs = tmp_path / "windsor", tmp_path / "whatcom"
    ours.mkdir()
    theirs.mkdir()
    add_account(ours / "users", "alice", "operator", PASSWORDS["alice"])
    add_account(ours / "users", "ada", "admin", PASSWORDS["ada"])
    add_account(theirs / "users", "victor", "viewer", PASSWORDS["victor"])
    pki = build_pki()
    (ours / "eoc.key").write_bytes(key_pem(pki.signer_key))
    (ours / "eoc.pem").write_bytes(pem(pki.signer))
    (theirs / "windsor-ca.pem").write_bytes(pem(pki.ca))  # Whatcom pins Windsor's CA
    our_port, their_port = free_port(), free_port()
    windsor_toml = windsor_config(ours, our_port, mosquitto)
    whatcom_toml = whatcom_config(theirs, their_port, mosquitto)
    with (
        console_process(windsor_toml, ours, our_port) as windsor,
        console_process(whatcom_toml, theirs, their_port) as whatcom,
    ):
        yield windsor, whatcom, pki


def api_alert(daemon: ConsoleDaemon, key: str) -> dict[str, Any] | None:
    """The daemon's API view of one alert, or None while it does not have it."""
    url = f"{daemon.url}/api/v1/alerts/{quote(key, safe='')}"
    try:
        with urllib.request.urlopen(url, timeout=5) as answer:
            found: dict[str, Any] = json.loads(answer.read())
            return found
    except urllib.error.HTTPError as exc:
        if exc.code == 404:
            return None
        raise


def poll(check: Any, within: float = 30.0) -> Any:
    """Call ``check`` until it returns something true (a deadline, never a fixed wait)."""
    deadline = time.monotonic() + within
    while True:
        found = check()
        if found:
            return found
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.1)


def delivered_files(folder: Path) -> list[Path]:
    return sorted(folder.glob("*.json")) if folder.exists() else []


def shot(page: Page, name: str) -> None:
    page.screenshot(path=str(artifacts() / f"two-eocs-{name}.png"), full_page=True)


class TestTwoEocs:
    def test_issue_approve_receive_acknowledge_and_cancel(
        self, browser: Any, two_eocs: tuple[ConsoleDaemon, ConsoleDaemon, Pki]
    ) -> None:
        windsor, whatcom, _pki = two_eocs
        alice = sign_in(browser, windsor, "alice")
        alice.get_by_role("link", name="Compose").click()
        expect(alice.get_by_test_id("area-map")).to_have_attribute("data-ready", "yes")
        headline = f"Chlorine leak {uuid.uuid4().hex[:6]}"
        alice.get_by_label("Event").fill("hazmat")
        alice.get_by_label("Severity").select_option("Severe")
        alice.locator('input[name="headline_en"]').fill(headline)
        alice.locator('textarea[name="description_en"]').fill(
            "Chlorine is leaking at the Windsor water plant. Stay indoors."
        )
        alice.locator('input[name="area_en"]').fill("Windsor and Detroit riverfront")
        alice.locator('input[name="area_fr"]').fill("Rives de Windsor et de Détroit")
        # Errors as the operator types: no French headline yet, then no location code.
        findings = alice.locator("#compose-check")
        expect(findings).to_contain_text("headline_fr", timeout=10_000)
        alice.locator('input[name="headline_fr"]').fill(f"Fuite de chlore {headline[-6:]}")
        alice.locator('textarea[name="description_fr"]').fill(
            "Du chlore fuit à l'usine de traitement d'eau de Windsor. Restez à l'intérieur."
        )
        expect(alice.get_by_test_id("findings")).to_contain_text(
            "capcp.R9-location-code", timeout=10_000
        )
        draw_polygon(alice, [(0.45, 0.45), (0.6, 0.45), (0.55, 0.6)])
        drawn = alice.locator('input[name="polygon"]').input_value()
        alice.get_by_label("Location codes").fill("3537039")
        # Previewed as the other side's CAP (IPAWS) and the SAME header, with the drawn area.
        expect(alice.get_by_test_id("preview").first).to_be_visible(timeout=10_000)
        expect(findings).not_to_contain_text("capcp.R9-location-code")
        expect(findings).to_contain_text("IPAWS (the other side)")
        expect(findings).to_contain_text("<code>IPAWSv1.0</code>")
        expect(findings).to_contain_text("ZCZC-CIV-HMW-")
        expect(findings).to_contain_text(drawn)
        # ... and heard: the SAME header as the audio an ENDEC would air, served by the console
        audio = alice.get_by_test_id("compose-same-audio")
        expect(audio).to_have_count(1)
        wav = alice.request.get(urljoin(alice.url, audio.get_attribute("src") or ""))
        assert wav.status == 200
        assert wav.headers["content-type"] == "audio/wav"
        assert wav.body()[:4] == b"RIFF"
        shot(alice, "1-compose")
        alice.get_by_role("button", name="Issue the alert").click()
        expect(alice).to_have_url(re.compile(r"/alerts/"))
        expect(alice.locator("details.raw")).to_contain_text("SignatureValue")  # signed
        key = unquote(alice.url.split("/alerts/", 1)[1])
        assert key.startswith(f"{WINDSOR_SENDER},borderlink-console-")
        # Our own certificate anchors what our console signs: verified on our own board too.
        own = api_alert(windsor, key)
        assert own is not None
        assert own["trust"]["signature"] == "valid"
        assert own["trust"]["level"] == "verified"
        alert_page = alice.url
        # Admitted and delivered to the EOC's files; the air waits for a second operator.
        expect(alice.get_by_test_id("delivery-eoc-files")).to_have_attribute(
            "data-state", "delivered", timeout=10_000
        )
        expect(alice.get_by_test_id("delivery-air-files")).to_have_attribute("data-state", "held")
        expect(alice.get_by_test_id("delivery-air-files")).to_contain_text(
            "awaiting second operator: issued by alice"
        )
        alice.goto(f"{windsor.url}/")
        row = alice.locator(f'tr[data-key="{key}"]')
        expect(row.get_by_test_id("awaiting-second")).to_contain_text(
            "awaiting second operator (issued by alice)"
        )
        shot(alice, "2-board-awaiting-second-operator")
        # Alice may not release her own alert.
        alice.goto(alert_page)
        alice.locator(".holds-here button.approve").click()
        expect(alice.locator("body")).to_contain_text(
            "alice issued this alert; a second operator must approve it"
        )
        assert delivered_files(windsor.folder / "air-files") == []
        # Whatcom has it already (the MQTT route is not two-person), signature verified.
        received = poll(lambda: api_alert(whatcom, key))
        assert received["trust"]["signature"] == "valid"
        assert received["trust"]["level"] == "verified"
        assert received["status"] == "active"
        # Ada, the second operator, approves: the air gets it, once.
        ada = sign_in(browser, windsor, "ada")
        ada.goto(alert_page)
        ada.locator(".holds-here button.approve").click()
        expect(ada.get_by_test_id("delivery-air-files")).to_have_attribute(
            "data-state", "delivered", timeout=10_000
        )
        timeline = ada.locator("ol.timeline")
        expect(timeline).to_contain_text("awaiting second operator: issued by alice")
        expect(timeline).to_contain_text("approved by ada")
        assert len(delivered_files(windsor.folder / "air-files")) == 1
        # Whatcom's Ack comes back: the board shows it, the alert's page too.
        ada.goto(f"{windsor.url}/")
        expect(ada.locator(f'tr[data-key="{key}"]').get_by_test_id("acked")).to_contain_text(
            "whatcom", timeout=30_000
        )
        shot(ada, "3-board-acknowledged")
        ada.goto(alert_page)
        receipt = ada.locator('[data-testid="partner-receipt"][data-partner="whatcom"]')
        expect(receipt).to_have_attribute("data-state", "acknowledged")
        expect(ada.get_by_test_id("receipt")).to_contain_text(WHATCOM_SENDER)
        # Whatcom's console shows it, with its signature checked.
        victor = sign_in(browser, whatcom, "victor")
        their_page = f"{whatcom.url}/alerts/{quote(key, safe='')}"
        victor.goto(their_page)
        expect(victor.get_by_test_id("info-en-CA")).to_contain_text(headline)
        expect(victor.get_by_test_id("info-fr-CA")).to_contain_text("Fuite de chlore")
        expect(victor.get_by_test_id("signature")).to_contain_text("valid")
        expect(victor.get_by_test_id("alert-status")).to_have_text("active")
        shot(victor, "4-partner-received")
        # Cancel from Windsor's console: both sides see it cancelled.
        alice.goto(alert_page)
        alice.get_by_test_id("cancel").click()
        expect(alice.locator('input[name="msg_type"]')).to_have_value("Cancel")
        expect(alice.locator('input[name="polygon"]')).to_have_value(drawn)
        expect(alice.get_by_test_id("preview").first).to_be_visible(timeout=10_000)
        alice.get_by_role("button", name="Issue the alert").click()
        expect(alice).to_have_url(re.compile(r"/alerts/"))
        alice.goto(alert_page)
        expect(alice.get_by_test_id("alert-status")).to_have_text("cancelled")
        poll(lambda: (api_alert(whatcom, key) or {}).get("status") == "cancelled")
        victor.goto(their_page)
        expect(victor.get_by_test_id("alert-status")).to_have_text("cancelled")
        shot(victor, "5-partner-cancelled")
        shot(alice, "5-cancelled")
