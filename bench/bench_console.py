"""The console under a full board: first render, page weight, and how fast a change shows.

A ledger is filled with 10,000 alerts -- 1,000 in force (two deliveries each) and 9,000
expired (the history) -- and a daemon is started on it with its console. Measured in one run:

* **first render of the board** with 1,000 alerts: the server's time for ``GET /`` (median
  of 5, the first one apart: it parses every alert once), against the JSON API's
  ``GET /api/v1/alerts?active=1&limit=1000`` as the baseline that existed before; and in the
  system's Chromium through Playwright, the time from navigation to the ``load`` event;
* **page weight**: the bytes on the wire for the board (gzip, as a browser asks) plus its
  style and script, and the same uncompressed;
* **the map** (``/map``): the server's time for ``GET /map/alerts.geojson`` with the 1,000
  alerts (median of 5), and the page's weight: everything it loads (HTML, styles, scripts,
  Leaflet, the base boundaries, the alerts, and the US counties, which the page fetches
  because the bench's alerts are located by SAME code only), gzip and uncompressed;
* **SSE latency**: from a ``POST /api/v1/alerts`` being answered to the ``change`` event for
  that alert on ``/events`` (20 alerts, median and p95), and in the browser from the POST to
  the new row on the board.

Goal (the console issue): first render under 1 s with 1,000 active alerts and 10,000 in
history, page weight under 1 MB.
"""

from __future__ import annotations

import asyncio
import contextlib
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp

from cap_schemas.parse import parse_alert
from gateway.console.accounts import add_account
from gateway.storage.sqlite import SqliteLedger
from tests.daemon.conftest import CapFactory
from tests.helpers import free_port, wait_for_port
from tests.ledger.conftest import Planner

ACTIVE = 1000
HISTORY = 9000
TOKEN = "bench-token-0123456789abcdef"
PASSWORD = "bench-pass-0123"
MAP_FILES = (
    "/map",
    "/static/console.css",
    "/static/console.js",
    "/static/vendor/leaflet/leaflet.css",
    "/static/vendor/leaflet/leaflet.js",
    "/static/map.js",
    "/map/geo/base.geojson",
    "/map/alerts.geojson",
    "/map/geo/us-counties.geojson",
)


def _fill(path: Path) -> None:
    ledger = SqliteLedger(path)
    factory = CapFactory(sender="bench@borderlink.invalid")
    now = datetime.now(UTC)
    planner = Planner(sinks=("feed", "air"))
    try:
        for n in range(HISTORY + ACTIVE):
            old = n < HISTORY
            sent = now - timedelta(days=2 if old else 0, minutes=n % 600)
            raw = factory(
                sent=sent,
                expires_in=timedelta(hours=1 if old else 48),
                severity=("Extreme", "Severe", "Moderate", "Minor")[n % 4],
                headline=f"bench alert {n}",
            )
            ledger.admit(parse_alert(raw), source="http", received_at=sent, plan=planner)
    finally:
        ledger.close()


def _config(tmp: Path, port: int) -> Path:
    (tmp / "token").write_text(TOKEN + "\n", encoding="utf-8")
    add_account(tmp / "users", "bench", "operator", PASSWORD)
    path = tmp / "bench.toml"
    path.write_text(
        f'[gateway]\ndata_dir = "{tmp}"\n\n[mqtt]\nenabled = false\n\n'
        f'[http]\nport = {port}\ntoken_file = "token"\nvalidation = "warn"\n\n'
        '[console]\nusers_file = "users"\n\n'
        f'[ledger]\npath = "{tmp / "ledger.sqlite3"}"\n\n'
        '[[sink]]\nname = "feed"\ntype = "file"\npath = "feed"\n\n'
        '[[sink]]\nname = "air"\ntype = "file"\npath = "air"\n\n'
        '[[route]]\nname = "all"\nsinks = ["feed"]\n',
        encoding="utf-8",
    )
    return path


