"""The NAAD stream splitter, heartbeat reader and archive URLs (sans-IO, no sockets)."""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from hypothesis import HealthCheck, given, settings
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
    CapStreamSplitter,
    Discarded,
    Document,
    Event,
    canonical_key,
    peek_key,
)
from gateway.errors import ConfigError, FrameError
from hardware.feed_alerts import load_alerts
from hardware.sim_naad import heartbeat_document
from tests.helpers import corpus_dir


def docs(events: list[Event]) -> list[bytes]:
    return [e.raw for e in events if isinstance(e, Document)]


def discards(events: list[Event]) -> list[str]:
    return [e.reason for e in events if isinstance(e, Discarded)]


def feed_all(splitter: CapStreamSplitter, chunks: list[bytes]) -> list[Event]:
    events: list[Event] = []
    for chunk in chunks:
        events += splitter.feed(chunk)
    return events + splitter.close()


def one_by_one(data: bytes) -> list[bytes]:
    return [data[i : i + 1] for i in range(len(data))]


class TestSplitterGolden:
    """Documents come out byte for byte, declaration included, whatever the read boundaries."""

    def test_back_to_back_documents_in_one_read(self, alert_factory: Callable[..., bytes]) -> None:
        a, b = alert_factory("a"), alert_factory("b").split(b"?>", 1)[1].lstrip()
        events = CapStreamSplitter().feed(a + b)
        assert docs(events) == [a, b]
        assert discards(events) == []

    def test_byte_at_a_time(self, alert_factory: Callable[..., bytes]) -> None:
        stream = alert_factory("a") + b"\r\n" + alert_factory("b")
        events = feed_all(CapStreamSplitter(), one_by_one(stream))
        assert docs(events) == [alert_factory("a"), alert_factory("b")]
        assert discards(events) == []

    def test_garbage_prefixed_and_between(self, alert_factory: Callable[..., bytes]) -> None:
        a, b = alert_factory("a"), alert_factory("b")
        stream = b"\x00\xffHTTP/1.1 200 OK\r\n<html>" + a + b"</alerts><alerts>junk" + b + b"tail"
        events = feed_all(CapStreamSplitter(), [stream])
        assert docs(events) == [a, b]
        assert discards(events) == ["garbage", "garbage", "garbage"]
        sizes = [e.size for e in events if isinstance(e, Discarded)]
        assert sizes[0] == len(b"\x00\xffHTTP/1.1200OK<html>")  # blanks are not counted

    def test_end_tag_in_cdata_and_comment_does_not_end_the_document(self) -> None:
        doc = (
            b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><note><![CDATA[ </alert> ]]>'
            b"</note><!-- </alert> --><identifier>x</identifier></alert>"
        )
        assert docs(feed_all(CapStreamSplitter(), one_by_one(doc))) == [doc]

    def test_prefixed_root_and_alerts_envelope(self) -> None:
        doc = b'<cap:alert xmlns:cap="urn:oasis:names:tc:emergency:cap:1.2"></cap:alert>'
        stream = b'<ns1:alerts xmlns:ns1="http://gov.fema.ipaws.services/feed">' + doc
        events = feed_all(CapStreamSplitter(), [stream, b"</ns1:alerts>"])
        assert docs(events) == [doc]

    def test_latin1_declaration_kept_with_its_document(self) -> None:
        doc = (
            b'<?xml version="1.0" encoding="ISO-8859-1"?>\n<alert xmlns="urn:oasis:names:tc:'
            b'emergency:cap:1.1"><identifier>x</identifier><note>Montr\xe9al</note></alert>'
        )
        (out,) = docs(feed_all(CapStreamSplitter(), one_by_one(b"  " + doc)))
        assert out == doc

    def test_nws_prolog_with_stylesheet_and_comment(self) -> None:
        doc = (
            b"<?xml version = '1.0' encoding = 'UTF-8' standalone = 'yes'?>\n"
            b"<?xml-stylesheet href='capatomproduct.xsl' type='text/xsl'?>\n\n"
            b"<!--\nThis atom/xml feed is an index\n-->\n\n"
            b"<alert xmlns = 'urn:oasis:names:tc:emergency:cap:1.1'></alert>"
        )
        assert docs(feed_all(CapStreamSplitter(), [doc])) == [doc]

    def test_declaration_without_document_is_garbage(
        self, alert_factory: Callable[..., bytes]
    ) -> None:
        a = alert_factory("a")
        events = feed_all(CapStreamSplitter(), [b'<?xml version="1.0"?>oops' + a])
        assert docs(events) == [a]
        assert discards(events) == ["garbage"]

    def test_document_cut_short_by_the_next(self, alert_factory: Callable[..., bytes]) -> None:
        a, b = alert_factory("a"), alert_factory("b")
        events = feed_all(CapStreamSplitter(), [a[:100], b])
        assert docs(events) == [b]
        assert discards(events) == ["truncated"]

    def test_stream_ending_mid_document(self, alert_factory: Callable[..., bytes]) -> None:
        splitter = CapStreamSplitter()
        assert splitter.feed(alert_factory("a")[:50]) == []
        assert discards(splitter.close()) == ["truncated"]
        assert splitter.buffered == 0

    def test_oversize_streamed_never_buffered_past_cap(
        self, alert_factory: Callable[..., bytes]
    ) -> None:
        cap = 4096
        splitter = CapStreamSplitter(max_document_bytes=cap)
        events = splitter.feed(b'<alert xmlns="x"><note>')
        for _ in range(200):
            events += splitter.feed(b"A" * 1000)
            assert splitter.buffered <= cap + 1000
        good = alert_factory("after")
        events += splitter.feed(b"</note></alert>" + good)
        assert discards(events) == ["oversize"]
        assert docs(events) == [good]

    def test_oversize_in_one_read(self, alert_factory: Callable[..., bytes]) -> None:
        big = alert_factory("big").replace(b"<headline>", b"<headline>" + b"x" * 10_000)
        good = alert_factory("good")
        events = CapStreamSplitter(max_document_bytes=5000).feed(big + good)
        assert discards(events) == ["oversize"]
        assert docs(events) == [good]

    def test_large_document_within_cap_in_one_read_next_to_another(
        self, alert_factory: Callable[..., bytes]
    ) -> None:
        big = alert_factory("big").replace(b"<headline>", b"<headline>" + b"x" * 3000)
        events = CapStreamSplitter(max_document_bytes=4000).feed(big + big)
        assert docs(events) == [big, big]

    def test_empty_alert_element(self) -> None:
        assert docs(CapStreamSplitter().feed(b"<alert/><alert />")) == [b"<alert/>", b"<alert />"]

    def test_offsets(self, alert_factory: Callable[..., bytes]) -> None:
        a = alert_factory("a")
        events = CapStreamSplitter().feed(b"xx" + a + a)
        offsets = [e.offset for e in events if isinstance(e, Document)]
        assert offsets == [2, 2 + len(a)]

    def test_corpus_alerts_split_back(self) -> None:
        folder = corpus_dir("cap-cp")
        files = sorted(p for p in folder.iterdir() if p.suffix.lower() == ".xml")
        originals = [p.read_bytes().strip() for p in files]
        stream = b"\n".join(originals)
        events = feed_all(
            CapStreamSplitter(), [stream[i : i + 1500] for i in range(0, len(stream), 1500)]
        )
        assert docs(events) == originals
        assert discards(events) == []

    def test_bundled_feed_alerts_parse_after_splitting(self) -> None:
        alerts = [a.strip() for kind in ("naad", "ipaws", "nws") for a in load_alerts(kind)]
        out = docs(feed_all(CapStreamSplitter(), one_by_one(b"".join(alerts))))
        assert out == alerts
        for raw in out:
            parse_alert(raw)  # ISO-8859-1 and CAP 1.1 included

    def test_rejects_silly_cap(self) -> None:
        with pytest.raises(ValueError, match="max_document_bytes"):
            CapStreamSplitter(max_document_bytes=1)


