"""The console in a real browser (the system's Chromium): what an EOC duty officer does."""

from __future__ import annotations

import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from playwright.sync_api import Page, expect

from adapters.demo.codec import bundled_templates, render
from tests.browser.conftest import PASSWORDS, ConsoleDaemon, artifacts
from tests.daemon.conftest import CapFactory


def sign_in(browser: Any, daemon: ConsoleDaemon, name: str) -> Page:
    page: Page = browser.new_context(viewport={"width": 1400, "height": 900}).new_page()
    page.goto(f"{daemon.url}/")
    expect(page).to_have_url(re.compile(r"/login\?next="))
    page.fill("#name", name)
    page.fill("#password", PASSWORDS[name])
    page.click("form.login button[type=submit]")
    expect(page.get_by_test_id("who")).to_contain_text(name)
    return page


def tornado_warning() -> bytes:
    """The demo's bilingual CAP-CP tornado warning (Extreme, Broadcast Immediately), fresh."""
    template = next(t for t in bundled_templates() if t.name == "01-ca-tornado-warning")
    return render(
        template,
        now=datetime.now(UTC),
        serial=uuid.uuid4().hex[:8],
        lifetime=timedelta(hours=1),
        earlier={},
    )


def wait_until(check: Any, within: float = 15.0) -> None:
    deadline = time.monotonic() + within
    while not check():
        assert time.monotonic() < deadline, "condition not reached in time"
        time.sleep(0.05)


class TestBoard:
    def test_a_posted_alert_appears_without_reloading(
        self, browser: Any, console_daemon: ConsoleDaemon
    ) -> None:
        page = sign_in(browser, console_daemon, "alice")
        expect(page.locator("body[data-live=stream]")).to_have_count(1, timeout=10_000)
        headline = f"Board check {uuid.uuid4().hex[:6]}"
        alert = CapFactory()(severity="Severe", urgency="Immediate", headline=headline)
        started = time.monotonic()
        assert console_daemon.post(alert)["decision"] == "new"
        row = page.get_by_test_id("alert-row").filter(has_text=headline)
        expect(row).to_be_visible(timeout=5_000)
        print(f"board showed the alert {time.monotonic() - started:.2f} s after the POST")
        expect(row).to_contain_text("Severe")
        expect(row).to_contain_text("delivered: eoc-files")
        page.screenshot(path=str(artifacts() / "console-board.png"), full_page=True)

    def test_a_required_source_down_turns_the_strip_red(
        self, browser: Any, console_daemon: ConsoleDaemon
    ) -> None:
        page = sign_in(browser, console_daemon, "victor")
        item = page.get_by_test_id("health-naad-east")
        expect(item).to_have_attribute("data-state", "down")
        expect(item).to_have_class(re.compile(r"\brequired\b"))
        expect(item).to_have_css("background-color", "rgb(253, 231, 234)")
        sinks = page.get_by_test_id("health-sinks-ok")  # the sinks that are well: one chip
        expect(sinks).to_contain_text("3 sinks ok")
        expect(sinks).to_have_attribute("title", "eoc-files, air-files, same-files")


class TestAlertDetail:
    def test_both_languages_side_by_side(self, browser: Any, console_daemon: ConsoleDaemon) -> None:
        page = sign_in(browser, console_daemon, "alice")
        console_daemon.post(tornado_warning())
        page.get_by_test_id("alert-row").filter(has_text="tornado").first.get_by_role(
            "link"
        ).click()
        english, french = page.get_by_test_id("info-en-CA"), page.get_by_test_id("info-fr-CA")
        expect(english).to_contain_text("Take cover now")
        expect(french).to_contain_text("Mettez-vous à l'abri")
        left, right = english.bounding_box(), french.bounding_box()
        assert left is not None
        assert right is not None
        assert abs(left["y"] - right["y"]) < 5
        assert right["x"] > left["x"]
        expect(page.get_by_test_id("decision")).to_contain_text("new")
        expect(page.get_by_test_id("delivery-air-files")).to_have_attribute("data-state", "held")
        # The SAME header made from it, with its audio to listen to.
        audio = page.get_by_test_id("same-audio")
        expect(audio).to_have_attribute("src", re.compile(r"^/same\.wav\?header=ZCZC-CIV-TOR-"))
        wav = page.request.get(console_daemon.url + (audio.get_attribute("src") or ""))
        assert wav.ok
        assert wav.body()[:4] == b"RIFF"
        bad = page.request.get(f"{console_daemon.url}/same.wav?header=ZCZC-nonsense")
        assert bad.status == 400
        page.screenshot(path=str(artifacts() / "console-alert.png"), full_page=True)


