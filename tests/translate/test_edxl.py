"""EDXL-DE 1.0 and 2.0: wrap and unwrap CAP (prefixed or not), schema checks, hostile input."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from lxml import etree

from cap_schemas.edxl import EdxlError, unwrap, unwrap_alerts, validate_edxl, wrap
from cap_schemas.errors import CapHostileError
from cap_schemas.model import Alert, MsgType, Status
from cap_schemas.serialize import to_xml
from gateway.translate.edxl import cap_to_edxl, edxl_to_alerts
from tests.helpers import corpus_dir

SENT = datetime(2026, 1, 1, tzinfo=UTC)


def _prefixed(alert: Alert) -> bytes:
    """The alert written with a ``cap:`` prefix instead of a default namespace."""
    root = etree.fromstring(to_xml(alert))
    ns = str(etree.QName(root).namespace)
    new = etree.Element(f"{{{ns}}}alert", nsmap={"cap": ns})
    for child in root:
        new.append(child)
    return etree.tostring(new)


class TestCorpus:
    """Published envelopes validate and their CAP content is read."""

    def test_de1_with_prefixed_cap(self) -> None:
        data = (corpus_dir("edxl") / "gcl-nsw-rfs-bushfire.edxlde").read_bytes()
        assert validate_edxl(data) == []
        alerts = unwrap_alerts(data)
        assert len(alerts) == 7
        assert unwrap(data).version == "1.0"

    def test_de2_samu(self) -> None:
        data = (corpus_dir("edxl") / "samu-hub-EDXL-DE-2.0.xml").read_bytes()
        assert validate_edxl(data) == []
        envelope = unwrap(data)
        assert envelope.version == "2.0"
        assert envelope.kind == "Report"
        assert envelope.contents[0].xml_root == "{urn:emergency:eda:1.9}message"
        assert unwrap_alerts(data) == []


class TestWrap:
    """CAP wrapped in either version validates and unwraps to the same alert."""

    @pytest.mark.parametrize("version", ["1.0", "2.0"])
    def test_round_trip(self, version: str, eccc_alert: Callable[..., Alert]) -> None:
        alert = eccc_alert()
        data = cap_to_edxl(alert, version=version)
        assert validate_edxl(data) == []
        assert edxl_to_alerts(data) == [alert]
        assert cap_to_edxl(alert, version=version) == data

    @pytest.mark.parametrize("version", ["1.0", "2.0"])
    def test_prefixed_cap(self, version: str, eccc_alert: Callable[..., Alert]) -> None:
        alert = eccc_alert()
        data = wrap(
            [_prefixed(alert)],
            version=version,
            distribution_id="d",
            sender_id="s",
            sent=SENT,
            expires=SENT,
        )
        assert b"<cap:alert" in data
        assert validate_edxl(data) == []
        assert unwrap_alerts(data) == [alert]

    def test_original_bytes_embedded(self, capcp_corpus: list[Alert]) -> None:
        signed = next(a for a in capcp_corpus if a.signature_count)
        data = cap_to_edxl(signed)
        inner = unwrap_alerts(data)[0]
        assert inner == signed
        assert inner.signature_count == signed.signature_count

    def test_kind_and_status(self, eccc_alert: Callable[..., Alert]) -> None:
        from cap_schemas.model import AlertKey  # noqa: PLC0415

        ref = AlertKey("a@b", "x", "2026-07-14T00:00:00-00:00")
        data = cap_to_edxl(
            eccc_alert(msg_type=MsgType.CANCEL, status=Status.DRAFT, references=(ref,))
        )
        envelope = unwrap(data)
        assert (envelope.kind, envelope.status) == ("Cancel", "Test")

    def test_bad_version(self) -> None:
        with pytest.raises(ValueError, match="version"):
            wrap([], version="3.0", distribution_id="d", sender_id="s", sent=SENT)


class TestHostileAndInvalid:
    """Bad envelopes are reported with their schema findings; dangerous XML is refused."""

    def test_missing_required_element(self) -> None:
        data = (
            b'<EDXLDistribution xmlns="urn:oasis:names:tc:emergency:EDXL:DE:1.0">'
            b"<distributionID>a</distributionID></EDXLDistribution>"
        )
        findings = validate_edxl(data)
        assert findings
        assert findings[0].rule == "edxl.xsd"
        with pytest.raises(EdxlError, match="senderID"):
            unwrap(data)

    def test_not_edxl(self) -> None:
        assert validate_edxl(b"<alert/>")[0].rule == "edxl"
        with pytest.raises(EdxlError, match="not an EDXL-DE"):
            unwrap_alerts(b"<alert/>")

    def test_doctype_refused(self) -> None:
        data = (
            b'<!DOCTYPE x [<!ENTITY e "boom">]>'
            b'<EDXLDistribution xmlns="urn:oasis:names:tc:emergency:EDXL:DE:1.0"/>'
        )
        with pytest.raises(CapHostileError):
            unwrap(data)

    def test_bad_base64(self) -> None:
        data = wrap(
            [("text/plain", b"hello")],
            version="2.0",
            distribution_id="d",
            sender_id="s",
            sent=SENT,
            expires=SENT,
        ).replace(b"aGVsbG8=", b"@@@")
        with pytest.raises(EdxlError, match="base64"):
            unwrap(data)


class TestCorpusAlerts:
    """Every published alert wraps in both versions and comes back equal."""

    @pytest.mark.parametrize("version", ["1.0", "2.0"])
    def test_all(self, version: str, capcp_corpus: list[Alert], us_corpus: list[Alert]) -> None:
        for alert in [*capcp_corpus, *us_corpus]:
            data = cap_to_edxl(alert, version=version)
            assert validate_edxl(data) == []
            assert edxl_to_alerts(data) == [alert]
