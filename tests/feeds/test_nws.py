"""api.weather.gov: User-Agent, conditional GET, CAP per alert, Retry-After, hostile answers."""

from __future__ import annotations

import contextlib
import json
from dataclasses import replace
from datetime import UTC
from pathlib import Path

import aiohttp
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.feeds.base import SeenCheck
from adapters.nws.adapter import NwsOptions, NwsSource, from_context
from adapters.nws.codec import FeedError, active_url, alert_url, parse_active
from cap_schemas.model import AlertKey
from cap_schemas.parse import parse_alert
from gateway.errors import ConfigError
from hardware.feed_alerts import load_alerts
from hardware.sim_feeds import NwsSimulator
from tests.feeds.conftest import FakeClock, collecting, rejected, source_context


def nws_source(
    sim: NwsSimulator, clock: FakeClock, *, seen: SeenCheck | None = None, **options: object
) -> NwsSource:
    opts: dict[str, object] = {
        "base_url": sim.base_url,
        "areas": ["VT", "NY"],
        "contact": "eoc-ops@example.org",
        **options,
    }
    source = from_context(source_context("nws-test", opts, clock=clock, seen=seen))
    assert isinstance(source, NwsSource)
    return source


def index_requests(sim: NwsSimulator) -> list[int]:
    return [r.status for r in sim.requests_to("/alerts/active")]


