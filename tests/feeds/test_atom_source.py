"""The ``atom`` source on its own, against a small Atom server on loopback: conditional GET,
and an entry counted as handled only once the gateway acknowledged its admission."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from aiohttp import web

from adapters.atom.adapter import AtomSource, from_context
from cap_schemas.parse import parse_alert
from tests.feeds.conftest import FakeClock, collecting, make_alert, source_context

ETAG = '"feed-1"'


def _feed(alerts: list[bytes]) -> bytes:
    entries = "".join(
        f"<entry><id>urn:test:{n}</id><title>alert {n}</title>"
        f"<updated>2026-01-15T12:00:0{n}Z</updated>"
        f'<content type="application/xml">{raw.split(b"?>", 1)[-1].decode()}</content></entry>'
        for n, raw in enumerate(alerts)
    )
    return (
        '<?xml version="1.0" encoding="UTF-8"?><feed xmlns="http://www.w3.org/2005/Atom">'
        "<id>urn:test:feed</id><title>partner</title><updated>2026-01-15T12:00:00Z</updated>"
        f"{entries}</feed>"
    ).encode()


class _Partner:
    """A partner's Atom feed: answers 304 when asked with its ETag."""

    def __init__(self, alerts: list[bytes]) -> None:
        self.body = _feed(alerts)
        self.statuses: list[int] = []

    async def handle(self, request: web.Request) -> web.Response:
        if request.headers.get("If-None-Match") == ETAG:
            self.statuses.append(304)
            return web.Response(status=304, headers={"ETag": ETAG})
        self.statuses.append(200)
        return web.Response(
            body=self.body, content_type="application/atom+xml", headers={"ETag": ETAG}
        )


@pytest.fixture
async def partner() -> AsyncIterator[tuple[_Partner, str]]:
    feed = _Partner([make_alert("atom-1"), make_alert("atom-2")])
    app = web.Application()
    app.router.add_get("/feeds/alerts.atom", feed.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield feed, f"http://127.0.0.1:{port}/feeds/alerts.atom"
    finally:
        await runner.cleanup()


def atom_source(url: str, clock: FakeClock) -> AtomSource:
    source = from_context(source_context("atom-test", {"url": url, "interval": 5}, clock=clock))
    assert isinstance(source, AtomSource)
    return source


class TestAcknowledgement:
    """Entries a run left unacknowledged (a ledger failure, a lost leadership) are handed on
    again when the source is entered again; the feed's validators are kept only once every
    entry is acknowledged, so such an entry never hides behind a 304."""

    async def test_unacknowledged_entries_come_again(
        self, partner: tuple[_Partner, str], fake_clock: FakeClock
    ) -> None:
        feed, url = partner
        source = atom_source(url, fake_clock)
        async with collecting(source) as got:
            await got.wait_count(2)
            await fake_clock.wait_for_sleepers(1)
            first = got.items[0]
            assert first.ack is not None
            await first.ack()
            # One still pending: asked again without validators, nothing handed on twice.
            await fake_clock.advance(5)
            await fake_clock.wait_for_sleepers(1)
            assert feed.statuses == [200, 200]
            assert len(got.items) == 2
        async with collecting(source) as got:
            await got.wait_count(1)
            await fake_clock.wait_for_sleepers(1)
            assert parse_alert(got.items[0].raw).identifier == "atom-2"
            assert got.items[0].ack is not None
            await got.items[0].ack()
            # Every entry acknowledged: the validators are kept, the feed answers 304.
            for _ in range(2):
                await fake_clock.advance(5)
                await fake_clock.wait_for_sleepers(1)
            assert feed.statuses[-2:] == [200, 304]
            assert len(got.items) == 1
