"""The pieces the feed sources share: poll options, the capped fetch, recent keys, the source
frame, and the poll loop with its backoff."""

from __future__ import annotations

import asyncio
import gzip
import itertools
import tracemalloc
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Self

import aiohttp
import pytest
from aiohttp import web
from structlog.testing import capture_logs

from adapters.feeds.base import (
    PASSTHROUGH_OPTIONS,
    FeedError,
    FeedSource,
    RecentKeys,
    both,
    fetch,
)
from adapters.feeds.polling import (
    POLLS,
    PollFailed,
    PollingSource,
    PollState,
    interval_option,
    next_poll_wait,
)
from adapters.ipaws.codec import extract_alerts
from adapters.nws.codec import parse_active
from cap_schemas.model import AlertKey
from gateway.adapter import SourceHealth
from gateway.errors import AdapterConnectionError, ConfigError, FrameError
from gateway.options import adapter_options
from tests.feeds.conftest import FakeClock, rejected
from tests.helpers import free_port


class TestPollOptions:
    """The options every poller shares are read with the gateway's one option reader."""

    def test_daemon_keys_are_accepted_by_every_feed(self) -> None:
        r = adapter_options("source", "s", {"a": 1, **dict.fromkeys(PASSTHROUGH_OPTIONS)})
        r.integer("a", 0)
        r.finish(allowed_extra=PASSTHROUGH_OPTIONS)

    def test_interval_floor_names_its_reason(self) -> None:
        r = adapter_options("source", "s", {"interval": 45})
        assert interval_option(r, 60, floor=30) == 45.0
        low = adapter_options("source", "s", {"interval": 29})
        with pytest.raises(
            ConfigError, match=r'^source "s"\.interval: 29 is below the floor of 30 s \(the rule\)$'
        ):
            interval_option(low, 60, floor=30, why="the rule")
        with pytest.raises(ConfigError, match=r'^source "s"\.interval: must be a number, got True'):
            interval_option(adapter_options("source", "s", {"interval": True}), 60, floor=30)


class TestNextPollWait:
    """Healthy: the interval. Failing: doubling per failure, capped, up to 10 % early, never
    below the interval nor the server's Retry-After."""

    def test_healthy(self) -> None:
        assert next_poll_wait(120, 0, backoff_max=1800) == 120

    def test_backoff_doubles_then_caps(self) -> None:
        for failures, full in ((1, 240), (2, 480), (3, 960), (4, 1800), (5, 1800)):
            for _ in range(50):
                assert full * 0.9 <= next_poll_wait(120, failures, backoff_max=1800) <= full

    def test_never_below_interval_or_retry_after(self) -> None:
        assert next_poll_wait(60, 1, backoff_max=60) == 60
        assert next_poll_wait(60, 1, backoff_max=900, retry_after=600) == 600

    def test_weeks_of_failures_do_not_overflow(self) -> None:
        assert 810 <= next_poll_wait(60, 5000, backoff_max=900) <= 900


def _key(n: int) -> AlertKey:
    return AlertKey("s@example.org", f"id-{n}", "2026-01-15T10:00:00-00:00")


class TestRecentKeys:
    """Fresh for ``ttl`` seconds; remembered until pruned; pruning starts past ``limit`` and
    forgets only keys older than ``ttl``."""

    async def test_fresh_membership_and_prune(self, fake_clock: FakeClock) -> None:
        keys = RecentKeys(fake_clock, ttl=100, limit=2)
        keys.add(_key(1))
        await fake_clock.advance(60)
        keys.add(_key(2))
        assert keys.fresh(_key(1))
        assert _key(3) not in keys
        assert not keys.fresh(_key(3))
        await fake_clock.advance(50)
        assert not keys.fresh(_key(1))
        assert _key(1) in keys  # stale but not forgotten yet
        keys.prune()
        assert len(keys) == 2  # not past the limit: nothing forgotten
        keys.add(_key(3))
        keys.prune()
        assert _key(1) not in keys
        assert _key(2) in keys
        assert _key(3) in keys


    async def test_pending_until_acknowledged(self, fake_clock: FakeClock) -> None:
        keys = RecentKeys(fake_clock, ttl=100, limit=10)
        first = keys.hold(_key(1))
        keys.hold(_key(2))
        # Pending: handled for the source's own questions, not yet for good.
        assert _key(1) in keys
        assert keys.fresh(_key(1))
        assert not keys.done(_key(1))
        assert keys.has_pending()
        await first()
        assert keys.done(_key(1))
        # The run ends: what nothing acknowledged is forgotten, what was acknowledged stays.
        keys.drop_pending()
        assert not keys.has_pending()
        assert _key(2) not in keys
        assert not keys.fresh(_key(2))
        assert _key(1) in keys
        await fake_clock.advance(150)
        assert not keys.fresh(_key(1))

    async def test_both_acknowledgements_run(self) -> None:
        calls: list[str] = []

        async def one() -> None:
            calls.append("one")

        async def two() -> None:
            calls.append("two")

        joined = both(one, two)
        assert joined is not None
        await joined()
        assert calls == ["one", "two"]
        assert both(None, two) is two
        assert both(one, None) is one
        assert both(None, None) is None


