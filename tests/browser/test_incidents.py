"""Incident reports in a real browser: one from a field unit over MQTT appears on the board and
the map without reloading; an operator places one on the map with a click, sees what each
destination gets, and sends it."""

from __future__ import annotations

import json
import re
import subprocess
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Page, expect

from gateway.console.accounts import add_account
from tests.browser.conftest import PASSWORDS, ConsoleDaemon, artifacts, console_process
from tests.browser.test_console import sign_in
from tests.helpers import Broker, free_port, require_tool, run_mosquitto

TOKEN = "incident-browser-token-0123456789"


def _config(folder: Path, port: int, broker: Broker) -> Path:
    text = f"""
[gateway]
name = "windsor-eoc"
data_dir = "{folder}"
housekeeping_interval = 0.5

[mqtt]
broker = "{broker.url}"
client_id = "bl-{uuid.uuid4().hex[:8]}"

[http]
host = "127.0.0.1"
port = {port}
token_file = "token"

[console]
title = "Windsor EOC"
users_file = "users"

[ledger]
path = "{folder / "ledger.sqlite3"}"

[[source]]
name = "field"
type = "mqtt"
kind = "incident"
topics = ["field/#"]

[[sink]]
name = "tg-essex"
type = "mqtt"
topic = "radio/tg/essex"

[[route]]
name = "incidents-to-talkgroup"
input = "incident"
sinks = ["tg-essex"]
translation = "incident-text"
"""
    path = folder / "borderlink.toml"
    path.write_text(text, encoding="utf-8")
    (folder / "token").write_text(TOKEN + "\n", encoding="utf-8")
    return path


def publish(broker: Broker, topic: str, payload: bytes) -> None:
    """Publish with the broker's own client (retained: the daemon gets it once subscribed)."""
    tool = require_tool("mosquitto_pub")
    subprocess.run(
        [tool, "-h", broker.host, "-p", str(broker.port), "-t", topic, "-q", "1", "-r", "-s"],
        input=payload,
        check=True,
        timeout=10,
    )


@pytest.fixture(scope="module")
def incident_daemon(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[ConsoleDaemon, Broker]]:
    folder = tmp_path_factory.mktemp("incidents")
    add_account(folder / "users", "alice", "operator", PASSWORDS["alice"])
    with run_mosquitto() as broker:
        port = free_port()
        with console_process(_config(folder, port, broker), folder, port) as daemon:
            yield daemon, broker


def field_incident(ident: str, notes: str) -> bytes:
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    return json.dumps(
        {
            "$schema": "borderlink:incident:1",
            "incidentTrackingIdentifier": ident,
            "incidentTypeCommonRegistryText": "rescue",
            "incidentStatusCommonRegistryText": "dispatched",
            "location": {
                "latitude": 42.3149,
                "longitude": -83.0364,
                "civicAddressText": "Detroit River, off Belle Isle",
            },
            "units": ["MARINE-7"],
            "notesText": notes,
            "notesTextFr": "Personne à l'eau",
            "agencyIdentifier": "USCG-DET",
            "incidentPriority": "urgent",
            "createdTimestamp": now,
            "lastUpdateTimestamp": now,
        }
    ).encode()


def signed_in(browser: Any, daemon: ConsoleDaemon) -> tuple[Page, list[str]]:
    """An operator's page, and what the browser complains of (script errors, CSP)."""
    page = sign_in(browser, daemon, "alice")
    complaints: list[str] = []

    def heard(message: ConsoleMessage) -> None:
        if message.type == "error":
            complaints.append(message.text)

    page.on("console", heard)
    page.on("pageerror", lambda error: complaints.append(str(error)))
    return page, complaints


class TestIncomingIncident:
    def test_a_field_incident_appears_on_the_board_and_the_map(
        self, browser: Any, incident_daemon: tuple[ConsoleDaemon, Broker]
    ) -> None:
        daemon, broker = incident_daemon
        page, complaints = signed_in(browser, daemon)
        expect(page.locator("body[data-live=stream]")).to_have_count(1, timeout=10_000)
        notes = f"Person in the water {uuid.uuid4().hex[:6]}"
        publish(broker, "field/us/uscg", field_incident("USCG-0001", notes))
        # Live: the board's incident section shows it without a reload.
        row = page.get_by_test_id("incident-row").filter(has_text=notes)
        expect(row).to_be_visible(timeout=10_000)
        expect(row).to_contain_text("urgent")
        expect(row).to_contain_text("Personne à l'eau")
        expect(row).to_contain_text("USCG-DET")
        page.screenshot(path=str(artifacts() / "console-incidents.png"), full_page=True)
        # The map draws it as a point marker.
        page.goto(f"{daemon.url}/map")
        expect(page.locator("#map[data-incident-points='1']")).to_have_count(1, timeout=10_000)
        expect(page.locator("path.incident-marker.prio-urgent")).to_have_count(1)
        # A second one is drawn without reloading the map.
        publish(broker, "field/us/uscg2", field_incident("USCG-0002", f"{notes} (second)"))
        expect(page.locator("#map[data-incident-points='2']")).to_have_count(1, timeout=10_000)
        expect(page.locator("path.incident-marker.prio-urgent")).to_have_count(2)
        assert complaints == []


class TestComposeIncident:
    def test_place_on_the_map_preview_and_send(
        self, browser: Any, incident_daemon: tuple[ConsoleDaemon, Broker]
    ) -> None:
        daemon, _broker = incident_daemon
        page, complaints = signed_in(browser, daemon)
        page.get_by_role("link", name="Incident report").click()
        expect(page.locator("#pick-map[data-ready='1']")).to_have_count(1, timeout=10_000)
        notes = f"Tree on the line {uuid.uuid4().hex[:6]}"
        page.get_by_label("Type", exact=True).fill("infrastructure")
        page.locator('textarea[name="description_en"]').fill(notes)
        page.locator('textarea[name="description_fr"]').fill("Arbre sur la ligne")
        page.get_by_label("Priority").select_option("high")
        page.get_by_label("Address or landmark").fill("Riverside Dr E")
        # A click on the map places it: the fields are filled, a marker drawn.
        page.locator("#pick-map").click(position={"x": 300, "y": 150})
        expect(page.locator('input[name="latitude"]')).to_have_value(re.compile(r"^-?\d+\.\d{5}$"))
        expect(page.locator('input[name="longitude"]')).to_have_value(re.compile(r"^-?\d+\.\d{5}$"))
        expect(page.locator("#pick-map path.incident-marker.picked")).to_have_count(1)
        latitude = float(page.locator('input[name="latitude"]').input_value())
        assert 24 <= latitude <= 72  # the map opens on the two countries
        # What the talkgroup will get, as the operator types.
        preview = page.get_by_test_id("incident-preview")
        expect(preview).to_contain_text("INC1 ID=WINDSOR-EOC-", timeout=5_000)
        expect(preview).to_contain_text("PR=high")
        expect(preview).to_contain_text(notes)
        expect(page.locator('input[name="destination"][value="tg-essex"]')).to_be_checked()
        page.screenshot(path=str(artifacts() / "console-incident-form.png"), full_page=True)
        page.get_by_role("button", name="Send the incident report").click()
        expect(page).to_have_url(re.compile(r"/incidents/new\?done=WINDSOR-EOC-"))
        expect(page.locator("p.flash")).to_contain_text("tg-essex")
        page.get_by_role("link", name="Board").click()
        row = page.get_by_test_id("incident-row").filter(has_text=notes)
        expect(row).to_contain_text("high")
        expect(row).to_contain_text("console")
        assert complaints == []
