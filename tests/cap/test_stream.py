"""The CAP stream splitter of the CAP library (cap_schemas/stream.py): golden cases and
properties, on real published alerts and hostile streams (sans-IO, no sockets)."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cap_schemas.parse import parse_alert
from cap_schemas.stream import (
    CapStreamSplitter,
    Discarded,
    Document,
    Event,
)
from hardware.feed_alerts import load_alerts
from tests.feeds.conftest import make_alert
from tests.helpers import corpus_dir


@pytest.fixture
def alert_factory() -> Callable[..., bytes]:
    """Small CAP documents as bytes (the feed tests' factory)."""
    return make_alert


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
