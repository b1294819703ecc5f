"""The console's map in a real browser: alerts drawn by shape or by named area, and live."""

from __future__ import annotations

import re
import urllib.error
import urllib.request
import uuid
from typing import Any

import pytest
from playwright.sync_api import ConsoleMessage, Page, Response, expect

from tests.browser.conftest import ConsoleDaemon, artifacts
from tests.browser.test_console import sign_in
from tests.daemon.conftest import CapFactory

cap = CapFactory(sender="map@borderlink.invalid")
# Essex County, Ontario, across the river from Detroit: big enough to click at any zoom.
WINDSOR = "42.0,-83.0 43.0,-83.0 43.0,-81.0 42.0,-81.0 42.0,-83.0"
CAPCP_LOCATION = "profile:CAP-CP:Location:0.3"


def open_map(browser: Any, daemon: ConsoleDaemon) -> tuple[Page, list[str]]:
    """The map page of a signed-in operator, and the browser's complaints (CSP, script errors)."""
    page = sign_in(browser, daemon, "alice")
    complaints: list[str] = []

    def heard(message: ConsoleMessage) -> None:
        if message.type == "error" and "Failed to load resource" not in message.text:
            complaints.append(message.text)  # a refused script or style says so here

    def answered(response: Response) -> None:
        if response.status >= 400 and not response.url.endswith("/favicon.ico"):
            complaints.append(f"{response.status} {response.url}")

    page.on("console", heard)
    page.on("pageerror", lambda error: complaints.append(str(error)))
    page.on("response", answered)
    page.goto(f"{daemon.url}/map")
    return page, complaints


class TestMap:
    """Each alert in force is on the map in its severity's colour and pattern; a click on a
    shape opens the alert; a new alert appears without reloading the page."""

    def test_shapes_and_named_areas_are_drawn_and_open_their_alert(
        self, browser: Any, console_daemon: ConsoleDaemon
    ) -> None:
        tag = uuid.uuid4().hex[:6]
        polygon = console_daemon.post(
            cap(severity="Severe", headline=f"Essex storm {tag}", polygon=WINDSOR)
        )
        county = console_daemon.post(
            cap(severity="Moderate", headline=f"Wayne flood {tag}", geocodes=(("SAME", "026163"),))
        )
        console_daemon.post(
            cap(
                severity="Minor",
                headline=f"Windsor notice {tag}",
                language="en-CA",
                geocodes=((CAPCP_LOCATION, "3537039"),),  # Windsor, in Essex (3537)
            )
        )
        page, complaints = open_map(browser, console_daemon)
        shapes = page.locator("#map path.alert-shape")
        expect(shapes).to_have_count(3, timeout=10_000)
        essex = page.locator("#map path.alert-shape.sev-severe.shape-polygon")
        wayne = page.locator("#map path.alert-shape.sev-moderate.fips-26163")
        windsor = page.locator("#map path.alert-shape.sev-minor.sgc-3537")
        for drawn in (essex, wayne, windsor):
            expect(drawn).to_have_count(1)
        expect(page.locator("#map path.alert-shape.sgc-35")).to_have_count(0)  # not Ontario
        expect(wayne).to_have_css("fill", "rgb(0, 90, 156)")  # --moderate
        expect(wayne).to_have_css("stroke-dasharray", "4px, 4px")
        expect(essex).to_have_css("stroke", "rgb(194, 79, 0)")  # --severe
        items = page.get_by_test_id("map-alert")
        expect(items).to_have_count(3)
        expect(items.filter(has_text=f"Wayne flood {tag}")).to_contain_text("026163")
        page.screenshot(path=str(artifacts() / "console-map.png"), full_page=True)
        essex.hover()
        expect(page.locator(".leaflet-tooltip")).to_contain_text(f"Essex storm {tag}")
        essex.click()
        expect(page).to_have_url(re.compile(re.escape(f"/alerts/{polygon['key']}") + "$"))
        expect(page.locator("main")).to_contain_text(f"Essex storm {tag}")
        assert county["decision"] == "new"
        assert complaints == []

    def test_a_new_alert_appears_without_reloading(
        self, browser: Any, console_daemon: ConsoleDaemon
    ) -> None:
        page, complaints = open_map(browser, console_daemon)
        expect(page.locator("body[data-live=stream]")).to_have_count(1, timeout=10_000)
        expect(page.locator("#map[data-drawn-at]")).to_have_count(1)
        circle = page.locator("#map path.alert-shape.sev-extreme.shape-circle")
        expect(circle).to_have_count(0)
        console_daemon.post(cap(severity="Extreme", circle="45.5,-73.6 40", headline="Montreal"))
        expect(circle).to_have_count(1, timeout=5_000)
        expect(page.get_by_test_id("map-alert").first).to_contain_text("Montreal")
        assert complaints == []

    def test_the_alerts_need_a_session_and_the_boundaries_do_not(
        self, console_daemon: ConsoleDaemon
    ) -> None:
        request = urllib.request.Request(
            f"{console_daemon.url}/map/alerts.geojson", headers={"X-Requested-With": "fetch"}
        )
        with pytest.raises(urllib.error.HTTPError) as refused:
            urllib.request.urlopen(request, timeout=10)
        refused.value.close()  # its socket, else a ResourceWarning fails a later test
        assert refused.value.code == 401
        with urllib.request.urlopen(f"{console_daemon.url}/map/geo/base.geojson") as answer:
            assert answer.headers["Content-Type"].startswith("application/geo+json")
