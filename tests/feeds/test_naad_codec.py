"""The NAAD heartbeat reader and archive URLs (sans-IO, no sockets); the stream splitter
is the CAP library's (tests/cap/test_stream.py)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from adapters.naad.codec import (
    HeartbeatError,
    HeartbeatReference,
    archive_url,
    check_archive_template,
    read_heartbeat,
)
from cap_schemas.model import AlertKey
from cap_schemas.parse import parse_alert
from cap_schemas.stream import (
    canonical_key,
    peek_key,
)
from gateway.errors import ConfigError, FrameError
from hardware.feed_alerts import load_alerts
from hardware.sim_naad import heartbeat_document


class TestHeartbeat:
    """Heartbeats are recognised by sender prefix and status System; references are read."""

    def test_simulator_heartbeat_round_trip(self) -> None:

        refs = [
            ("cap-pac@canada.ca", "urn:oid:2.49.0.1.124.1.2025", "2025-07-14T19:42:10-00:00"),
            ("sq@gouv.qc.ca", "2.49.0.1.124.6a3f21c0.2025", "2025-06-02T14:12:00-04:00"),
        ]
        raw = heartbeat_document(datetime(2025, 7, 14, 20, 0, tzinfo=UTC), refs)
        hb = read_heartbeat(raw)
        assert hb is not None
        assert hb.sender == "NAADS-Heartbeat"
        assert [r.key for r in hb.references] == [AlertKey(*t) for t in refs]
        assert [r.sent_text for r in hb.references] == [t[2] for t in refs]

    def test_full_address_sender_and_bad_triples(self) -> None:
        raw = (
            b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><identifier>hb1</identifier>"
            b"<sender>NAADS-Heartbeat@naad-adna.pelmorex.com</sender>"
            b"<sent>2025-01-01T00:00:00-00:00</sent><status>System</status>"
            b"<msgType>Alert</msgType><scope>Public</scope>"
            b"<references>a,b,2025-01-01T00:00:00+00:00 broken a,b,notatime</references></alert>"
        )
        hb = read_heartbeat(raw)
        assert hb is not None
        assert hb.bad_references == ("broken", "a,b,notatime")
        # +00:00 is read into the ledger's canonical form; the URL keeps it as written.
        assert hb.references[0].key == AlertKey("a", "b", "2025-01-01T00:00:00-00:00")
        assert hb.references[0].sent_text == "2025-01-01T00:00:00+00:00"

    def test_ordinary_alert_is_not_a_heartbeat(self, alert_factory: Callable[..., bytes]) -> None:
        assert read_heartbeat(alert_factory("x")) is None
        # Mentioning the heartbeat sender is not enough: status must be System.
        mention = alert_factory("y").replace(b"tornado", b"NAADS-Heartbeat")
        assert read_heartbeat(mention) is None

    def test_malformed_heartbeat_raises_frame_error(self) -> None:
        with pytest.raises(HeartbeatError) as info:
            read_heartbeat(b"<alert><sender>NAADS-Heartbeat</sender>")
        assert isinstance(info.value, FrameError)
        with pytest.raises(HeartbeatError, match="identifier"):
            read_heartbeat(
                b"<alert><sender>NAADS-Heartbeat</sender><status>System</status></alert>"
            )

    def test_hostile_heartbeat_refused(self) -> None:
        with pytest.raises(HeartbeatError):
            read_heartbeat(
                b'<!DOCTYPE a [<!ENTITY e "x">]><alert><sender>NAADS-Heartbeat</sender>'
                b"<status>System</status></alert>"
            )


class TestIdentityAndArchive:
    """Keys are read cheaply from the head; archive URLs follow the capcp layout."""

    def test_peek_key_matches_parser(self) -> None:
        for kind in ("naad", "ipaws", "nws"):
            for raw in load_alerts(kind):
                assert peek_key(raw) == parse_alert(raw).key

    def test_peek_key_missing_fields(self) -> None:
        assert peek_key(b"<alert><identifier>x</identifier></alert>") is None

    def test_canonical_key(self) -> None:
        assert canonical_key("s", "i", "2025-01-01T00:00:00+00:00").sent == (
            "2025-01-01T00:00:00-00:00"
        )
        assert canonical_key("s", "i", "garbage").sent == "garbage"

    def test_archive_url_golden(self) -> None:
        # The real link from the NAADS rss2 feed (standards note §2.5).
        ref = HeartbeatReference(
            AlertKey("x", "2.49.0.1.124.41b6352f.2014", "2014-05-10T02:17:00-00:00"),
            "2014-05-10T02:17:00-00:00",
        )
        template = "http://capcp2.naad-adna.pelmorex.com/{date}/{sent}I{identifier}.xml"
        assert archive_url(template, ref) == (
            "http://capcp2.naad-adna.pelmorex.com/2014-05-10/"
            "2014_05_10T02_17_00_00_00I2.49.0.1.124.41b6352f.2014.xml"
        )
        ref2 = HeartbeatReference(
            AlertKey("x", "urn:oid:2.49.0.1.124.0326941791.2016", "2016-12-07T16:23:21-00:00"),
            "2016-12-07T16:23:21-00:00",
        )
        assert archive_url(template, ref2).endswith(
            "/2016-12-07/2016_12_07T16_23_21_00_00Iurn_oid_2.49.0.1.124.0326941791.2016.xml"
        )

    def test_archive_url_escapes_and_plus_offset(self) -> None:
        ref = HeartbeatReference(
            AlertKey("s", "a/b c", "2025-01-01T05:00:00+05:00"), "2025-01-01T05:00:00+05:00"
        )
        url = archive_url("https://h/{date}/{sent}I{identifier}.xml", ref)
        assert url == "https://h/2025-01-01/2025_01_01T05_00_00p05_00Ia%2Fb%20c.xml"

    def test_archive_url_needs_a_date(self) -> None:
        ref = HeartbeatReference(AlertKey("s", "i", "bad"), "bad")
        with pytest.raises(ValueError, match="date"):
            archive_url("http://h/{date}/{sent}.xml", ref)

    def test_templates_are_checked(self) -> None:
        check_archive_template("https://h/{date}/{sender}/{identifier}.xml")
        with pytest.raises(ConfigError, match="http"):
            check_archive_template("file:///etc/{date}")
        with pytest.raises(ConfigError, match="allowed"):
            check_archive_template("http://h/{when}.xml")


class TestHeartbeatProperties:
    """Random documents are a heartbeat, not one, or the reader's own FrameError."""

    @settings(max_examples=300, deadline=None)
    @given(
        st.lists(
            st.sampled_from(
                [
                    b"<alert>",
                    b"</alert>",
                    b"<sender>NAADS-Heartbeat</sender>",
                    b"<status>System</status>",
                    b"<identifier>i</identifier>",
                    b"<sent>2025-01-01T00:00:00-00:00</sent>",
                    b"<references>a,b,2025-01-01T00:00:00-00:00 x,y</references>",
                    b"<!DOCTYPE a>",
                    b"&amp;",
                    b"\x00",
                ]
            ),
            max_size=10,
        )
    )
    def test_token_soup(self, tokens: list[bytes]) -> None:
        with contextlib.suppress(HeartbeatError):
            read_heartbeat(b"".join(tokens))
