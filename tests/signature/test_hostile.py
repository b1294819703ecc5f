"""Hostile input: verification never raises, never touches files or the network, and never
accepts content other than what was signed."""

from __future__ import annotations

import base64
import copy
import random
import sys
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from lxml import etree

from cap_schemas.signature import TrustStore, verify
from tests.signature.pki import DS, NOW, Pki, alert_xml, to_bytes, tree

_ARMED: list[list[str]] = []


def _audit(event: str, args: tuple[Any, ...]) -> None:
    if _ARMED and (event == "open" or event.startswith(("socket.", "urllib."))):
        _ARMED[-1].append(f"{event} {args[0]!r}")


sys.addaudithook(_audit)


@pytest.fixture
def io_events() -> Iterator[list[str]]:
    """Records every file open and socket operation made while the test body runs."""
    events: list[str] = []
    _ARMED.append(events)
    try:
        yield events
    finally:
        _ARMED.pop()


def _signed_body(signed: bytes) -> bytes:
    return signed.split(b"?>", 1)[1]


class TestAuditProbe:
    """The I/O probe used below does see file access (so its silence means something)."""

    def test_probe_records_open(self, io_events: list[str]) -> None:
        with open(__file__, "rb") as handle:
            handle.read(1)
        assert any(event.startswith("open") for event in io_events)


class TestXmlAttacksOnSignedAlerts:
    """XML attacks wrapped around a genuinely signed alert are refused as malformed, with no I/O."""

    @pytest.mark.parametrize(
        "prolog",
        [
            b'<!DOCTYPE alert [<!ENTITY x SYSTEM "file:///etc/passwd">]>',
            b'<!DOCTYPE alert SYSTEM "http://127.0.0.1:9/evil.dtd">',
            b'<!DOCTYPE alert [<!ENTITY % p SYSTEM "http://127.0.0.1:9/p.dtd"> %p;]>',
            b'<!DOCTYPE alert [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;&a;&a;&a;&a;">'
            b'<!ENTITY c "&b;&b;&b;&b;&b;&b;&b;&b;">]>',
        ],
    )
    def test_doctype_variants(
        self, prolog: bytes, signed: bytes, ca_trust: TrustStore, io_events: list[str],
    ) -> None:
        raw = b'<?xml version="1.0"?>' + prolog + _signed_body(signed)
        report = verify(raw, ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "malformed")
        assert io_events == []

    def test_xinclude_inside_signed_alert(
        self, signed: bytes, ca_trust: TrustStore, io_events: list[str],
    ) -> None:
        raw = signed.replace(
            b"<description>",
            b'<description><xi:include xmlns:xi="http://www.w3.org/2001/XInclude" '
            b'href="file:///etc/passwd" parse="text"/>',
            1,
        )
        report = verify(raw, ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "malformed")
        assert io_events == []

    def test_external_reference_is_never_fetched(
        self, signed: bytes, ca_trust: TrustStore, io_events: list[str],
    ) -> None:
        raw = signed.replace(b'URI=""', b'URI="http://127.0.0.1:9/alert.xml"', 1)
        report = verify(raw, ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "wrong_reference")
        assert io_events == []

    def test_deep_nesting(self, ca_trust: TrustStore) -> None:
        raw = (
            b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'>"
            + b"<a>" * 5000 + b"</a>" * 5000 + b"</alert>"
        )
        report = verify(raw, ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "malformed")

    def test_huge_signature_value(self, signed: bytes, ca_trust: TrustStore) -> None:
        start = signed.index(b"<ds:SignatureValue>") + len(b"<ds:SignatureValue>")
        end = signed.index(b"</ds:SignatureValue>")
        raw = signed[:start] + b"QUFB" * 250_000 + signed[end:]
        report = verify(raw, ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "bad_signature")

    def test_many_canonicalisation_transforms(
        self, signed: bytes, ca_trust: TrustStore,
    ) -> None:
        transform = b'<ds:Transform Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#"/>'
        raw = signed.replace(b"</ds:Transforms>", transform * 1000 + b"</ds:Transforms>", 1)
        report = verify(raw, ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "malformed")
        assert "1002 transforms" in report.message

    def test_huge_key_value_modulus(self, pki: Pki, ca_trust: TrustStore) -> None:
        unsigned = tree(alert_xml())
        sig = etree.SubElement(unsigned, f"{{{DS}}}Signature")
        signed_info = etree.SubElement(sig, f"{{{DS}}}SignedInfo")
        etree.SubElement(signed_info, f"{{{DS}}}CanonicalizationMethod",
                         Algorithm="http://www.w3.org/2001/10/xml-exc-c14n#")
        etree.SubElement(signed_info, f"{{{DS}}}SignatureMethod",
                         Algorithm="http://www.w3.org/2001/04/xmldsig-more#rsa-sha256")
        reference = etree.SubElement(signed_info, f"{{{DS}}}Reference", URI="")
        transforms = etree.SubElement(reference, f"{{{DS}}}Transforms")
        etree.SubElement(transforms, f"{{{DS}}}Transform",
                         Algorithm="http://www.w3.org/2000/09/xmldsig#enveloped-signature")
        etree.SubElement(reference, f"{{{DS}}}DigestMethod",
                         Algorithm="http://www.w3.org/2001/04/xmlenc#sha256")
        etree.SubElement(reference, f"{{{DS}}}DigestValue").text = "AAAA"
        etree.SubElement(sig, f"{{{DS}}}SignatureValue").text = "AAAA"
        value = etree.SubElement(etree.SubElement(etree.SubElement(
            sig, f"{{{DS}}}KeyInfo"), f"{{{DS}}}KeyValue"), f"{{{DS}}}RSAKeyValue")
        etree.SubElement(value, f"{{{DS}}}Modulus").text = base64.b64encode(
            b"\xff" * 200_000,
        ).decode()
        etree.SubElement(value, f"{{{DS}}}Exponent").text = "AQAB"
        report = verify(to_bytes(unsigned), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "malformed")
        assert "KeyValue Modulus of about 2000" in report.message
        assert "exceeds 2048 bytes" in report.message

    def test_too_many_certificates(self, signed: bytes, ca_trust: TrustStore) -> None:
        start = signed.index(b"<ds:X509Certificate>")
        end = signed.index(b"</ds:X509Certificate>") + len(b"</ds:X509Certificate>")
        raw = signed[:start] + signed[start:end] * 20 + signed[end:]
        report = verify(raw, ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "malformed")
        assert "more than 8 certificates" in report.message


