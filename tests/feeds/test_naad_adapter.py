"""The NAAD source against the NAAD simulator over real loopback sockets."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from adapters.naad.adapter import GAPS, NaadOptions
from cap_schemas.model import AlertKey
from cap_schemas.parse import parse_alert
from gateway.errors import ConfigError
from hardware.feed_alerts import load_alerts
from hardware.sim_naad import NaadSimulator
from tests.feeds.conftest import (
    FakeClock,
    TlsFiles,
    collecting,
    make_alert,
    naad_run,
    naad_source,
    rejected,
    wait_for,
)

_CUT = make_alert("cut")


def key_of(raw: bytes) -> AlertKey:
    return parse_alert(raw).key


class TestTwoStreams:
    """Every alert is yielded once per stream that carries it; one stream dying loses nothing."""

    async def test_both_streams_deliver_each_alert(
        self, alert_factory: Callable[..., bytes]
    ) -> None:
        async with naad_run(2) as (sim, _, got):
            for n in range(3):
                await sim.publish(alert_factory(f"two-{n}"))
            await got.wait_count(6)
            channels = {item.channel for item in got.items}
            assert channels == {f"127.0.0.1:{p}" for p in sim.ports}
            for n in range(3):
                raw = alert_factory(f"two-{n}")
                assert sum(item.raw == raw for item in got.items) == 2
            assert all(item.source == "naad-test" for item in got.items)

    async def test_stream_one_killed_everything_arrives_via_stream_two(
        self, alert_factory: Callable[..., bytes]
    ) -> None:
        async with naad_run(2) as (sim, source, got):
            await sim.stop_stream(0)
            await wait_for(lambda: not source.health()[0].healthy)
            raws = [alert_factory(f"after-kill-{n}") for n in range(5)]
            for raw in raws:
                await sim.publish(raw)
            await got.wait_count(5)
            assert [item.raw for item in got.items] == raws
            assert {item.channel for item in got.items} == {f"127.0.0.1:{sim.ports[1]}"}
            health = source.health()
            assert [h.healthy for h in health] == [False, True]
            assert source.healthy()
            # The stream comes back: the adapter reconnects by itself.
            await sim.start_stream(0)
            await wait_for(lambda: sim.connections(0) == 1)
            await wait_for(lambda: all(h.healthy for h in source.health()))

    async def test_real_feed_alerts_pass_byte_for_byte(self) -> None:
        alerts = load_alerts("naad")
        async with naad_run(live=True) as (sim, _, got):
            sent = [await sim.publish(raw) for raw in alerts]
            await got.wait_count(len(alerts))
            keys = [key_of(item.raw) for item in got.items]
            assert [(k.sender, k.identifier) for k in keys] == [(s, i) for s, i, _ in sent]
            # Made live: each one expires in the future.
            assert all(not parse_alert(item.raw).is_expired() for item in got.items)


class TestBackfill:
    """A heartbeat sends the adapter to the archive for every listed alert the ledger lacks."""

    async def test_withheld_alert_recovered_after_next_heartbeat(
        self, alert_factory: Callable[..., bytes]
    ) -> None:
        async with naad_run(2) as (sim, _, got):
            shown = alert_factory("shown")
            hidden = alert_factory("hidden")
            await sim.publish(shown)
            await sim.publish(hidden, withhold=True)
            await got.wait_count(2)
            assert all(item.raw == shown for item in got.items)
            sim.send_heartbeat()
            await got.wait_until(lambda items: any(i.channel == "archive" for i in items))
            archived = [i for i in got.items if i.channel == "archive"]
            assert [i.raw for i in archived] == [hidden]
            # The alert yielded from the streams was not fetched again, and the
            # heartbeat itself is never yielded.
            assert all(b"NAADS-Heartbeat" not in i.raw for i in got.items)
            assert len(sim.archive_requests) == 1
            assert "hidden" in sim.archive_requests[0]

    async def test_seen_alerts_are_not_fetched(self, alert_factory: Callable[..., bytes]) -> None:
        admitted: set[AlertKey] = set()

        async def seen(key: AlertKey) -> bool:
            return key in admitted

        async with naad_run(seen=seen) as (sim, _, got):
            known = alert_factory("known")
            missing = alert_factory("missing")
            admitted.add(key_of(known))
            await sim.publish(known, withhold=True)
            await sim.publish(missing, withhold=True)
            sim.send_heartbeat()
            await got.wait_count(1)
            assert [i.raw for i in got.items] == [missing]
            assert len(sim.archive_requests) == 1

    async def test_falls_back_to_second_mirror(self, alert_factory: Callable[..., bytes]) -> None:
        async with naad_run(archive_attempts=2) as (sim, _, got):
            sim.archive_faults["capcp1"] = 503
            raw = alert_factory("mirror")
            await sim.publish(raw, withhold=True)
            sim.send_heartbeat()
            await got.wait_count(1)
            assert got.items[0].raw == raw
            mirrors = [p.split("/")[1] for p in sim.archive_requests]
            assert mirrors == ["capcp1", "capcp1", "capcp2"]

    async def test_archive_serving_another_alert_is_rejected(
        self, alert_factory: Callable[..., bytes]
    ) -> None:
        before = rejected("naad", "archive_mismatch")
        async with naad_run() as (sim, _, got):
            raw = alert_factory("swapped")
            await sim.publish(raw, withhold=True)
            for path in list(sim._archive):
                sim._archive[path] = alert_factory("impostor")
            sim.send_heartbeat()
            await wait_for(lambda: rejected("naad", "archive_mismatch") >= before + 2)
            # Nothing was yielded; a good alert afterwards still flows.
            good = alert_factory("after-impostor")
            await sim.publish(good)
            await got.wait_count(1)
            assert [i.raw for i in got.items] == [good]

    async def test_unreachable_archive_is_retried_on_next_heartbeat(
        self, alert_factory: Callable[..., bytes]
    ) -> None:
        async with naad_run(archive_attempts=1) as (sim, source, got):
            sim.archive_faults["capcp1"] = 500
            sim.archive_faults["capcp2"] = 500
            raw = alert_factory("retry-later")
            await sim.publish(raw, withhold=True)
            sim.send_heartbeat()
            await wait_for(lambda: len(sim.archive_requests) == 2)
            await wait_for(lambda: not source._inflight)
            sim.archive_faults.clear()
            sim.send_heartbeat()
            await got.wait_count(1)
            assert got.items[0].raw == raw
            assert got.items[0].channel == "archive"


class TestAcknowledgement:
    """An alert counts as handled once the gateway acknowledged its admission. One a run left
    unacknowledged (the ledger failed, the leadership moved, the daemon stopped) is fetched
    from the archive when a later heartbeat lists it; one acknowledged is never fetched."""

    async def test_an_alert_never_acknowledged_comes_back_by_the_heartbeat(
        self, alert_factory: Callable[..., bytes]
    ) -> None:
        async with NaadSimulator(ports=[0], heartbeat_interval=None, live=False) as sim:
            source = naad_source(sim)
            raw = alert_factory("never-acknowledged")
            async with collecting(source) as got:
                await wait_for(lambda: sim.connections() == 1)
                await sim.publish(raw)
                await got.wait_count(1)
                # A heartbeat right behind it: pending, so not fetched while the run goes on.
                sim.send_heartbeat()
                await sim.publish(alert_factory("behind"))
                await got.wait_count(2)
                assert not source._inflight
                assert sim.archive_requests == []
            # The run ended without acknowledging it; the source is entered again.
            await wait_for(lambda: sim.connections() == 0)
            async with collecting(source) as got:
                await wait_for(lambda: sim.connections() == 1)
                sim.send_heartbeat()
                await got.wait_until(lambda items: len(items) >= 2)
                assert sorted(i.raw for i in got.items) == sorted([raw, alert_factory("behind")])
                assert {i.channel for i in got.items} == {"archive"}

    async def test_an_acknowledged_alert_is_not_fetched_again(
        self, alert_factory: Callable[..., bytes]
    ) -> None:
        async with NaadSimulator(ports=[0], heartbeat_interval=None, live=False) as sim:
            source = naad_source(sim)
            async with collecting(source) as got:
                await wait_for(lambda: sim.connections() == 1)
                await sim.publish(alert_factory("acknowledged"))
                await got.wait_count(1)
                assert got.items[0].ack is not None
                await got.items[0].ack()
            await wait_for(lambda: sim.connections() == 0)
            async with collecting(source) as got:
                await wait_for(lambda: sim.connections() == 1)
                sim.send_heartbeat()
                later = alert_factory("later")
                await sim.publish(later)
                await got.wait_count(1)
                # The heartbeat was read before the later alert: nothing was sent for.
                assert [i.raw for i in got.items] == [later]
                assert not source._inflight
                assert sim.archive_requests == []


class TestLiveness:
    """A silent stream is dropped after the liveness timeout and reconnected; health follows."""

    async def test_silent_streams_go_red_then_green(
        self, fake_clock: FakeClock, alert_factory: Callable[..., bytes]
    ) -> None:
        backoff = {"reconnect_initial": 1.0, "reconnect_max": 30.0}
        async with naad_run(2, clock=fake_clock, **backoff) as (sim, source, got):
            assert source.options.liveness_timeout == 75.0
            await fake_clock.wait_for_sleepers(2)  # both watchdogs armed
            assert source.healthy()
            sim.stall()  # half-open: connected, nothing arrives
            await fake_clock.advance(40)
            assert source.healthy()
            await fake_clock.advance(36)
            assert not source.healthy()
            assert all("no document" in h.detail or "closed" in h.detail for h in source.health())
            await wait_for(lambda: sim.connections() == 0)
            await fake_clock.wait_for_sleepers(2)  # both in reconnect backoff
            await fake_clock.advance(1.0)
            await wait_for(lambda: sim.total_connections(0) == 2 and sim.total_connections(1) == 2)
            # Connected again, but green only once data flows again.
            assert not source.healthy()
            assert "waiting for data" in source.health()[0].detail
            sim.send_heartbeat()
            await wait_for(source.healthy)
            raw = alert_factory("after-reconnect")
            await sim.publish(raw)
            await got.wait_count(2)
            assert all(i.raw == raw for i in got.items)

    async def test_heartbeats_keep_a_quiet_stream_alive(self, fake_clock: FakeClock) -> None:
        async with naad_run(clock=fake_clock) as (sim, source, _):
            await fake_clock.wait_for_sleepers(1)
            for _ in range(4):
                await fake_clock.advance(60)
                sim.send_heartbeat()
                await wait_for(lambda: source.health()[0].last_message_at == fake_clock.now())
                assert source.healthy()
            assert sim.total_connections(0) == 1


class TestHostileTraffic:
    """Fragmented, garbage-laden and oversize traffic: no crash, every good alert delivered."""

    async def test_byte_at_a_time_with_garbage(self, alert_factory: Callable[..., bytes]) -> None:
        garbage_before = rejected("naad", "garbage")
        async with naad_run(seed=7) as (sim, _, got):
            sim.set_fragment(1)
            sim.set_garbage(True)
            raws = [alert_factory(f"frag-{n}") for n in range(4)]
            for raw in raws:
                await sim.publish(raw)
            await got.wait_count(4, limit=30)
            assert [i.raw for i in got.items] == raws
        assert rejected("naad", "garbage") >= garbage_before + 4

    async def test_oversize_document_is_skipped(self, alert_factory: Callable[..., bytes]) -> None:
        before = rejected("naad", "oversize")
        async with naad_run() as (sim, _, got):
            first = alert_factory("before-big")
            await sim.publish(first)
            big = alert_factory("big").replace(
                b"<headline>", b"<headline>" + b"A" * (7 * 1024 * 1024)
            )
            sim.write(big)
            last = alert_factory("after-big")
            await sim.publish(last)
            await got.wait_count(2, limit=30)
            assert [i.raw for i in got.items] == [first, last]
        assert rejected("naad", "oversize") == before + 1

    @pytest.mark.parametrize(
        ("bad", "reason"),
        [
            (_CUT[: len(_CUT) // 2], "truncated"),
            (b"<alert><sender>NAADS-Heartbeat</sender><status>System</alert>", "bad_heartbeat"),
        ],
        ids=["truncated-document", "malformed-heartbeat"],
    )
    async def test_broken_document_is_counted_not_yielded(
        self, bad: bytes, reason: str, alert_factory: Callable[..., bytes]
    ) -> None:
        before = rejected("naad", reason)
        async with naad_run() as (sim, _, got):
            sim.write(bad)
            good = alert_factory(f"after-{reason}")
            await sim.publish(good)
            await got.wait_count(1)
            assert [i.raw for i in got.items] == [good]
        assert rejected("naad", reason) == before + 1


class TestOptions:
    """Configuration is checked up front, naming the key and what is allowed."""

    def test_defaults_are_the_two_naad_streams(self) -> None:
        opts = NaadOptions.from_mapping({})
        assert [(s.host, s.port, s.tls) for s in opts.streams] == [
            ("streaming1.naad-adna.pelmorex.com", 8080, False),
            ("streaming2.naad-adna.pelmorex.com", 8080, False),
        ]
        assert opts.liveness_timeout == 75.0
        assert "capcp1" in opts.archive_templates[0]
        assert "capcp2" in opts.archive_templates[1]

    def test_tls_stream_and_names(self) -> None:
        opts = NaadOptions.from_mapping(
            {"streams": [{"name": "naads2", "url": "tls://streaming.alertready.ca:8443"}]}
        )
        assert opts.streams[0].name == "naads2"
        assert opts.streams[0].tls
        assert opts.streams[0].port == 8443

    def test_bad_options_are_refused(self) -> None:
        with pytest.raises(ConfigError, match="streams"):
            NaadOptions.from_mapping({"streams": ["ftp://x:1"]})
        with pytest.raises(ConfigError, match="port"):
            NaadOptions.from_mapping({"streams": ["tcp://host"]})
        with pytest.raises(ConfigError, match="liveness_timeout"):
            NaadOptions.from_mapping({"liveness_timeout": -1})
        with pytest.raises(ConfigError, match="allowed"):
            NaadOptions.from_mapping({"archive_templates": ["http://x/{nope}.xml"]})
        with pytest.raises(ConfigError, match="unknown key"):
            NaadOptions.from_mapping({"stream": ["tcp://x:1"]})
        # The daemon's signature policy keys travel in the same table and are accepted.
        NaadOptions.from_mapping({"trust_anchors": ["a.pem"], "require_signature": True})


class TestTls:
    """NAADS 2.0 style streams over TLS, verified against a pinned CA file."""

    async def test_tls_stream_delivers(
        self, tls_files: TlsFiles, alert_factory: Callable[..., bytes]
    ) -> None:
        pinned = str(tls_files.ca)
        async with naad_run(tls=tls_files.server_context(), tls_ca_file=pinned) as (sim, _, got):
            assert sim.stream_urls()[0].startswith("tls://")
            raw = alert_factory("over-tls")
            await sim.publish(raw)
            await got.wait_count(1)
            assert got.items[0].raw == raw

    async def test_untrusted_certificate_is_refused(
        self, tls_files: TlsFiles, alert_factory: Callable[..., bytes]
    ) -> None:
        # No tls_ca_file: the system CA store, which does not hold the test CA.
        async with naad_run(tls=tls_files.server_context(), connect=False) as (sim, source, got):
            await wait_for(lambda: "connect failed" in source.health()[0].detail)
            assert not source.healthy()
            await sim.publish(alert_factory("never"))
            assert got.items == []


class TestReuse:
    """The supervisor may enter a source again after it exited (reusable, not re-entrant)."""

    async def test_enter_again_after_exit(self, alert_factory: Callable[..., bytes]) -> None:
        async with NaadSimulator(ports=[0], heartbeat_interval=None, live=False) as sim:
            source = naad_source(sim)
            for n in range(2):
                async with collecting(source) as got:
                    await wait_for(lambda: sim.connections() == 1)
                    with pytest.raises(RuntimeError, match="re-entrant"):
                        await source.__aenter__()
                    raw = alert_factory(f"round-{n}")
                    await sim.publish(raw)
                    await got.wait_count(1)
                    assert got.items[0].raw == raw
                await wait_for(lambda: sim.connections() == 0)


class TestSlowAndRedirected:
    """Bytes that never complete a document do not keep a stream alive; archive redirects are
    not followed."""

    async def test_trickling_unterminated_document_is_dropped(
        self, fake_clock: FakeClock, alert_factory: Callable[..., bytes]
    ) -> None:
        async with naad_run(clock=fake_clock) as (sim, source, got):
            await fake_clock.wait_for_sleepers(1)
            sim.write(b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><note>')
            for _ in range(7):  # a byte every 10 s: data, but never a document
                sim.write(b"x")
                await sim.flush()
                await fake_clock.advance(10)
            assert source.healthy()
            await fake_clock.advance(10)
            await wait_for(lambda: sim.connections() == 0)
            assert not source.healthy()
            await fake_clock.wait_for_sleepers(1)
            await fake_clock.advance(1.0)
            await wait_for(lambda: sim.connections() == 1)
            raw = alert_factory("after-trickle")
            await sim.publish(raw)
            await got.wait_count(1)
            assert got.items[0].raw == raw

    async def test_archive_redirect_is_not_followed(
        self, alert_factory: Callable[..., bytes]
    ) -> None:
        before = rejected("naad", "archive_status")
        async with naad_run(archive_attempts=1) as (sim, _, got):
            sim.archive_faults["capcp1"] = 302
            raw = alert_factory("redirected")
            await sim.publish(raw, withhold=True)
            sim.send_heartbeat()
            await got.wait_count(1)
            assert got.items[0].raw == raw  # from capcp2
        assert rejected("naad", "archive_status") == before + 1
        assert [p.split("/")[1] for p in sim.archive_requests] == ["capcp1", "capcp2"]


class TestArchiveContent:
    """The archive is untrusted: an HTML page or a truncated body is refused and the next
    mirror is asked."""

    @pytest.mark.parametrize("kind", ["html", "truncated"])
    async def test_bad_body_then_other_mirror(
        self, kind: str, alert_factory: Callable[..., bytes]
    ) -> None:
        before = rejected("naad", "archive_malformed")
        async with naad_run() as (sim, _, got):
            raw = alert_factory(f"bad-body-{kind}")
            await sim.publish(raw, withhold=True)
            sim.archive_bodies["capcp1"] = (
                b"<html><body>Service Unavailable</body></html>"
                if kind == "html"
                else raw[: len(raw) // 2]
            )
            sim.send_heartbeat()
            await got.wait_count(1)
            assert got.items[0].raw == raw
            assert [p.split("/")[1] for p in sim.archive_requests] == ["capcp1", "capcp2"]
        assert rejected("naad", "archive_malformed") == before + 1


class TestGapAlarm:
    """When none of the ten alerts a heartbeat lists reached the source, it raises an alarm:
    anything sent before them cannot be recovered from the heartbeat."""

    async def test_gap_counted_after_ten_unseen_alerts(
        self, alert_factory: Callable[..., bytes]
    ) -> None:
        async with naad_run(backfill=False) as (sim, source, got):
            stream = f"127.0.0.1:{sim.ports[0]}"
            before = GAPS.value(source="naad-test", stream=stream)
            await sim.publish(alert_factory("seen-0"))
            await got.wait_count(1)
            sim.send_heartbeat()  # lists seen-0: fine
            for n in range(12):
                await sim.publish(alert_factory(f"lost-{n}"), withhold=True)
            sim.send_heartbeat()  # lists ten unseen alerts: a gap
            await sim.flush()
            await wait_for(lambda: GAPS.value(source="naad-test", stream=stream) == before + 1)
            assert source._streams[0].heartbeats == 2