async def _sign_in(http: aiohttp.ClientSession, base: str) -> None:
    async with http.get(f"{base}/login") as resp:
        page = await resp.text()
    token = page.split('name="form_token" value="', 1)[1].split('"', 1)[0]
    async with http.post(
        f"{base}/login",
        data={"name": "bench", "password": PASSWORD, "form_token": token},
        allow_redirects=False,
    ) as resp:
        assert resp.status == 302, resp.status


async def _timed_get(http: aiohttp.ClientSession, url: str, **kw: object) -> tuple[float, int]:
    started = time.perf_counter()
    async with http.get(url, **kw) as resp:  # type: ignore[arg-type]
        body = await resp.read()
        assert resp.status == 200, (url, resp.status)
    return time.perf_counter() - started, len(body)


async def _wire_bytes(base: str, path: str, cookies: dict[str, str], gzip: bool) -> int:
    """Bytes as they come over the connection (not decompressed)."""
    headers = {"Accept-Encoding": "gzip" if gzip else "identity"}
    async with (
        aiohttp.ClientSession(cookies=cookies, auto_decompress=False) as raw,
        raw.get(f"{base}{path}", headers=headers) as resp,
    ):
        return len(await resp.read())


async def _quiet(stream: aiohttp.ClientResponse, seconds: float) -> None:
    """Read the event stream until nothing came for ``seconds`` (the daemon's start-up work:
    the 9,000 alerts of the history expired, the 2,000 deliveries of the board sent)."""
    while True:
        try:
            await asyncio.wait_for(stream.content.readline(), seconds)
        except TimeoutError:
            return


async def _sse_latency(http: aiohttp.ClientSession, base: str, samples: int) -> list[float]:
    factory = CapFactory(sender="sse@borderlink.invalid")
    latencies: list[float] = []
    async with http.get(f"{base}/events", timeout=aiohttp.ClientTimeout(total=None)) as stream:
        await _quiet(stream, 2.0)
        for _ in range(samples):
            raw = factory(severity="Minor")
            ident = CapFactory.key_of(raw).split(",")[1]
            async with http.post(
                f"{base}/api/v1/alerts", data=raw, headers={"Authorization": f"Bearer {TOKEN}"}
            ) as resp:
                assert resp.status == 202
            answered = time.perf_counter()
            while True:
                line = (await asyncio.wait_for(stream.content.readline(), 10)).decode()
                if line.startswith("data:") and ident in line:
                    latencies.append(time.perf_counter() - answered)
                    break
    return latencies


def _browser(base: str, cookies: dict[str, str]) -> tuple[float, float]:
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only this measurement

    from tests.browser.conftest import chromium  # noqa: PLC0415

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium(), args=["--no-sandbox"])
        context = browser.new_context()
        context.add_cookies([{"name": k, "value": v, "url": base} for k, v in cookies.items()])
        page = context.new_page()
        page.goto(f"{base}/")  # warm: the parsed-alert cache and the browser's own
        loads = []
        for _ in range(3):
            page.goto(f"{base}/", wait_until="load")
            loads.append(
                page.evaluate(
                    "() => { const n = performance.getEntriesByType('navigation')[0];"
                    " return n.loadEventEnd - n.startTime; }"
                )
                / 1000
            )
        page.wait_for_selector("body[data-live=stream]")
        raw = CapFactory(sender="row@borderlink.invalid")(severity="Extreme", headline="row check")
        started = time.perf_counter()
        page.request.post(
            f"{base}/api/v1/alerts", data=raw, headers={"Authorization": f"Bearer {TOKEN}"}
        )
        page.get_by_text("row check").first.wait_for(timeout=20_000)
        row = time.perf_counter() - started
        browser.close()
    return statistics.median(loads), row