class TestFuzz:
    """Random bytes and random edits of a signed alert: a report always, a false accept never."""

    @settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(data=st.binary(max_size=400))
    def test_random_bytes(self, data: bytes) -> None:
        report = verify(data, TrustStore.empty(), now=NOW)
        assert report.state in ("invalid", "unsigned")

    @settings(
        max_examples=150,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(position=st.floats(min_value=0, max_value=1, exclude_max=True),
           byte=st.integers(min_value=0, max_value=255))
    def test_single_byte_edit_is_never_a_different_valid_alert(
        self, position: float, byte: int, signed: bytes, ca_trust: TrustStore,
    ) -> None:
        baseline = verify(signed, ca_trust, now=NOW).signed_xml
        index = int(position * len(signed))
        mutated = signed[:index] + bytes([byte]) + signed[index + 1:]
        report = verify(mutated, ca_trust, now=NOW)
        assert report.state in ("valid", "invalid", "unsigned")
        if report.state == "valid":
            # Only edits outside the signed content (signature encoding, key info) survive,
            # and then exactly the signed alert is handed on.
            assert report.signed_xml == baseline

    @settings(
        max_examples=60,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(cut=st.floats(min_value=0, max_value=1, exclude_max=True))
    def test_truncation(self, cut: float, signed: bytes, ca_trust: TrustStore) -> None:
        report = verify(signed[: int(cut * len(signed))], ca_trust, now=NOW)
        assert report.state != "valid"

    @settings(
        max_examples=100,
        deadline=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
    )
    @given(position=st.floats(min_value=0, max_value=1, exclude_max=True),
           byte=st.integers(min_value=0, max_value=255))
    def test_single_byte_edit_of_a_double_signature(
        self, position: float, byte: int, double: bytes, ca_trust: TrustStore,
    ) -> None:
        baseline = verify(double, ca_trust, now=NOW, allow_multiple=True).signed_xml
        assert baseline is not None
        index = int(position * len(double))
        mutated = double[:index] + bytes([byte]) + double[index + 1:]
        report = verify(mutated, ca_trust, now=NOW, allow_multiple=True)
        if report.state == "valid":
            assert report.signed_xml == baseline


_ATTRIBUTE_VALUES = (
    "", "#x", "#", "http://127.0.0.1:9/a",
    "http://www.w3.org/2000/09/xmldsig#enveloped-signature",
    "http://www.w3.org/2000/09/xmldsig#rsa-sha1",
    "http://www.w3.org/2001/04/xmldsig-more#hmac-sha256",
    "http://www.w3.org/2001/10/xml-exc-c14n#",
    "http://www.w3.org/TR/1999/REC-xslt-19991116",
)
_TAGS = (
    f"{{{DS}}}Signature", f"{{{DS}}}Object", f"{{{DS}}}Reference",
    "{urn:oasis:names:tc:emergency:cap:1.2}alert",
)


def _tree_edit(root: etree._Element, rnd: random.Random) -> None:
    """One random structural edit: remove, duplicate, move, re-attribute, re-text, re-tag."""
    nodes = [e for e in root.iter() if isinstance(e.tag, str)]
    a, b = rnd.choice(nodes), rnd.choice(nodes)
    op = rnd.randrange(6)
    parent = a.getparent()
    if op == 0 and parent is not None:
        parent.remove(a)
    elif op == 1 and b is not root and b is not a and a not in b.iterancestors():
        a.append(copy.deepcopy(b))
    elif (op == 2 and a is not root and b is not root and a is not b
          and b not in a.iterancestors() and a not in b.iterancestors()):
        b.addnext(a)
    elif op == 3:
        a.set(rnd.choice(("URI", "Algorithm", "Id")), rnd.choice(_ATTRIBUTE_VALUES))
    elif op == 4:
        a.text = rnd.choice(("", "AAAA", "x"))
    elif op == 5 and a is not root:
        a.tag = rnd.choice(_TAGS)


class TestStructuralFuzz:
    """Random tree edits of signed alerts (seeded): a report always, a false accept never."""

    @pytest.mark.parametrize("seed", range(4))
    def test_tree_edits(
        self, seed: int, signed: bytes, double: bytes, ca_trust: TrustStore,
    ) -> None:
        rnd = random.Random(seed)
        baselines = {
            raw: verify(raw, ca_trust, now=NOW, allow_multiple=True).signed_xml
            for raw in (signed, double)
        }
        outcomes: set[str] = set()
        for _ in range(60):
            raw = rnd.choice((signed, double))
            root = tree(raw)
            for _ in range(rnd.choice((1, 1, 2, 3))):
                _tree_edit(root, rnd)
            report = verify(to_bytes(root), ca_trust, now=NOW, allow_multiple=True)
            outcomes.add(report.reason)
            if report.state == "valid":
                assert report.signed_xml == baselines[raw]
        assert len(outcomes) > 3  # the edits reach several distinct checks