_TAG_SAFE = st.binary(max_size=40).map(lambda b: b.replace(b"<", b"("))
_GARBAGE = st.one_of(
    _TAG_SAFE,
    st.sampled_from([b"<html>", b"</alerts>", b"<alerts>", b"<alertx>", b"< alert>", b"<!-- -->"]),
)


@st.composite
def alert_document(draw: st.DrawFn) -> bytes:
    ident = draw(st.text(alphabet="abcdefghij0123456789.-", min_size=1, max_size=12))
    body = draw(st.binary(max_size=60).map(lambda b: b.replace(b"<", b"").replace(b"&", b"")))
    decl = draw(
        st.sampled_from(
            [b"", b'<?xml version="1.0" encoding="UTF-8"?>\n', b"<?xml version='1.0'?>"]
        )
    )
    prefix = draw(st.sampled_from([b"", b"cap:"]))
    return (
        decl
        + b"<"
        + prefix
        + b'alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><'
        + prefix
        + b"identifier>"
        + ident.encode()
        + b"</"
        + prefix
        + b"identifier><"
        + prefix
        + b"note>"
        + body
        + b"</"
        + prefix
        + b"note></"
        + prefix
        + b"alert>"
    )


class TestSplitterProperties:
    """Random interleavings of garbage and documents, cut at random places, yield exactly the
    documents; random bytes never make the splitter raise."""

    @settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(
        st.lists(st.tuples(_GARBAGE, alert_document()), max_size=6),
        _GARBAGE,
        st.lists(st.integers(min_value=1, max_value=50), min_size=1, max_size=40),
    )
    def test_documents_survive_garbage_and_chunking(
        self, pairs: list[tuple[bytes, bytes]], tail: bytes, cuts: list[int]
    ) -> None:
        stream = b"".join(g + d for g, d in pairs) + tail
        chunks: list[bytes] = []
        pos, i = 0, 0
        while pos < len(stream):
            size = cuts[i % len(cuts)]
            chunks.append(stream[pos : pos + size])
            pos += size
            i += 1
        events = feed_all(CapStreamSplitter(), chunks)
        assert docs(events) == [d for _, d in pairs]
        assert set(discards(events)) <= {"garbage"}

    @settings(max_examples=300, deadline=None)
    @given(st.lists(st.binary(max_size=64), max_size=20))
    def test_random_bytes_never_raise(self, chunks: list[bytes]) -> None:
        splitter = CapStreamSplitter(max_document_bytes=256)
        events = feed_all(splitter, chunks)
        for event in events:
            assert isinstance(event, Document | Discarded)
            if isinstance(event, Document):
                assert len(event.raw) <= 256
        assert splitter.buffered == 0

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.sampled_from(
                [
                    b"<alert>",
                    b"</alert>",
                    b"<?xml ?>",
                    b"<!--",
                    b"-->",
                    b"<![CDATA[",
                    b"]]>",
                    b"<alert/>",
                    b"x",
                    b" ",
                    b"<cap:alert>",
                    b"</cap:alert>",
                ]
            ),
            max_size=30,
        )
    )
    def test_token_soup_never_raises(self, tokens: list[bytes]) -> None:
        data = b"".join(tokens)
        whole = feed_all(CapStreamSplitter(max_document_bytes=128), [data])
        split = feed_all(CapStreamSplitter(max_document_bytes=128), one_by_one(data))
        assert docs(whole) == docs(split)


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