class TestPolling:
    """Active alerts of the configured areas arrive once each, as CAP XML."""

    async def test_alerts_of_configured_areas_as_cap(self, fake_clock: FakeClock) -> None:
        async with NwsSimulator(load_alerts("nws"), clock=fake_clock) as sim:
            source = nws_source(sim, fake_clock)
            async with collecting(source) as got:
                await got.wait_count(2)
                await fake_clock.wait_for_sleepers(1)
                events = sorted(parse_alert(i.raw).infos[0].event for i in got.items)
                assert events == ["Lake Effect Snow Warning", "Winter Storm Warning"]
                assert {i.channel for i in got.items} == {"area:VT", "area:NY"}
                cap_requests = sim.requests_to("/alerts/urn")
                assert len(cap_requests) == 2
                assert all(r.headers["Accept"] == "application/cap+xml" for r in cap_requests)
                agent = sim.requests[0].headers["User-Agent"]
                assert "borderlink/" in agent
                assert "eoc-ops@example.org" in agent

    async def test_conditional_get_and_no_refetch(self, fake_clock: FakeClock) -> None:
        async with NwsSimulator(load_alerts("nws"), clock=fake_clock) as sim:
            source = nws_source(sim, fake_clock, areas=["VT"])
            async with collecting(source) as got:
                await got.wait_count(1)
                await fake_clock.wait_for_sleepers(1)
                assert got.items[0].ack is not None
                await got.items[0].ack()  # admitted: only now are the validators kept
                for _ in range(3):
                    await fake_clock.advance(60)
                    await fake_clock.wait_for_sleepers(1)
                assert index_requests(sim) == [200, 200, 304, 304]
                second = sim.requests_to("/alerts/active")[2].headers
                assert second["If-None-Match"].startswith('"')
                assert "If-Modified-Since" in second
                # A new alert changes the index: 200 again, only the new one is fetched.
                (vermont,) = [a for a in load_alerts("nws") if b"VTZ002" in a]
                new = vermont.replace(b".001.1<", b".777.1<")
                sim.post(new)
                await fake_clock.advance(60)
                await got.wait_count(2)
                await fake_clock.wait_for_sleepers(1)
                assert index_requests(sim)[-1] == 200
                assert len(sim.requests_to("/alerts/urn")) == 2
                assert len(got.items) == 2

    async def test_unacknowledged_alert_is_fetched_again(self, fake_clock: FakeClock) -> None:
        """Validators are kept only once every listed alert is acknowledged: an alert a run
        left unacknowledged (a ledger failure, a lost leadership) must not hide behind a 304
        when the source is entered again."""
        async with NwsSimulator(load_alerts("nws"), clock=fake_clock) as sim:
            source = nws_source(sim, fake_clock, areas=["VT"])
            async with collecting(source) as got:
                await got.wait_count(1)
                await fake_clock.wait_for_sleepers(1)
                # Pending: the next poll asks without validators and fetches nothing.
                await fake_clock.advance(60)
                await fake_clock.wait_for_sleepers(1)
                assert index_requests(sim) == [200, 200]
                assert len(sim.requests_to("/alerts/urn")) == 1
            async with collecting(source) as got:
                await got.wait_count(1)
                await fake_clock.wait_for_sleepers(1)
                assert len(sim.requests_to("/alerts/urn")) == 2
                assert got.items[0].ack is not None
                await got.items[0].ack()
                # Acknowledged: now the validators are kept and the index answers 304.
                await fake_clock.advance(60)
                await fake_clock.wait_for_sleepers(1)
                await fake_clock.advance(60)
                await fake_clock.wait_for_sleepers(1)
                assert index_requests(sim)[-2:] == [200, 304]
                assert len(got.items) == 1

    async def test_seen_alerts_are_not_fetched(self, fake_clock: FakeClock) -> None:
        async with NwsSimulator(load_alerts("nws"), clock=fake_clock) as sim:
            known = {p.alert.key for p in sim.posted if "VTZ" in p.raw.decode()}

            async def seen(key: AlertKey) -> bool:
                return key in known

            source = nws_source(sim, fake_clock, seen=seen)
            async with collecting(source) as got:
                await got.wait_count(1)
                await fake_clock.wait_for_sleepers(1)
                assert len(sim.requests_to("/alerts/urn")) == 1
                assert parse_alert(got.items[0].raw).infos[0].event == "Lake Effect Snow Warning"

    async def test_retry_after_is_honoured(self, fake_clock: FakeClock) -> None:
        async with NwsSimulator(load_alerts("nws"), clock=fake_clock) as sim:
            sim.faults.fail_count, sim.faults.fail_status, sim.faults.retry_after = 1, 429, 600
            source = nws_source(sim, fake_clock, areas=["VT"])
            async with collecting(source) as got:
                await fake_clock.wait_for_sleepers(1)
                assert index_requests(sim) == [429]
                assert source.health()[0].healthy is False
                for _ in range(9):
                    await fake_clock.advance(60)
                    await fake_clock.wait_for_sleepers(1)
                assert index_requests(sim) == [429]  # 540 s later: still waiting
                await fake_clock.advance(61)
                await got.wait_count(1)
                assert index_requests(sim) == [429, 200]
                assert source.health()[0].healthy

    async def test_hostile_answers_are_counted_and_survived(self, fake_clock: FakeClock) -> None:
        async with NwsSimulator(load_alerts("nws"), clock=fake_clock) as sim:
            sim.faults.garbage_count = 1
            source = nws_source(sim, fake_clock, areas=["VT"], max_index_bytes=100_000)
            before_syntax = rejected("nws", "syntax")
            before_oversize = rejected("nws", "oversize")
            async with collecting(source) as got:
                await fake_clock.wait_for_sleepers(1)
                sim.faults.oversize_count, sim.faults.oversize_bytes = 1, 1_000_000
                for _ in range(10):
                    if got.items:
                        break
                    await fake_clock.advance(120)
                    await fake_clock.wait_for_sleepers(1)
                assert len(got.items) == 1
            assert rejected("nws", "syntax") == before_syntax + 1
            assert rejected("nws", "oversize") == before_oversize + 1

    async def test_simulator_refuses_without_user_agent(self) -> None:
        async with (
            NwsSimulator(load_alerts("nws")) as sim,
            aiohttp.ClientSession(skip_auto_headers=["User-Agent"]) as session,
            session.get(active_url(sim.base_url, "VT")) as response,
        ):
            assert response.status == 403