class TestHolds:
    def test_an_operator_approves_by_name_and_it_goes_out(
        self, browser: Any, console_daemon: ConsoleDaemon
    ) -> None:
        alert = tornado_warning()
        key = console_daemon.post(alert)["key"]
        before = len(console_daemon.files("air-files"))
        page = sign_in(browser, console_daemon, "alice")
        page.goto(f"{console_daemon.url}/holds")
        group = page.locator(f'[data-testid="hold-group"][data-key="{key}"]')
        expect(group).to_be_visible()
        page.screenshot(path=str(artifacts() / "console-holds.png"), full_page=True)
        group.get_by_label("Comment").fill("checked with the Windsor EOC")
        group.get_by_role("button", name="Approve").click()
        expect(page.locator(".flash")).to_contain_text("Approved 1")
        wait_until(lambda: len(console_daemon.files("air-files")) > before)
        page.goto(f"{console_daemon.url}/alerts/{key}")
        expect(page.get_by_test_id("delivery-air-files")).to_have_attribute(
            "data-state", "delivered"
        )
        expect(page.locator(".timeline")).to_contain_text(
            "approved by alice: checked with the Windsor EOC"
        )

    def test_a_viewer_cannot_approve(self, browser: Any, console_daemon: ConsoleDaemon) -> None:
        key = console_daemon.post(tornado_warning())["key"]
        page = sign_in(browser, console_daemon, "victor")
        page.goto(f"{console_daemon.url}/holds")
        group = page.locator(f'[data-testid="hold-group"][data-key="{key}"]')
        expect(group).to_contain_text("may look but not approve")
        expect(group.get_by_role("button", name="Approve")).to_have_count(0)
        # The form itself, sent anyway with the viewer's own token: refused.
        csrf = page.locator('header input[name="csrf"]').get_attribute("value")
        entry = group.locator('input[name="entry"]').first.get_attribute("value")
        answer = page.request.post(
            f"{console_daemon.url}/holds",
            form={"csrf": csrf or "", "entry": entry or "", "action": "approve", "back": "/holds"},
            max_redirects=0,
        )
        assert answer.status == 403
        page.reload()
        expect(group).to_be_visible()  # still held


class TestAttention:
    def test_an_extreme_alert_rings_until_a_named_operator_acknowledges_it(
        self, browser: Any, console_daemon: ConsoleDaemon
    ) -> None:
        page = sign_in(browser, console_daemon, "alice")
        page.get_by_role("button", name="Sound: off").click()
        expect(page.get_by_role("button", name="Sound: on")).to_be_visible()
        key = console_daemon.post(tornado_warning())["key"]
        banner = page.locator(f'[data-testid="banner"][data-key="{key}"]')
        expect(banner).to_be_visible(timeout=5_000)
        expect(banner).to_have_attribute("data-sound", "extreme")
        expect(page.locator(f'body[data-rang="{key}"]')).to_have_count(1)
        # The sound it plays is a real WAV, made by the gateway.
        wav = page.request.get(f"{console_daemon.url}/sounds/extreme.wav")
        assert wav.ok
        assert wav.body()[:4] == b"RIFF"
        # Another operator's page shows the same banner; one acknowledgement clears both.
        other = sign_in(browser, console_daemon, "ada")
        other_banner = other.locator(f'[data-testid="banner"][data-key="{key}"]')
        expect(other_banner).to_be_visible()
        banner.get_by_role("button", name="Acknowledge").click()
        expect(banner).to_have_count(0)
        expect(other_banner).to_have_count(0, timeout=5_000)
        page.goto(f"{console_daemon.url}/alerts/{key}")
        expect(page.locator(".timeline")).to_contain_text("acknowledged")
        expect(page.locator(".timeline")).to_contain_text("by alice")


class TestHistory:
    def test_search_page_and_exports(self, browser: Any, console_daemon: ConsoleDaemon) -> None:
        marker = f"History {uuid.uuid4().hex[:6]}"
        key = console_daemon.post(CapFactory()(severity="Minor", headline=marker))["key"]
        page = sign_in(browser, console_daemon, "victor")
        page.get_by_role("link", name="History").click()
        page.get_by_label("Identifier, event, area, sender").fill(marker)
        page.get_by_label("Country").select_option("us")
        page.get_by_role("button", name="Search").click()
        rows = page.get_by_test_id("history-row")
        expect(rows).to_have_count(1)
        expect(rows.first).to_contain_text(marker)
        page.screenshot(path=str(artifacts() / "console-history.png"), full_page=True)
        with page.expect_download() as csv_download:
            page.get_by_role("link", name="CSV").click()
        text = Path(csv_download.value.path()).read_text(encoding="utf-8")
        assert text.splitlines()[0].startswith("received,sender,identifier,sent,country")
        assert marker in text
        assert len(text.strip().splitlines()) == 2
        with page.expect_download() as atom_download:
            page.get_by_role("link", name="Atom + CAP").click()
        feed = Path(atom_download.value.path()).read_text(encoding="utf-8")
        assert f"urn:borderlink:alert:{key}" in feed
        assert '<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">' in feed
        # Nothing in Canada matches.
        page.get_by_label("Country").select_option("ca")
        page.get_by_role("button", name="Search").click()
        expect(page.get_by_text("No alert matches.")).to_be_visible()


