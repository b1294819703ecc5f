"""Hostile XML: every attack is refused quickly, cheaply, and without file or network access."""

from __future__ import annotations

import contextlib
import socket
import time
import tracemalloc
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lxml import etree

from cap_schemas.errors import CapHostileError, CapParseError
from cap_schemas.model import CAP12_NS, Alert
from cap_schemas.parse import ParseLimits, _parser, parse_alert, parse_xml
from cap_schemas.serialize import to_xml
from cap_schemas.validate import validate
from tests.cap.conftest import corpus_bytes

MIB = 1024 * 1024


def run_rejected(data: bytes, *, limits: ParseLimits | None = None) -> CapParseError:
    """Parse ``data``; assert it is refused in well under a second with little memory."""
    tracemalloc.start()
    started = time.perf_counter()
    try:
        if limits is None:
            parse_xml(data)
        else:
            parse_xml(data, limits=limits)
    except CapParseError as exc:
        elapsed = time.perf_counter() - started
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert elapsed < 1.0, f"rejection took {elapsed:.3f} s"
        assert peak < 4 * MIB, f"rejection allocated {peak} bytes"
        return exc
    tracemalloc.stop()
    pytest.fail("hostile input was accepted")


BILLION_LAUGHS = b"""<?xml version="1.0"?>
<!DOCTYPE lolz [
 <!ENTITY lol "lol">
 <!ENTITY lol1 "&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;&lol;">
 <!ENTITY lol2 "&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;&lol1;">
 <!ENTITY lol3 "&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;&lol2;">
 <!ENTITY lol4 "&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;&lol3;">
 <!ENTITY lol5 "&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;&lol4;">
 <!ENTITY lol6 "&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;&lol5;">
 <!ENTITY lol7 "&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;&lol6;">
 <!ENTITY lol8 "&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;&lol7;">
 <!ENTITY lol9 "&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;&lol8;">
]>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><note>&lol9;</note></alert>
"""


def quadratic_blowup() -> bytes:
    entity = b"A" * 100_000
    refs = b"&a;" * 20_000
    return (
        b'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY a "' + entity + b'">]>'
        b'<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2"><note>' + refs + b"</note></alert>"
    )


