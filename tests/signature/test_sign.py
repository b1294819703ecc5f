"""Signing alerts borderlink originates, and the round trip through verification."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from cap_schemas.errors import CapParseError, CapSignatureError
from cap_schemas.parse import parse_alert
from cap_schemas.signature import TrustStore, sign, verify
from tests.signature.pki import (
    CAP,
    DS,
    NOW,
    Pki,
    alert_xml,
    first,
    key_pem,
    pem,
    signatures,
    tree,
)


class TestSignedForm:
    """sign() appends one enveloped rsa-sha256 / exclusive-C14N signature as alert's last child."""

    def test_structure(self, signed: bytes) -> None:
        root = tree(signed)
        assert root.tag == f"{{{CAP}}}alert"
        assert root[-1].tag == f"{{{DS}}}Signature"
        assert len(signatures(root)) == 1
        sig = root[-1]
        assert first(sig, ".//ds:CanonicalizationMethod").get("Algorithm") == (
            "http://www.w3.org/2001/10/xml-exc-c14n#"
        )
        assert first(sig, ".//ds:SignatureMethod").get("Algorithm") == (
            "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
        )
        assert first(sig, ".//ds:Reference").get("URI") == ""
        assert first(sig, ".//ds:X509Certificate").text

    def test_declaration_and_encoding(self, signed: bytes) -> None:
        assert signed.startswith(b"<?xml version='1.0' encoding='UTF-8'?>")

    def test_french_text_survives(self, pki: Pki, ca_trust: TrustStore) -> None:
        raw = sign(
            alert_xml(headline="Avertissement de tornade en vigueur \u2014 \u00e9vacuez"),
            key_pem=key_pem(pki.signer_key),
            cert_pem=pem(pki.signer),
        )
        report = verify(raw, ca_trust, now=NOW)
        assert report.state == "valid"
        assert report.signed_xml is not None
        assert "\u00e9vacuez" in report.signed_xml.decode("utf-8")

    def test_ec_key(self, pki: Pki, ca_trust: TrustStore) -> None:
        raw = sign(alert_xml(), key_pem=key_pem(pki.ec_key), cert_pem=pem(pki.ec_signer))
        report = verify(raw, ca_trust, now=NOW)
        assert (report.state, report.algorithms) == ("valid", ("ecdsa-sha256", "sha256"))


class TestRoundTrip:
    """sign -> verify is valid; one character of the headline changed -> altered."""

    def test_round_trip(self, signed: bytes, ca_trust: TrustStore) -> None:
        report = verify(signed, ca_trust, now=NOW)
        assert report.state == "valid"
        assert report.signed_xml is not None
        assert parse_alert(report.signed_xml) == parse_alert(alert_xml())

    def test_one_character_of_the_headline(self, signed: bytes, ca_trust: TrustStore) -> None:
        altered = signed.replace(b"Tornado warning", b"Tornado warninG", 1)
        report = verify(altered, ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "altered")

    def test_whitespace_outside_the_alert_does_not_matter(
        self, signed: bytes, ca_trust: TrustStore,
    ) -> None:
        # Bytes outside the root element are not part of the signed node-set.
        assert verify(signed + b"\n\n", ca_trust, now=NOW).state == "valid"

    def test_indentation_change_inside_is_detected(
        self, signed: bytes, ca_trust: TrustStore,
    ) -> None:
        report = verify(signed.replace(b"\n  <sender>", b"\n    <sender>", 1), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "altered")

    def test_resigning_an_already_signed_alert(
        self, pki: Pki, signed: bytes, ca_trust: TrustStore,
    ) -> None:
        twice = sign(signed, key_pem=key_pem(pki.ec_key), cert_pem=pem(pki.ec_signer))
        report = verify(twice, ca_trust, now=NOW, allow_multiple=True)
        assert report.state == "valid"
        assert report.signers == ("alerts.example.ca", "ec.example.ca")
        assert report.signed_xml is not None
        assert parse_alert(report.signed_xml) == parse_alert(alert_xml())


class TestSignErrors:
    """sign() refuses what it cannot sign, with CapSignatureError / CapParseError."""

    def test_not_an_alert(self, pki: Pki) -> None:
        with pytest.raises(CapSignatureError, match="not a CAP alert") as info:
            sign(b"<x/>", key_pem=key_pem(pki.signer_key), cert_pem=pem(pki.signer))
        assert info.value.reason == "malformed"

    def test_not_xml(self, pki: Pki) -> None:
        with pytest.raises(CapParseError):
            sign(b"<alert", key_pem=key_pem(pki.signer_key), cert_pem=pem(pki.signer))

    def test_certificate_of_another_key(self, pki: Pki) -> None:
        with pytest.raises(CapSignatureError, match="does not belong to the key"):
            sign(alert_xml(), key_pem=key_pem(pki.signer_key), cert_pem=pem(pki.rogue))

    def test_unreadable_key(self, pki: Pki) -> None:
        with pytest.raises(CapSignatureError, match="unreadable"):
            sign(
                alert_xml(),
                key_pem=b"-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
                cert_pem=pem(pki.signer),
            )

    def test_unsupported_key_type(self, pki: Pki) -> None:
        key = ed25519.Ed25519PrivateKey.generate()
        raw_key = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
        with pytest.raises(CapSignatureError) as info:
            sign(alert_xml(), key_pem=raw_key, cert_pem=pem(pki.signer))
        assert info.value.reason == "unsupported_algorithm"

    def test_alert_with_id_attribute(self, pki: Pki) -> None:
        raw = alert_xml().replace(b"<alert xmlns=", b'<alert Id="a" xmlns=', 1)
        with pytest.raises(CapSignatureError, match="Id attribute"):
            sign(raw, key_pem=key_pem(pki.signer_key), cert_pem=pem(pki.signer))