BOMB = gzip.compress(b"\x00" * (200 << 20), compresslevel=9)


@pytest.fixture
async def http_server() -> AsyncIterator[str]:
    """A small HTTP server on 127.0.0.1 with one route per behaviour under test."""

    async def big(_request: web.Request) -> web.Response:
        return web.Response(body=b"x" * 5000)

    async def streamed(request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse()
        await response.prepare(request)
        for _ in range(5):
            await response.write(b"y" * 1000)
        await response.write_eof()
        return response

    async def missing(_request: web.Request) -> web.Response:
        return web.Response(status=404, body=b"z" * 5000)

    async def moved(_request: web.Request) -> web.Response:
        raise web.HTTPFound("/big")

    async def bomb(_request: web.Request) -> web.Response:
        # 200 MB of zeros in about 200 KB: a gzip bomb
        return web.Response(body=BOMB, headers={"Content-Encoding": "gzip"})

    async def wrong_type(_request: web.Request) -> web.Response:
        return web.Response(body=b"\x89PNG\r\n\x1a\n" + b"\x00" * 100, content_type="image/png")

    app = web.Application()
    app.router.add_get("/bomb", bomb)
    app.router.add_get("/png", wrong_type)
    app.router.add_get("/big", big)
    app.router.add_get("/streamed", streamed)
    app.router.add_get("/missing", missing)
    app.router.add_get("/moved", moved)
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


class TestFetch:
    """One GET, capped: an answer over the cap is refused (declared or streamed), redirects are
    returned, not followed, and an error answer may be left unread."""

    async def test_cap_declared_and_streamed(self, http_server: str) -> None:
        async with aiohttp.ClientSession() as session:
            ok = await fetch(session, http_server + "/big", max_bytes=5000, time_limit=5)
            assert (ok.status, len(ok.body)) == (200, 5000)
            for path in ("/big", "/streamed"):
                with pytest.raises(FeedError, match="exceeds the cap") as info:
                    await fetch(session, http_server + path, max_bytes=4999, time_limit=5)
                assert info.value.reason == "oversize"

    async def test_redirect_returned_not_followed(self, http_server: str) -> None:
        async with aiohttp.ClientSession() as session:
            result = await fetch(session, http_server + "/moved", max_bytes=100, time_limit=5)
            assert result.status == 302
            assert result.headers["location"] == "/big"

    async def test_error_body_skipped_or_capped(self, http_server: str) -> None:
        async with aiohttp.ClientSession() as session:
            url = http_server + "/missing"
            result = await fetch(session, url, max_bytes=100, time_limit=5, skip_error_body=True)
            assert (result.status, result.body) == (404, b"")
            with pytest.raises(FeedError):
                await fetch(session, url, max_bytes=100, time_limit=5)

    async def test_gzip_bomb_is_capped_after_decompression(self, http_server: str) -> None:
        """What counts against the cap is what the body expands to, and memory stays small."""
        tracemalloc.start()
        try:
            async with aiohttp.ClientSession() as session:
                with pytest.raises(FeedError, match="exceeds the cap") as info:
                    await fetch(
                        session, http_server + "/bomb", max_bytes=1 << 20, time_limit=30
                    )
            _current, peak = tracemalloc.get_traced_memory()
        finally:
            tracemalloc.stop()
        assert info.value.reason == "oversize"
        assert peak < 64 << 20, f"peak {peak >> 20} MiB"

    async def test_wrong_content_is_refused_by_each_feed(self, http_server: str) -> None:
        """An image where a feed document belongs: each feed's codec refuses it by name."""
        async with aiohttp.ClientSession() as session:
            result = await fetch(session, http_server + "/png", max_bytes=1 << 20, time_limit=5)
        with pytest.raises(FrameError):
            parse_active(result.body)
        with pytest.raises(FrameError):
            extract_alerts(result.body, max_bytes=1 << 20)

    async def test_refused_connection(self) -> None:
        async with aiohttp.ClientSession() as session:
            url = f"http://127.0.0.1:{free_port()}/"
            with pytest.raises(AdapterConnectionError, match=r"127\.0\.0\.1"):
                await fetch(session, url, max_bytes=100, time_limit=5)


class _Idle(FeedSource):
    """A source whose only work is what the test spawns."""

    component = "idle"

    async def __aenter__(self) -> Self:
        self._session = aiohttp.ClientSession()
        return self

    def health(self) -> list[SourceHealth]:
        return [SourceHealth(name=f"{self.name}/only", healthy=bool(self._tasks))]


class TestFeedSource:
    """Exit cancels every task and closes the session; a task that dies is logged; emitted
    documents come out of messages() in order, stamped with the source's name and clock."""

    async def test_exit_cancels_and_closes(self, fake_clock: FakeClock) -> None:
        source = _Idle("idle-test", clock=fake_clock, queue_size=4)
        async with source:
            source._spawn(fake_clock.sleep(3600), "sleeper")
            await fake_clock.wait_for_sleepers(1)
            session = source._session
            assert source.healthy()
        assert session is not None
        assert session.closed
        assert source._session is None
        assert not source._tasks
        assert not source.healthy()

    async def test_failed_task_is_logged(self) -> None:
        async def boom() -> None:
            msg = "boom"
            raise RuntimeError(msg)

        source = _Idle("idle-test", queue_size=4)
        async with source:
            with capture_logs() as logs:
                source._spawn(boom(), "doomed")
                for _ in range(3):
                    await asyncio.sleep(0)
        (entry,) = [e for e in logs if e["event"] == "idle_task_failed"]
        assert entry["task"] == "doomed"
        assert "boom" in entry["error"]

    async def test_emit_and_messages(self, fake_clock: FakeClock) -> None:
        source = _Idle("idle-test", clock=fake_clock, queue_size=4)
        async with source:
            await source._emit(b"one", "a")
            await source._emit(b"two", "b")
            stream = source.messages()
            first, second = await anext(stream), await anext(stream)
            await stream.aclose()
        assert [(i.raw, i.channel, i.source) for i in (first, second)] == [
            (b"one", "a", "idle-test"),
            (b"two", "b", "idle-test"),
        ]
        assert first.received_at == fake_clock.now()
        assert first.ack is None


class _Scripted(PollingSource[PollState]):
    """Polls parts "good" and "bad"; "bad" raises what ``outcomes`` holds, then succeeds."""

    component = "scripted"

    def __init__(self, clock: FakeClock, outcomes: list[Exception | None]) -> None:
        super().__init__(
            "scripted-test",
            clock=clock,
            seen=None,
            states={"good": PollState(), "bad": PollState()},
            interval=60,
            backoff_max=600,
            stale_after=timedelta(seconds=200),
        )
        self.outcomes = outcomes
        self.started: list[float] = []

    async def __aenter__(self) -> Self:
        self._spawn(self._run(), "scripted")
        return self

    async def _poll(self, part: str) -> None:
        if part == "good":
            self.started.append(self.clock.monotonic())
            self._succeeded(part, self.clock.now())
            return
        outcome = self.outcomes.pop(0) if self.outcomes else None
        if outcome is not None:
            raise outcome
        self._succeeded(part, self.clock.now())


class TestPollLoop:
    """A failing part is counted and reported and backs the next round off; the other parts
    are still polled; success resets the backoff."""

    async def test_failure_bookkeeping_and_backoff(self, fake_clock: FakeClock) -> None:
        refused = FeedError("bad body", reason="syntax")
        before_rejected = rejected("scripted", "syntax")
        before_polls = POLLS.value(source="scripted-test", feed="bad", result="error")
        source = _Scripted(fake_clock, [])
        source.outcomes = [
            source._rejected(refused),
            PollFailed("HTTP 503", retry_after=300),
        ]
        with capture_logs() as logs:
            async with source:
                await fake_clock.wait_for_sleepers(1)
                health = {h.name: h for h in source.health()}
                assert health["scripted-test/good"].healthy
                assert not health["scripted-test/bad"].healthy
                assert health["scripted-test/bad"].detail == "bad body"
                assert source.healthy()  # one part answering is enough
                for _ in range(12):
                    await fake_clock.advance(60)
                    await fake_clock.wait_for_sleepers(1)
        assert source._states["bad"].failures == 0  # the third round succeeded
        gaps = [b - a for a, b in itertools.pairwise(source.started)]
        # 1 failure: 108..120 s; 2 failures, Retry-After 300: 300 s; then the plain interval.
        assert 108 <= gaps[0] <= 120
        assert gaps[1] == 300
        assert gaps[2] == 60
        assert source.polls == 2 * len(source.started)
        assert rejected("scripted", "syntax") == before_rejected + 1
        assert POLLS.value(source="scripted-test", feed="bad", result="error") == before_polls + 1
        failed = [e for e in logs if e["event"] == "scripted_poll_failed"]
        assert [(e["feed"], e["failures"], e["retry_after"]) for e in failed] == [
            ("bad", 1, None),
            ("bad", 2, 300),
        ]

    async def test_unexpected_error_does_not_end_polling(self, fake_clock: FakeClock) -> None:
        source = _Scripted(fake_clock, [RuntimeError("ledger locked"), RuntimeError("again")])
        with capture_logs() as logs:
            async with source:
                await fake_clock.wait_for_sleepers(1)
                bad = {h.name: h for h in source.health()}["scripted-test/bad"]
                assert not bad.healthy
                assert "internal error" in bad.detail
                assert "ledger locked" in bad.detail
                for _ in range(10):
                    await fake_clock.advance(60)
                    await fake_clock.wait_for_sleepers(1)
                assert all(h.healthy for h in source.health())
        assert len(source.started) >= 5
        crashed = [e for e in logs if e["event"] == "scripted_poll_crashed"]
        assert [e["feed"] for e in crashed] == ["bad", "bad"]
        assert source._states["bad"].failures == 0