@pytest.fixture
def secret_file(tmp_path: Path) -> Path:
    path = tmp_path / "secret.txt"
    path.write_text("TOP-SECRET-7f3a9c")
    return path


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    """A TCP listener on 127.0.0.1 that records whether anything connected."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(8)
    sock.setblocking(False)
    yield sock
    sock.close()


def connection_arrived(sock: socket.socket) -> bool:
    try:
        conn, _ = sock.accept()
    except BlockingIOError:
        return False
    conn.close()
    return True


class TestEntityAttacks:
    """Entity declarations are refused before any expansion (reason entity/doctype)."""

    def test_billion_laughs(self) -> None:
        exc = run_rejected(BILLION_LAUGHS)
        assert isinstance(exc, CapHostileError)
        assert exc.reason == "entity"
        assert exc.line == 2

    def test_quadratic_blowup(self) -> None:
        exc = run_rejected(quadratic_blowup())
        assert isinstance(exc, CapHostileError)
        assert exc.reason == "entity"

    def test_undeclared_entity_reference(self) -> None:
        exc = run_rejected(b"<alert>&xxe;</alert>")
        assert exc.reason == "entity"
        assert exc.line == 1
        assert exc.column is not None

    def test_parameter_entities(self) -> None:
        data = b'<!DOCTYPE a [<!ENTITY % p "x"> %p;]><a/>'
        exc = run_rejected(data)
        assert isinstance(exc, CapHostileError)

    def test_doctype_after_comment_pi_and_bom(self) -> None:
        data = (
            b'\xef\xbb\xbf<?xml version="1.0"?>\n<!-- c -->\n<?pi x?>\n<!DOCTYPE alert>\n<alert/>'
        )
        exc = run_rejected(data)
        assert exc.reason == "doctype"
        assert (exc.line, exc.column) == (4, 1)

    def test_bare_doctype(self) -> None:
        exc = run_rejected(b"<!DOCTYPE alert><alert/>")
        assert isinstance(exc, CapHostileError)
        assert exc.reason == "doctype"


class TestExternalReferences:
    """No file is read and no connection is made, whatever the document asks for."""

    def test_xxe_file(self, secret_file: Path) -> None:
        data = (
            f'<?xml version="1.0"?><!DOCTYPE alert [<!ENTITY x SYSTEM "{secret_file.as_uri()}">]>'
            f'<alert xmlns="{CAP12_NS}"><note>&x;</note></alert>'
        ).encode()
        exc = run_rejected(data)
        assert isinstance(exc, CapHostileError)
        assert "TOP-SECRET" not in str(exc)

    def test_xxe_file_not_read_even_by_the_bare_parser(self, secret_file: Path) -> None:
        """Defence in depth: the lxml parser configuration alone does not resolve entities."""
        data = (f'<!DOCTYPE a [<!ENTITY x SYSTEM "{secret_file.as_uri()}">]><a>&x;</a>').encode()
        seen = ""
        try:
            root = etree.fromstring(data, _parser())
            seen = etree.tostring(root).decode() + "".join(root.itertext())
        except etree.XMLSyntaxError as exc:
            seen = str(exc)
        assert "TOP-SECRET" not in seen

    def test_xxe_http(self, listener: socket.socket) -> None:
        port = listener.getsockname()[1]
        data = (
            f'<!DOCTYPE alert [<!ENTITY x SYSTEM "http://127.0.0.1:{port}/x">]>'
            f'<alert xmlns="{CAP12_NS}"><note>&x;</note></alert>'
        ).encode()
        run_rejected(data)
        assert not connection_arrived(listener)

    def test_external_dtd(self, listener: socket.socket) -> None:
        port = listener.getsockname()[1]
        data = (
            f'<!DOCTYPE alert SYSTEM "http://127.0.0.1:{port}/cap.dtd"><alert xmlns="{CAP12_NS}"/>'
        ).encode()
        exc = run_rejected(data)
        assert exc.reason == "doctype"
        assert not connection_arrived(listener)

    def test_external_dtd_not_fetched_by_the_bare_parser(self, listener: socket.socket) -> None:
        port = listener.getsockname()[1]
        data = (f'<!DOCTYPE a SYSTEM "http://127.0.0.1:{port}/a.dtd"><a>&ent;</a>').encode()
        with contextlib.suppress(etree.XMLSyntaxError):
            etree.fromstring(data, _parser())
        assert not connection_arrived(listener)

    def test_xinclude(self, secret_file: Path) -> None:
        data = (
            f'<alert xmlns="{CAP12_NS}" xmlns:xi="http://www.w3.org/2001/XInclude">'
            f'<note><xi:include href="{secret_file.as_uri()}" parse="text"/></note></alert>'
        ).encode()
        exc = run_rejected(data)
        assert isinstance(exc, CapHostileError)
        assert exc.reason == "xinclude"
        assert "TOP-SECRET" not in str(exc)

    def test_stylesheet_pi_is_inert(
        self,
        listener: socket.socket,
        corpus: Callable[..., bytes],
    ) -> None:
        """NWS alerts carry an xml-stylesheet PI; it is kept but never fetched."""
        port = listener.getsockname()[1]
        data = corpus("nws", "capgo-nws-flood-warning-2015-cap11.xml").replace(
            b"http://alerts.weather.gov/cap/capatomproduct.xsl",
            f"http://127.0.0.1:{port}/style.xsl".encode(),
        )
        assert parse_alert(data).identifier
        assert not connection_arrived(listener)


class TestResourceLimits:
    """Size and depth caps hold, by default and when configured."""

    def test_deep_nesting_100k(self) -> None:
        data = b"<a>" * 100_000 + b"</a>" * 100_000
        exc = run_rejected(data)
        assert isinstance(exc, CapHostileError)
        assert exc.reason == "too_deep"

    def test_depth_just_over_the_cap(self) -> None:
        data = b"<a>\n" * 65 + b"</a>" * 65
        exc = run_rejected(data)
        assert exc.reason == "too_deep"
        assert exc.line == 65

    def test_depth_at_the_cap_is_accepted(self) -> None:
        data = b"<a>" * 64 + b"</a>" * 64
        assert parse_xml(data).tag == "a"

    def test_configured_depth(self) -> None:
        data = b"<a>" * 10 + b"</a>" * 10
        exc = run_rejected(data, limits=ParseLimits(max_depth=5))
        assert exc.reason == "too_deep"

    @pytest.mark.parametrize(
        ("block", "count", "limit"),
        [("info", 65, 64), ("area", 2049, 2048), ("resource", 129, 128)],
    )
    def test_too_many_blocks(self, block: str, count: int, limit: int) -> None:
        ns = "urn:oasis:names:tc:emergency:cap:1.2"
        data = f'<alert xmlns="{ns}">'.encode() + f"<{block}/>".encode() * count + b"</alert>"
        exc = run_rejected(data)
        assert exc.reason == "too_many_blocks"
        assert f"{count} <{block}> blocks; an alert may carry at most {limit}" in str(exc)
        at_the_cap = data.replace(f"<{block}/>".encode(), b"", 1)
        assert parse_xml(at_the_cap).tag == f"{{{ns}}}alert"
        exc = run_rejected(at_the_cap, limits=ParseLimits(**{f"max_{block}s": 3}))
        assert exc.reason == "too_many_blocks"

    def test_oversize(self) -> None:
        data = b"<a>" + b"x" * (8 * MIB) + b"</a>"
        exc = run_rejected(data)
        assert isinstance(exc, CapHostileError)
        assert exc.reason == "too_large"
        assert str(8 * MIB) in str(exc)

    def test_configured_size(self, make_alert: Callable[..., Alert]) -> None:
        data = to_xml(make_alert())
        exc = run_rejected(data, limits=ParseLimits(max_bytes=100))
        assert exc.reason == "too_large"
        assert parse_alert(data, limits=ParseLimits(max_bytes=len(data))) == make_alert()


class TestEncodingAndBytes:
    """Encoding errors, NUL bytes and garbage are parse errors with a position."""

    def test_invalid_utf8(self) -> None:
        exc = run_rejected(b'<?xml version="1.0" encoding="UTF-8"?>\n<alert>\xff\xfe\xfd</alert>')
        assert exc.reason == "encoding"
        assert exc.line == 2
        assert not isinstance(exc, CapHostileError)

    def test_overlong_utf8(self) -> None:
        exc = run_rejected(b"<alert>\xc0\xaf</alert>")
        assert exc.reason == "encoding"

    def test_nul_byte(self) -> None:
        exc = run_rejected(b"<alert>\n  <note>a\x00b</note></alert>")
        assert exc.reason == "nul"
        assert (exc.line, exc.column) == (2, 10)

    def test_utf7_cannot_hide_a_doctype(self) -> None:
        data = (
            b'<?xml version="1.0" encoding="UTF-7"?>+ADw-!DOCTYPE a +AFs-+ADw-!ENTITY x '
            b"+ACI-hello+ACI-+AD4-+AF0-+AD4-+ADw-a+AD4-+ACY-x+ADs-+ADw-/a+AD4-"
        )
        exc = run_rejected(data)
        assert exc.reason == "encoding"
        assert "UTF-7" in str(exc)

    def test_ebcdic_autodetection_cannot_hide_a_doctype(self) -> None:
        text = '<?xml version="1.0" encoding="IBM037"?><!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>'
        exc = run_rejected(text.encode("cp037"))
        assert exc.reason == "syntax"
        assert (exc.line, exc.column) == (1, 1)

    @pytest.mark.parametrize("name", ["EBCDIC-US", "UTF-16", "ISO-2022-JP", "x"])
    def test_only_ascii_compatible_encodings(self, name: str) -> None:
        exc = run_rejected(f'<?xml version="1.0" encoding="{name}"?><a/>'.encode())
        assert exc.reason == "encoding"

    @pytest.mark.parametrize("name", ["utf-8", "UTF-8", "ISO-8859-1", "US-ASCII", "windows-1252"])
    def test_accepted_encodings(self, name: str) -> None:
        assert parse_xml(f"<?xml version='1.0' encoding='{name}'?><a>x</a>".encode()).text == "x"

    def test_utf16_refused(self) -> None:
        exc = run_rejected("<alert/>".encode("utf-16"))
        assert exc.reason in {"encoding", "nul"}

    @pytest.mark.parametrize(
        "data",
        [b"", b"   ", b"garbage<alert/>", b"<alert>", b"<alert></alrt>", b"<a><b></a>"],
    )
    def test_malformed(self, data: bytes) -> None:
        exc = run_rejected(data)
        assert exc.reason == "syntax"
        assert exc.line is not None

    def test_not_bytes(self) -> None:
        with pytest.raises(CapParseError):
            parse_xml("<alert/>")  # type: ignore[arg-type]


class TestFuzz:
    """Random input either parses or raises the library's own error — nothing else."""

    @settings(max_examples=300, deadline=None)
    @given(st.binary(max_size=512))
    def test_random_bytes(self, data: bytes) -> None:
        with contextlib.suppress(CapParseError):
            parse_alert(data)

    @settings(max_examples=200, deadline=None)
    @given(st.integers(min_value=0, max_value=2000), st.binary(min_size=1, max_size=8))
    def test_mutated_alert(self, position: int, junk: bytes) -> None:
        base = (
            f'<alert xmlns="{CAP12_NS}"><identifier>i</identifier><sender>s</sender>'
            "<sent>2024-05-01T12:00:00-04:00</sent><status>Actual</status>"
            "<msgType>Alert</msgType><scope>Public</scope><info><category>Met</category>"
            "<event>e</event><urgency>Expected</urgency><severity>Minor</severity>"
            "<certainty>Likely</certainty><area><areaDesc>a</areaDesc>"
            "<polygon>1,1 1,2 2,2 1,1</polygon><circle>1,1 5</circle></area></info></alert>"
        ).encode()
        cut = position % (len(base) + 1)
        data = base[:cut] + junk + base[cut:]
        with contextlib.suppress(CapParseError):
            parse_alert(data)


class TestMutatedRealAlerts:
    """Byte flips in a real alert either parse (and then validate without crashing) or raise
    the library's own parse error."""

    @settings(max_examples=200, deadline=None)
    @given(
        st.lists(
            st.tuples(st.integers(min_value=0, max_value=10**6), st.integers(0, 255)),
            min_size=1,
            max_size=4,
        ),
    )
    def test_flips(self, flips: list[tuple[int, int]]) -> None:
        data = bytearray(corpus_bytes("cap-cp", "naad-Sample7_CAPCP_with_free_drawn_circle.xml"))
        for position, value in flips:
            data[position % len(data)] = value
        try:
            alert = parse_alert(bytes(data))
        except CapParseError:
            return
        findings = validate(alert)
        assert all(f.severity in {"error", "warning", "info"} for f in findings)