async def _measure(base: str) -> dict[str, object]:
    jar = aiohttp.CookieJar(unsafe=True)
    async with aiohttp.ClientSession(cookie_jar=jar) as http:
        await _sign_in(http, base)
        async with http.get(f"{base}/events", timeout=aiohttp.ClientTimeout(total=None)) as s:
            await _quiet(s, 3.0)
        first, _ = await _timed_get(http, f"{base}/")
        board = [(await _timed_get(http, f"{base}/"))[0] for _ in range(5)]
        api = [
            (await _timed_get(http, f"{base}/api/v1/alerts?active=1&limit=1000"))[0]
            for _ in range(5)
        ]
        cookies = {c.key: c.value for c in jar}
        weight = {
            gz: sum(
                [
                    await _wire_bytes(base, "/", cookies, gz),
                    await _wire_bytes(base, "/static/console.css", cookies, gz),
                    await _wire_bytes(base, "/static/console.js", cookies, gz),
                ]
            )
            for gz in (True, False)
        }
        geojson = [(await _timed_get(http, f"{base}/map/alerts.geojson"))[0] for _ in range(5)]
        map_weight = {
            gz: sum([await _wire_bytes(base, path, cookies, gz) for path in MAP_FILES])
            for gz in (True, False)
        }
        sse = await _sse_latency(http, base, 20)
    load, row = await asyncio.to_thread(_browser, base, cookies)
    return {"first": first, "board": board, "api": api, "weight": weight, "sse": sse,
            "load": load, "row": row, "geojson": geojson, "map_weight": map_weight}  # fmt: skip


def main() -> None:
    with tempfile.TemporaryDirectory() as folder:
        tmp = Path(folder)
        started = time.perf_counter()
        _fill(tmp / "ledger.sqlite3")
        print(f"ledger: {ACTIVE} active + {HISTORY} expired alerts in"
              f" {time.perf_counter() - started:.0f} s", flush=True)  # fmt: skip
        port = free_port()
        daemon = subprocess.Popen(
            [sys.executable, "-m", "gateway", "run", str(_config(tmp, port))],
            cwd=tmp, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )  # fmt: skip
        try:
            wait_for_port("127.0.0.1", port, timeout=60)
            got = asyncio.run(_measure(f"http://127.0.0.1:{port}"))
        finally:
            daemon.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                daemon.wait(timeout=15)
    board = statistics.median(got["board"])  # type: ignore[arg-type]
    api = statistics.median(got["api"])  # type: ignore[arg-type]
    sse: list[float] = sorted(got["sse"])  # type: ignore[call-overload]
    weight = got["weight"]
    print(f"{'measure':<44} {'value':>12}")
    print(f"{'board GET / first (cold parse), s':<44} {got['first']:>12.3f}")
    print(f"{'board GET / median of 5, s':<44} {board:>12.3f}")
    print(f"{'baseline JSON API active=1 limit=1000, s':<44} {api:>12.3f}")
    print(f"{'ratio board / JSON API':<44} {board / api:>12.2f}")
    print(f"{'browser navigation to load, median, s':<44} {got['load']:>12.3f}")
    print(f"{'page weight gzip (html+css+js), KiB':<44} {weight[True] / 1024:>12.0f}")  # type: ignore[index]
    print(f"{'page weight uncompressed, KiB':<44} {weight[False] / 1024:>12.0f}")  # type: ignore[index]
    print(f"{'SSE change after POST, median ms':<44} {statistics.median(sse) * 1000:>12.0f}")
    print(f"{'SSE change after POST, p95 ms':<44} {sse[int(len(sse) * 0.95) - 1] * 1000:>12.0f}")
    print(f"{'browser: POST to new row on the board, s':<44} {got['row']:>12.3f}")
    geojson = statistics.median(got["geojson"])  # type: ignore[arg-type]
    map_weight = got["map_weight"]
    print(f"{'map GET /map/alerts.geojson median of 5, s':<44} {geojson:>12.3f}")
    print(f"{'map page weight gzip (all it loads), KiB':<44} {map_weight[True] / 1024:>12.0f}")  # type: ignore[index]
    print(f"{'map page weight uncompressed, KiB':<44} {map_weight[False] / 1024:>12.0f}")  # type: ignore[index]