class TestCodec:
    """The GeoJSON index is read defensively; URLs are built from the base, not the feed."""

    def test_parse_index(self) -> None:
        body = json.dumps(
            {
                "features": [
                    {
                        "properties": {
                            "id": "urn:a",
                            "sender": "s",
                            "sent": "2025-01-01T00:00:00+00:00",
                        }
                    },
                    {"properties": {"id": "urn:b"}},
                    "junk",
                ]
            }
        ).encode()
        (entry,) = parse_active(body)
        assert entry.key == AlertKey("s", "urn:a", "2025-01-01T00:00:00-00:00")

    @pytest.mark.parametrize(("body", "reason"), [(b"<html>", "syntax"), (b"[]", "not_feed")])
    def test_bad_index(self, body: bytes, reason: str) -> None:
        with pytest.raises(FeedError) as info:
            parse_active(body)
        assert info.value.reason == reason

    def test_urls(self) -> None:
        assert active_url("https://api.weather.gov/", "VT") == (
            "https://api.weather.gov/alerts/active?area=VT"
        )
        assert alert_url("https://api.weather.gov", "urn:oid:2.49.0.1.840.0.x/../y") == (
            "https://api.weather.gov/alerts/urn:oid:2.49.0.1.840.0.x%2F..%2Fy"
        )

    def test_options(self, tmp_path: Path) -> None:
        with pytest.raises(ConfigError, match="User-Agent"):
            NwsOptions.from_mapping({"areas": ["VT"]})
        with pytest.raises(ConfigError, match="two-letter"):
            NwsOptions.from_mapping({"areas": ["Vermont"], "contact": "x"})
        with pytest.raises(ConfigError, match="floor"):
            NwsOptions.from_mapping({"areas": ["VT"], "contact": "x", "interval": 5})
        opts = NwsOptions.from_mapping({"areas": ["vt"], "user_agent": "eoc-gateway/2 (ops@x)"})
        assert opts.areas == ("VT",)
        assert opts.user_agent == "eoc-gateway/2 (ops@x)"


class TestHostileIndex:
    """Whatever bytes come back as the index, the reader returns entries or its own error."""

    def test_deep_nesting(self) -> None:
        with pytest.raises(FeedError) as info:
            parse_active(b"[" * 100_000)
        assert info.value.reason == "too_deep"

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300))
    def test_random_bytes(self, body: bytes) -> None:
        with contextlib.suppress(FeedError):
            parse_active(body)

    @settings(max_examples=200, deadline=None)
    @given(
        st.recursive(
            st.none() | st.booleans() | st.integers() | st.text(max_size=20),
            lambda children: (
                st.lists(children, max_size=4)
                | st.dictionaries(
                    st.sampled_from(["features", "properties", "id", "sender", "sent", "x"]),
                    children,
                    max_size=4,
                )
            ),
            max_leaves=30,
        )
    )
    def test_random_json(self, value: object) -> None:
        try:
            entries = parse_active(json.dumps(value).encode())
        except FeedError:
            return
        for entry in entries:
            assert entry.key.identifier


class TestDocumentCheck:
    """The fetched CAP must be the alert the index named: another identifier is refused;
    another spelling of ``sent`` in the index is tolerated (the document is what counts)."""

    async def test_other_identifier_refused(self, fake_clock: FakeClock) -> None:
        vermont = next(a for a in load_alerts("nws") if b"VTZ002" in a)
        async with NwsSimulator([vermont], clock=fake_clock) as sim:
            posted = sim.posted[0]
            swapped = posted.raw.replace(b".001.1<", b".999.1<")
            sim.posted[0] = replace(posted, raw=swapped)
            before = rejected("nws", "mismatch")
            source = nws_source(sim, fake_clock, areas=["VT"])
            async with collecting(source) as got:
                await fake_clock.wait_for_sleepers(1)
                assert got.items == []
                assert rejected("nws", "mismatch") == before + 1

    async def test_index_in_utc_is_tolerated(self, fake_clock: FakeClock) -> None:
        vermont = next(a for a in load_alerts("nws") if b"VTZ002" in a)
        async with NwsSimulator([vermont], clock=fake_clock) as sim:
            posted = sim.posted[0]
            in_utc = replace(posted.alert, sent=posted.alert.sent.astimezone(UTC))
            sim.posted[0] = replace(posted, alert=in_utc)
            source = nws_source(sim, fake_clock, areas=["VT"])
            async with collecting(source) as got:
                await got.wait_count(1)
                assert got.items[0].raw == posted.raw
                await fake_clock.wait_for_sleepers(1)
                # Known under both spellings: the next poll fetches nothing again.
                await fake_clock.advance(60)
                await fake_clock.wait_for_sleepers(1)
                assert len(sim.requests_to("/alerts/urn")) == 1
