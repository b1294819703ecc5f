"""Where the verifying key comes from: embedded certificates, pinned certificates, bare keys;
and NAADS-style signatures (default namespace, inclusive C14N) that plain libxml2 mangles."""

from __future__ import annotations

from base64 import b64encode

import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding
from lxml import etree
from signxml.algorithms import CanonicalizationMethod, DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

from cap_schemas.signature import TrustStore, verify
from tests.signature.pki import (
    DS,
    NOW,
    Pki,
    alert_xml,
    first,
    pem,
    signatures,
    to_bytes,
    tree,
)


def _without_key_info(signed: bytes) -> bytes:
    root = tree(signed)
    sig = signatures(root)[0]
    sig.remove(first(sig, "ds:KeyInfo"))  # KeyInfo is outside SignedInfo: still intact
    return to_bytes(root)


def _key_only(pki: Pki) -> bytes:
    signer = XMLSigner(
        signature_algorithm=SignatureMethod.RSA_SHA256, digest_algorithm=DigestAlgorithm.SHA256,
    )
    return to_bytes(signer.sign(tree(alert_xml()), key=pki.signer_key))


class TestNoCertificateCarried:
    """Without X509Data the pinned signer certificates and a KeyValue are tried."""

    def test_no_key_info_pinned_signer(self, signed: bytes, pinned_trust: TrustStore) -> None:
        report = verify(_without_key_info(signed), pinned_trust, now=NOW)
        assert (report.state, report.signers) == ("valid", ("alerts.example.ca",))

    def test_no_key_info_ca_only(self, signed: bytes, ca_trust: TrustStore) -> None:
        report = verify(_without_key_info(signed), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "untrusted")
        assert "no certificate or key" in report.message

    def test_no_key_info_wrong_pin(self, signed: bytes, pki: Pki) -> None:
        report = verify(_without_key_info(signed), TrustStore.from_pem(pem(pki.rogue)), now=NOW)
        assert (report.state, report.reason) == ("invalid", "untrusted")
        assert "no pinned signer's key verifies it" in report.message

    def test_no_key_info_altered(self, signed: bytes, pinned_trust: TrustStore) -> None:
        raw = _without_key_info(signed).replace(b"Tornado", b"Tomato", 1)
        assert verify(raw, pinned_trust, now=NOW).reason == "altered"

    def test_key_value_with_pinned_key(self, pki: Pki) -> None:
        key = pki.signer_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        report = verify(_key_only(pki), TrustStore.from_pem(key), now=NOW)
        assert report.state == "valid"
        assert report.signers[0].startswith("key:sha256:")

    def test_key_value_matching_a_pinned_certificate(
        self, pki: Pki, pinned_trust: TrustStore,
    ) -> None:
        report = verify(_key_only(pki), pinned_trust, now=NOW)
        assert (report.state, report.signers) == ("valid", ("alerts.example.ca",))

    def test_key_value_matching_an_expired_pinned_certificate(self, pki: Pki) -> None:
        report = verify(_key_only(pki), TrustStore.from_pem(pem(pki.expired)), now=NOW)
        assert (report.state, report.reason) == ("invalid", "expired")

    def test_key_value_unknown(self, pki: Pki, ca_trust: TrustStore) -> None:
        report = verify(_key_only(pki), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "untrusted")


class TestNaadsStyleSignature:
    """Default-namespace Signature, inclusive C14N 1.0 SignedInfo, Id with a space (as NAADS)."""

    @pytest.mark.parametrize(
        "c14n",
        [
            CanonicalizationMethod.CANONICAL_XML_1_0,
            CanonicalizationMethod.CANONICAL_XML_1_1,
            CanonicalizationMethod.CANONICAL_XML_1_0_WITH_COMMENTS,
            CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
        ],
    )
    def test_verifies(
        self, c14n: CanonicalizationMethod, pki: Pki, pinned_trust: TrustStore,
    ) -> None:
        # Produced as NAADS does: the alert is canonicalised as a whole document (correct in
        # libxml2); SignedInfo is canonicalised the way C14N prescribes, on a detached copy.
        signer = XMLSigner(
            signature_algorithm=SignatureMethod.RSA_SHA256,
            digest_algorithm=DigestAlgorithm.SHA256,
            c14n_algorithm=c14n,
        )
        signer.namespaces = {None: DS}  # type: ignore[dict-item]  # signxml accepts a default ns
        root = tree(alert_xml())
        signed = tree(to_bytes(signer.sign(root, key=pki.signer_key, cert=[pki.signer])))
        sig = signatures(signed)[0]
        assert sig.prefix is None  # <Signature xmlns="http://www.w3.org/2000/09/xmldsig#">
        sig.set("Id", "NAADS Signature")
        signed_info = first(sig, "ds:SignedInfo")
        detached = etree.fromstring(etree.tostring(signed_info))
        c14n_bytes = etree.tostring(
            detached, method="c14n",
            exclusive=c14n is CanonicalizationMethod.EXCLUSIVE_XML_CANONICALIZATION_1_0,
            with_comments=c14n.value.endswith("WithComments"),
        )
        value = pki.signer_key.sign(c14n_bytes, padding.PKCS1v15(), hashes.SHA256())
        first(sig, "ds:SignatureValue").text = b64encode(value).decode()
        report = verify(to_bytes(signed), pinned_trust, now=NOW)
        assert (report.state, report.reason) == ("valid", "verified")
        assert report.signatures[0].id == "NAADS Signature"