class TestOnAir:
    def test_the_wall_display_follows_the_board(
        self, browser: Any, console_daemon: ConsoleDaemon
    ) -> None:
        page = sign_in(browser, console_daemon, "victor")
        page.get_by_role("link", name="On air").click()
        expect(page.locator("body.onair")).to_have_count(1)
        expect(page.locator("body[data-live=stream]")).to_have_count(1, timeout=10_000)
        headline = f"On air {uuid.uuid4().hex[:6]}"
        console_daemon.post(
            CapFactory()(severity="Extreme", urgency="Immediate", headline=headline)
        )
        alert = page.get_by_test_id("onair-alert").filter(has_text=headline)
        expect(alert).to_be_visible(timeout=5_000)
        expect(alert).to_contain_text("EXTREME")
        page.screenshot(path=str(artifacts() / "console-onair.png"))


class TestCompose:
    def test_compose_check_preview_issue_and_cancel(
        self, browser: Any, console_daemon: ConsoleDaemon
    ) -> None:
        page = sign_in(browser, console_daemon, "alice")
        page.get_by_role("link", name="Compose").click()
        headline = f"Compose check {uuid.uuid4().hex[:6]}"
        page.get_by_label("Event").fill("tornado")
        page.locator('input[name="headline_en"]').fill(headline)
        page.locator('input[name="headline_fr"]').fill(f"Vérification {headline}")
        page.locator('textarea[name="description_en"]').fill("A tornado was seen near Windsor.")
        page.locator('textarea[name="description_fr"]').fill(
            "Une tornade a été vue près de Windsor."
        )
        page.locator('input[name="area_en"]').fill("Windsor")
        page.locator('input[name="area_fr"]').fill("Windsor")
        page.get_by_label("Severity").select_option("Extreme")
        # Checked as the operator types: no location code yet is an error, by rule id.
        findings = page.get_by_test_id("findings")
        expect(findings).to_contain_text("capcp.R9-location-code", timeout=5_000)
        expect(findings).to_contain_text("error")
        page.get_by_label("Location codes").fill("3537039")
        previews = page.get_by_test_id("preview")
        expect(previews.first).to_be_visible(timeout=5_000)
        expect(page.locator("#compose-check")).to_contain_text("SAME header")
        expect(page.locator("#compose-check")).to_contain_text("-TOR-")
        page.screenshot(path=str(artifacts() / "console-compose.png"), full_page=True)
        page.get_by_role("button", name="Issue the alert").click()
        expect(page).to_have_url(re.compile(r"/alerts/"))
        expect(page.get_by_test_id("info-en-CA")).to_contain_text(headline)
        expect(page.get_by_test_id("info-fr-CA")).to_contain_text("Vérification")
        expect(page.locator("details.raw")).to_contain_text("SignatureValue")  # signed
        expect(page.get_by_test_id("alert-status")).to_have_text("active")
        issued = page.url
        # Cancel it: the form comes filled in, its references built.
        page.get_by_test_id("cancel").click()
        expect(page.locator('input[name="msg_type"]')).to_have_value("Cancel")
        expect(page.locator('input[name="references"]')).to_have_value(
            re.compile(r",borderlink-console-")
        )
        page.get_by_role("button", name="Issue the alert").click()
        expect(page).to_have_url(re.compile(r"/alerts/"))
        page.goto(issued)
        expect(page.get_by_test_id("alert-status")).to_have_text("cancelled")

    def test_a_viewer_cannot_issue(self, browser: Any, console_daemon: ConsoleDaemon) -> None:
        page = sign_in(browser, console_daemon, "victor")
        expect(page.get_by_role("link", name="Compose")).to_have_count(0)
        csrf = page.locator('header input[name="csrf"]').get_attribute("value")
        answer = page.request.post(
            f"{console_daemon.url}/compose",
            form={"csrf": csrf or "", "profile": "ipaws", "event": "TOR", "codes": "026163"},
            max_redirects=0,
        )
        assert answer.status == 403
