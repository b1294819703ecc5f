"""The compose form's map in a real browser: a polygon and a circle drawn with the mouse fill
the form's CAP fields (latitude first, the ring closed), are checked by the CAP rules, shown
in the previews and issued."""

from __future__ import annotations

import re
import uuid
from typing import Any

from playwright.sync_api import Page, expect

from tests.browser.conftest import ConsoleDaemon, artifacts
from tests.browser.test_console import sign_in

PAIR = re.compile(r"^-?\d+(\.\d+)?,-?\d+(\.\d+)?$")


def open_compose(browser: Any, daemon: ConsoleDaemon) -> tuple[Page, list[str]]:
    """The compose page of a signed-in operator, its map ready, and the browser's
    complaints (a refused script or style, a script error)."""
    page = sign_in(browser, daemon, "alice")
    complaints: list[str] = []
    page.on("pageerror", lambda error: complaints.append(str(error)))
    page.on(
        "console",
        lambda m: complaints.append(m.text) if m.type == "error" else None,
    )
    page.goto(f"{daemon.url}/compose")
    expect(page.get_by_test_id("area-map")).to_have_attribute("data-ready", "yes")
    return page, complaints


def click_map(page: Page, fx: float, fy: float) -> None:
    """A click at a fraction of the map's width and height."""
    area = page.get_by_test_id("area-map")
    area.scroll_into_view_if_needed()
    box = area.bounding_box()
    assert box is not None
    page.mouse.click(box["x"] + box["width"] * fx, box["y"] + box["height"] * fy)


def draw_polygon(page: Page, corners: list[tuple[float, float]]) -> None:
    """Draw a polygon by its corners, closed by a click on the first one again."""
    page.get_by_role("button", name="Draw a polygon").click()
    area = page.get_by_test_id("area-map")
    for n, (fx, fy) in enumerate(corners, start=1):
        click_map(page, fx, fy)
        expect(area).to_have_attribute("data-corners", str(n))
    click_map(page, *corners[0])
    expect(area).to_have_attribute("data-mode", "")


def fill_capcp(page: Page, headline: str) -> None:
    """A valid bilingual CAP-CP alert, all but its area's shape."""
    page.get_by_label("Event").fill("hazmat")
    page.locator('input[name="headline_en"]').fill(headline)
    page.locator('input[name="headline_fr"]').fill(f"FR {headline}")
    page.locator('textarea[name="description_en"]').fill("A chlorine leak at the water plant.")
    page.locator('textarea[name="description_fr"]').fill("Une fuite de chlore à l'usine.")
    page.locator('input[name="area_en"]').fill("Windsor")
    page.locator('input[name="area_fr"]').fill("Windsor")
    page.get_by_label("Location codes").fill("3537039")


def ring_of(text: str) -> list[tuple[float, float]]:
    pairs = text.split()
    assert all(PAIR.match(p) for p in pairs), text
    return [(float(p.split(",")[0]), float(p.split(",")[1])) for p in pairs]


class TestDrawingAnArea:
    """Polygon and circle drawn on the map become the alert's CAP area, checked and shown."""

    def test_polygon_and_circle_fill_the_form_and_the_cap(
        self, browser: Any, console_daemon: ConsoleDaemon
    ) -> None:
        page, complaints = open_compose(browser, console_daemon)
        headline = f"Drawn area {uuid.uuid4().hex[:6]}"
        fill_capcp(page, headline)
        # Three corners, then a click on the first: the ring closes itself.
        draw_polygon(page, [(0.45, 0.45), (0.6, 0.45), (0.55, 0.6)])
        polygon = page.locator('input[name="polygon"]')
        expect(polygon).to_have_value(re.compile(r"\S+ \S+ \S+ \S+"))
        ring = ring_of(polygon.input_value())
        assert len(ring) == 4
        assert ring[0] == ring[-1]
        # Latitude first: the map shows North America, so every lat is 24..72, lon -168..-52.
        assert all(24 <= lat <= 72 and -168 <= lon <= -52 for lat, lon in ring), ring
        # Clicked left to right: the second corner is east of the first (a larger lon).
        assert ring[1][1] > ring[0][1]
        expect(page.get_by_test_id("area-map")).to_have_attribute("data-shapes", "1")
        # The form is checked again and the CAP preview carries the drawn polygon.
        check = page.locator("#compose-check")
        expect(check).to_contain_text("<polygon>", timeout=10_000)
        expect(check).to_contain_text(polygon.input_value())  # the same text, the same order
        # A circle: the centre, then a point on its edge.
        page.get_by_role("button", name="Draw a circle").click()
        click_map(page, 0.3, 0.3)
        click_map(page, 0.33, 0.3)
        circle = page.locator('input[name="circle"]')
        expect(circle).to_have_value(re.compile(r"^-?\d+(\.\d+)?,-?\d+(\.\d+)? \d+(\.\d+)?$"))
        centre, radius = circle.input_value().split()
        assert float(radius) > 0
        expect(page.get_by_test_id("area-map")).to_have_attribute("data-shapes", "2")
        expect(check).to_contain_text("<circle>", timeout=10_000)
        expect(check).to_contain_text(f"{centre} {radius}")
        page.screenshot(path=str(artifacts() / "console-compose-drawn-area.png"), full_page=True)
        # The CAP rules apply to the area: a corner typed outside -90..90 is an error by rule id.
        polygon.fill("95,-83 42,-82 42.5,-82.5")
        expect(page.get_by_test_id("findings")).to_contain_text("cap.polygon", timeout=10_000)
        # Clear: both fields empty, nothing on the map.
        page.get_by_role("button", name="Clear the area").click()
        expect(polygon).to_have_value("")
        expect(circle).to_have_value("")
        expect(page.get_by_test_id("area-map")).to_have_attribute("data-shapes", "0")
        # Drawn again and issued: the alert's CAP has the polygon.
        draw_polygon(page, [(0.4, 0.4), (0.5, 0.4), (0.5, 0.5), (0.4, 0.5)])
        drawn = polygon.input_value()
        assert len(ring_of(drawn)) == 5
        expect(page.get_by_test_id("preview").first).to_be_visible(timeout=10_000)
        page.get_by_role("button", name="Issue the alert").click()
        expect(page).to_have_url(re.compile(r"/alerts/"))
        raw = page.locator("details.raw")
        expect(raw).to_contain_text("<polygon>")
        expect(raw).to_contain_text(drawn.split()[1])
        assert complaints == []

    def test_an_update_starts_from_the_shape_it_had(
        self, browser: Any, console_daemon: ConsoleDaemon
    ) -> None:
        page, _complaints = open_compose(browser, console_daemon)
        fill_capcp(page, f"Update me {uuid.uuid4().hex[:6]}")
        draw_polygon(page, [(0.45, 0.45), (0.6, 0.45), (0.55, 0.6)])
        drawn = page.locator('input[name="polygon"]').input_value()
        expect(page.get_by_test_id("preview").first).to_be_visible(timeout=10_000)
        page.get_by_role("button", name="Issue the alert").click()
        expect(page).to_have_url(re.compile(r"/alerts/"))
        expect(page.get_by_test_id("update")).to_have_text("Update")
        page.get_by_test_id("update").click()
        expect(page.get_by_test_id("area-map")).to_have_attribute("data-shapes", "1")
        assert ring_of(page.locator('input[name="polygon"]').input_value()) == ring_of(drawn)
