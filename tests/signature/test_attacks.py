"""Each rejection reason, produced by building the attack against a freshly signed alert."""

from __future__ import annotations

import base64
import copy
import hashlib
import warnings
from datetime import datetime

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import NameOID
from lxml import etree
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.signer import XMLSigner

from cap_schemas.signature import MAX_SIGNATURES, Reason, TrustStore, sign, verify
from tests.signature.pki import (
    CAP,
    DS,
    NOW,
    NS,
    Pki,
    Sha1Signer,
    alert_xml,
    b64_text,
    first,
    key_pem,
    pem,
    signatures,
    to_bytes,
    tree,
)


def _mutate(signed: bytes, edit: object) -> bytes:
    root = tree(signed)
    edit(root)  # type: ignore[operator]
    return to_bytes(root)


class TestValidBaseline:
    """A freshly signed alert verifies against a CA anchor and against an exact pin."""

    def test_valid_with_ca_anchor(self, signed: bytes, ca_trust: TrustStore) -> None:
        report = verify(signed, ca_trust, now=NOW)
        assert report.state == "valid"
        assert report.reason == Reason.VERIFIED
        assert report.reason == "verified"
        assert report.signers == ("alerts.example.ca",)
        assert report.algorithms == ("rsa-sha256", "sha256")
        assert report.count == 1
        assert report.trusted

    def test_valid_with_exact_pin(self, signed: bytes, pinned_trust: TrustStore) -> None:
        report = verify(signed, pinned_trust, now=NOW)
        assert (report.state, report.signers) == ("valid", ("alerts.example.ca",))

    def test_signed_xml_is_the_alert_without_signature(
        self, signed: bytes, ca_trust: TrustStore,
    ) -> None:
        report = verify(signed, ca_trust, now=NOW)
        assert report.signed_xml is not None
        root = tree(report.signed_xml)
        assert root.tag == f"{{{CAP}}}alert"
        assert not root.findall(".//ds:Signature", NS)
        assert root.findtext("cap:info/cap:headline", namespaces=NS) == "Tornado warning in effect"


class TestUnsigned:
    """An alert without any Signature is reported unsigned, not invalid."""

    def test_unsigned(self, ca_trust: TrustStore) -> None:
        report = verify(alert_xml(), ca_trust, now=NOW)
        assert (report.state, report.reason, report.count) == ("unsigned", "unsigned", 0)
        assert report.signed_xml is None
        assert not report.trusted

    def test_stripped_signature_is_unsigned(self, signed: bytes, ca_trust: TrustStore) -> None:
        def strip(root: etree._Element) -> None:
            for sig in signatures(root):
                root.remove(sig)

        report = verify(_mutate(signed, strip), ca_trust, now=NOW)
        assert report.state == "unsigned"


class TestMalformed:
    """Input that is not a well-formed, safe CAP document with a readable Signature."""

    @pytest.mark.parametrize(
        "raw",
        [
            b"",
            b"not xml at all",
            b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'><unclosed></alert>",
            b"\xff\xfe<\x00a\x00/\x00>\x00",
        ],
    )
    def test_unparseable(self, raw: bytes, ca_trust: TrustStore) -> None:
        report = verify(raw, ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "malformed")
        assert "refused" in report.message

    def test_xxe_in_signed_alert_is_refused_before_verification(
        self, signed: bytes, ca_trust: TrustStore,
    ) -> None:
        body = signed.split(b"?>", 1)[1]
        hostile = (
            b'<?xml version="1.0"?>\n<!DOCTYPE alert [<!ENTITY x SYSTEM "file:///etc/passwd">]>'
            + body.replace(b"Tornado warning in effect", b"&x;")
        )
        report = verify(hostile, ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "malformed")
        assert "document type" in report.message

    def test_not_an_alert(self, ca_trust: TrustStore) -> None:
        report = verify(b"<feed xmlns='http://www.w3.org/2005/Atom'/>", ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "malformed")
        assert "not a CAP alert" in report.message

    def test_signature_without_signed_info(self, signed: bytes, ca_trust: TrustStore) -> None:
        def drop(root: etree._Element) -> None:
            sig = signatures(root)[0]
            sig.remove(first(sig, "ds:SignedInfo"))

        report = verify(_mutate(signed, drop), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "malformed")
        assert "SignedInfo" in report.message

    def test_signature_value_not_base64(self, signed: bytes, ca_trust: TrustStore) -> None:
        def garble(root: etree._Element) -> None:
            first(signatures(root)[0], "ds:SignatureValue").text = "%%% not base64 %%%"

        report = verify(_mutate(signed, garble), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "malformed")
        assert "SignatureValue is not valid base64" in report.message

    def test_certificate_garbage(self, signed: bytes, ca_trust: TrustStore) -> None:
        def garble(root: etree._Element) -> None:
            cert = first(signatures(root)[0], ".//ds:X509Certificate")
            cert.text = base64.b64encode(b"\x30\x03garbage").decode()

        report = verify(_mutate(signed, garble), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "malformed")
        assert "X509Certificate is unreadable" in report.message

    def test_certificate_with_negative_serial(
        self, pki: Pki, signed: bytes, ca_trust: TrustStore,
    ) -> None:
        der = bytearray(pki.signer.public_bytes(serialization.Encoding.DER))
        serial = pki.signer.serial_number.to_bytes(20, "big").lstrip(b"\x00")
        at = bytes(der).index(bytes([0x02, len(serial)]) + serial) + 2
        der[at] |= 0x80

        def swap(root: etree._Element) -> None:
            first(signatures(root)[0], ".//ds:X509Certificate").text = base64.b64encode(
                bytes(der),
            ).decode()

        report = verify(_mutate(signed, swap), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "malformed")
        assert "serial number is not positive" in report.message

    def test_certificate_with_duplicate_extension(
        self, pki: Pki, signed: bytes, ca_trust: TrustStore,
    ) -> None:
        # The SubjectKeyIdentifier OID (2.5.29.14) turned into a second KeyUsage (2.5.29.15).
        der = pki.signer.public_bytes(serialization.Encoding.DER)
        assert der.count(b"\x06\x03\x55\x1d\x0e") == 1
        twisted = der.replace(b"\x06\x03\x55\x1d\x0e", b"\x06\x03\x55\x1d\x0f")

        def swap(root: etree._Element) -> None:
            first(signatures(root)[0], ".//ds:X509Certificate").text = base64.b64encode(
                twisted,
            ).decode()

        report = verify(_mutate(signed, swap), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "malformed")
        assert "Duplicate" in report.message

    def test_certificate_breaking_rfc5280_names(self, pki: Pki, ca_trust: TrustStore) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)
            name = x509.Name([
                x509.NameAttribute(NameOID.COUNTRY_NAME, "CAN", _validate=False),
                x509.NameAttribute(NameOID.COMMON_NAME, "odd.example.ca"),
            ])
            odd = (
                x509.CertificateBuilder().subject_name(name).issuer_name(pki.ca.subject)
                .public_key(pki.signer_key.public_key()).serial_number(7)
                .not_valid_before(pki.signer.not_valid_before_utc)
                .not_valid_after(pki.signer.not_valid_after_utc)
                .sign(pki.ca_key, hashes.SHA256())
            )
        raw = sign(alert_xml(), key_pem=key_pem(pki.signer_key), cert_pem=pem(odd))
        report = verify(raw, ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "malformed")
        assert "length must be" in report.message

    def test_keyvalue_contradicting_certificate(
        self, pki: Pki, signed: bytes, ca_trust: TrustStore,
    ) -> None:
        numbers = pki.rogue_key.public_key().public_numbers()

        def inject(root: etree._Element) -> None:
            key_info = first(signatures(root)[0], "ds:KeyInfo")
            value = etree.SubElement(key_info, f"{{{DS}}}KeyValue")
            rsa_value = etree.SubElement(value, f"{{{DS}}}RSAKeyValue")
            modulus = numbers.n.to_bytes((numbers.n.bit_length() + 7) // 8, "big")
            etree.SubElement(rsa_value, f"{{{DS}}}Modulus").text = base64.b64encode(
                modulus,
            ).decode()
            etree.SubElement(rsa_value, f"{{{DS}}}Exponent").text = "AQAB"

        report = verify(_mutate(signed, inject), ca_trust, now=NOW)
        assert report.state == "invalid"
        assert report.reason == "malformed"
        assert "different public keys" in report.message


class TestMultiple:
    """More signatures than the source allows; with several allowed, every one must hold."""

    def test_two_signatures_refused_by_default(self, double: bytes, ca_trust: TrustStore) -> None:
        report = verify(double, ca_trust, now=NOW)
        assert (report.state, report.reason, report.count) == ("invalid", "multiple", 2)

    def test_two_signatures_allowed_one_trusted(
        self, double: bytes, ca_trust: TrustStore,
    ) -> None:
        report = verify(double, ca_trust, now=NOW, allow_multiple=True)
        assert (report.state, report.reason) == ("valid", "verified")
        assert report.signers == ("alerts.example.ca",)
        assert [(d.signer, d.trusted, d.reason) for d in report.signatures] == [
            ("alerts.example.ca", True, "verified"),
            ("rogue.example.net", False, "untrusted"),
        ]
        assert report.signed_xml is not None
        assert not tree(report.signed_xml).findall("ds:Signature", NS)

    def test_two_signatures_none_trusted(self, double: bytes, pki: Pki) -> None:
        other = TrustStore.from_pem(pem(pki.ec_signer))
        report = verify(double, other, now=NOW, allow_multiple=True)
        assert (report.state, report.reason) == ("invalid", "untrusted")

    def test_every_signature_must_verify(self, double: bytes, ca_trust: TrustStore) -> None:
        def break_second(root: etree._Element) -> None:
            value = first(signatures(root)[1], "ds:SignatureValue")
            raw = bytearray(b64_text(value))
            raw[10] ^= 0x01
            value.text = base64.b64encode(bytes(raw)).decode()

        report = verify(_mutate(double, break_second), ca_trust, now=NOW, allow_multiple=True)
        assert (report.state, report.reason) == ("invalid", "bad_signature")
        assert "Signature[2]" in report.message

    def test_too_many_even_when_allowed(
        self, pki: Pki, signed: bytes, ca_trust: TrustStore,
    ) -> None:
        def pile(root: etree._Element) -> None:
            sig = signatures(root)[0]
            for _ in range(MAX_SIGNATURES):
                root.append(copy.deepcopy(sig))

        report = verify(_mutate(signed, pile), ca_trust, now=NOW, allow_multiple=True)
        assert (report.state, report.reason) == ("invalid", "multiple")
        assert f"at most {MAX_SIGNATURES}" in report.message


class TestNotEnveloped:
    """The signature must be a direct child of alert and use the enveloped transform."""

    def test_signature_moved_into_info(self, signed: bytes, ca_trust: TrustStore) -> None:
        def move(root: etree._Element) -> None:
            sig = signatures(root)[0]
            first(root, "cap:info").append(sig)

        report = verify(_mutate(signed, move), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "not_enveloped")
        assert "/alert/info/Signature" in report.message

    def test_missing_enveloped_transform(self, signed: bytes, ca_trust: TrustStore) -> None:
        def drop(root: etree._Element) -> None:
            transforms = first(signatures(root)[0], ".//ds:Transforms")
            for transform in transforms.findall("ds:Transform", NS):
                if transform.get("Algorithm", "").endswith("enveloped-signature"):
                    transforms.remove(transform)

        report = verify(_mutate(signed, drop), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "not_enveloped")


class TestWrongReference:
    """Reference URI must be "" and there must be exactly one Reference."""

    @pytest.mark.parametrize(
        "uri", ["http://attacker.example/alert.xml", "#nowhere", "#xpointer(/)", "file:///etc"],
    )
    def test_uri_not_empty(self, uri: str, signed: bytes, ca_trust: TrustStore) -> None:
        def point(root: etree._Element) -> None:
            first(signatures(root)[0], ".//ds:Reference").set("URI", uri)

        report = verify(_mutate(signed, point), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "wrong_reference")
        assert repr(uri) in report.message

    def test_uri_missing(self, signed: bytes, ca_trust: TrustStore) -> None:
        def drop(root: etree._Element) -> None:
            del first(signatures(root)[0], ".//ds:Reference").attrib["URI"]

        report = verify(_mutate(signed, drop), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "wrong_reference")

    def test_second_reference(self, signed: bytes, ca_trust: TrustStore) -> None:
        def add(root: etree._Element) -> None:
            reference = first(signatures(root)[0], ".//ds:Reference")
            reference.addnext(copy.deepcopy(reference))

        report = verify(_mutate(signed, add), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "wrong_reference")
        assert "found 2" in report.message


class TestWrapping:
    """Signature wrapping: the content processed must be exactly the signed alert root."""

    def test_signed_alert_wrapped_in_another_root(
        self, signed: bytes, ca_trust: TrustStore,
    ) -> None:
        body = signed.split(b"?>", 1)[1]
        wrapped = b"<envelope xmlns='urn:example:wrapper'>" + body + b"</envelope>"
        report = verify(wrapped, ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "wrapping")
        assert "/envelope/alert" in report.message

    def test_forged_alert_with_original_hidden_in_object(
        self, signed: bytes, ca_trust: TrustStore,
    ) -> None:
        # Classic wrapping: the genuine alert moves into ds:Object, a forged one takes its place.
        original = tree(signed)
        forged = tree(alert_xml(headline="All clear, return home"))
        sig = signatures(original)[0]
        obj = etree.SubElement(sig, f"{{{DS}}}Object")
        genuine = copy.deepcopy(original)
        for s in signatures(genuine):
            genuine.remove(s)
        obj.append(genuine)
        forged.append(sig)
        report = verify(to_bytes(forged), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "wrapping")
        assert "second alert" in report.message

    def test_reference_to_an_element_inside_the_alert(
        self, pki: Pki, ca_trust: TrustStore,
    ) -> None:
        # A valid signature over one <info> (Id="x") must not vouch for the whole alert.
        root = tree(alert_xml())
        first(root, "cap:info").set("Id", "x")
        signer = XMLSigner(
            signature_algorithm=SignatureMethod.RSA_SHA256,
            digest_algorithm=DigestAlgorithm.SHA256,
        )
        signed_part = signer.sign(
            root, key=pki.signer_key, cert=[pki.signer], reference_uri="x",
        )
        report = verify(to_bytes(signed_part), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "wrapping")
        assert "/alert/info" in report.message


class TestAltered:
    """Any change to the signed content after signing is detected as a digest mismatch."""

    @pytest.mark.parametrize(
        ("old", "new"),
        [
            (b"Tornado warning in effect", b"Tornado warning in effecT"),
            (b"<severity>Extreme</severity>", b"<severity>Minor</severity>"),
            (b"<value>3537039</value>", b"<value>3537038</value>"),
            (b"<status>Actual</status>", b"<status>Actual</status><note>x</note>"),
        ],
    )
    def test_content_changed(
        self, old: bytes, new: bytes, signed: bytes, ca_trust: TrustStore,
    ) -> None:
        assert old in signed
        report = verify(signed.replace(old, new, 1), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "altered")
        assert "changed after it was signed" in report.message
        assert report.signed_xml is None
        assert [(d.signer, d.trusted) for d in report.signatures] == [("alerts.example.ca", False)]


class TestBadSignature:
    """A SignatureValue that does not match SignedInfo (or SignedInfo edited) is refused."""

    def test_signature_value_bit_flip(self, signed: bytes, ca_trust: TrustStore) -> None:
        def flip(root: etree._Element) -> None:
            value = first(signatures(root)[0], "ds:SignatureValue")
            raw = bytearray(b64_text(value))
            raw[-1] ^= 0x80
            value.text = base64.b64encode(bytes(raw)).decode()

        report = verify(_mutate(signed, flip), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "bad_signature")

    def test_digest_value_replaced_to_match_forgery(
        self, signed: bytes, ca_trust: TrustStore,
    ) -> None:
        # The attacker recomputes the digest of a forged alert: SignedInfo no longer verifies.
        forged = tree(signed.replace(b"Tornado warning in effect", b"All clear"))
        sig = signatures(forged)[0]
        bare = copy.deepcopy(forged)
        bare.remove(signatures(bare)[0])
        digest = hashlib.sha256(etree.tostring(bare, method="c14n", exclusive=True)).digest()
        first(sig, ".//ds:DigestValue").text = base64.b64encode(digest).decode()
        report = verify(to_bytes(forged), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "bad_signature")

    def test_certificate_swapped_for_another_keys(
        self, pki: Pki, signed: bytes, ca_trust: TrustStore,
    ) -> None:
        # A trusted certificate pasted over the signer's: the signature is not that key's.
        def swap(root: etree._Element) -> None:
            cert = first(signatures(root)[0], ".//ds:X509Certificate")
            der = pki.ec_signer.public_bytes(serialization.Encoding.DER)
            cert.text = base64.b64encode(der).decode()

        report = verify(_mutate(signed, swap), ca_trust, now=NOW)
        assert report.state == "invalid"
        assert report.reason in ("bad_signature", "malformed")


class TestUntrusted:
    """A valid signature by a signer not anchored for the source is refused."""

    def test_self_signed_signer(self, pki: Pki, ca_trust: TrustStore) -> None:
        raw = sign(alert_xml(), key_pem=key_pem(pki.rogue_key), cert_pem=pem(pki.rogue))
        report = verify(raw, ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "untrusted")
        assert "rogue.example.net" in report.message

    def test_empty_store_trusts_nobody(self, signed: bytes) -> None:
        report = verify(signed, TrustStore.empty(), now=NOW)
        assert (report.state, report.reason) == ("invalid", "untrusted")

    def test_same_key_other_certificate_is_not_the_pin(
        self, pki: Pki, pinned_trust: TrustStore,
    ) -> None:
        # The pin is the certificate, not merely its key.
        raw = sign(alert_xml(), key_pem=key_pem(pki.signer_key), cert_pem=pem(pki.chained))
        report = verify(raw, pinned_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "untrusted")

    def test_key_usage_without_digital_signature(self, pki: Pki, ca_trust: TrustStore) -> None:
        raw = sign(
            alert_xml(), key_pem=key_pem(pki.signer_key), cert_pem=pem(pki.no_digital_signature),
        )
        report = verify(raw, ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "untrusted")

    def test_chain_needs_its_intermediate(self, pki: Pki, ca_trust: TrustStore) -> None:
        alone = sign(alert_xml(), key_pem=key_pem(pki.signer_key), cert_pem=pem(pki.chained))
        assert verify(alone, ca_trust, now=NOW).reason == "untrusted"
        with_chain = sign(
            alert_xml(),
            key_pem=key_pem(pki.signer_key),
            cert_pem=pem(pki.chained) + pem(pki.intermediate),
        )
        report = verify(with_chain, ca_trust, now=NOW)
        assert (report.state, report.signers) == ("valid", ("chained.example.ca",))


class TestValidity:
    """An anchored certificate outside its validity window is expired / not yet valid."""

    def test_expired(self, pki: Pki, ca_trust: TrustStore) -> None:
        raw = sign(alert_xml(), key_pem=key_pem(pki.signer_key), cert_pem=pem(pki.expired))
        report = verify(raw, ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "expired")
        assert "old.example.ca" in report.message
        inside = verify(raw, ca_trust, now=pki.expired.not_valid_before_utc.replace(year=2016))
        assert (inside.state, inside.signers) == ("valid", ("old.example.ca",))

    def test_expired_exact_pin(self, pki: Pki) -> None:
        raw = sign(alert_xml(), key_pem=key_pem(pki.signer_key), cert_pem=pem(pki.expired))
        report = verify(raw, TrustStore.from_pem(pem(pki.expired)), now=NOW)
        assert (report.state, report.reason) == ("invalid", "expired")

    def test_not_yet_valid(self, pki: Pki, ca_trust: TrustStore) -> None:
        raw = sign(alert_xml(), key_pem=key_pem(pki.signer_key), cert_pem=pem(pki.future))
        report = verify(raw, ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "not_yet_valid")
        later = verify(raw, ca_trust, now=pki.future.not_valid_before_utc.replace(year=2091))
        assert later.state == "valid"

    def test_untrusted_expired_certificate_is_untrusted(self, pki: Pki) -> None:
        raw = sign(alert_xml(), key_pem=key_pem(pki.signer_key), cert_pem=pem(pki.expired))
        report = verify(raw, TrustStore.from_pem(pem(pki.rogue)), now=NOW)
        assert report.reason == "untrusted"

    def test_naive_time_is_refused(self, signed: bytes, ca_trust: TrustStore) -> None:
        with pytest.raises(ValueError, match="timezone-aware"):
            verify(signed, ca_trust, now=datetime(2026, 1, 1))


class TestWeakAlgorithm:
    """SHA-1 only where the source allows it; DSA never; RSA keys of 2048 bits at least."""

    def test_sha1_refused_by_default(self, sha1_signed: bytes, ca_trust: TrustStore) -> None:
        report = verify(sha1_signed, ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "weak_algorithm")
        assert report.algorithms == ("rsa-sha1", "sha1")
        assert "allow_sha1" in report.message

    def test_sha1_accepted_when_allowed(self, sha1_signed: bytes, ca_trust: TrustStore) -> None:
        report = verify(sha1_signed, ca_trust, now=NOW, allow_sha1=True)
        assert (report.state, report.algorithms) == ("valid", ("rsa-sha1", "sha1"))

    def test_sha1_digest_alone_is_weak(self, pki: Pki, ca_trust: TrustStore) -> None:
        signer = Sha1Signer(
            signature_algorithm=SignatureMethod.RSA_SHA256, digest_algorithm=DigestAlgorithm.SHA1,
        )
        raw = to_bytes(signer.sign(tree(alert_xml()), key=pki.signer_key, cert=[pki.signer]))
        report = verify(raw, ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "weak_algorithm")
        assert "digest method sha1" in report.message

    def test_short_rsa_key(self, pki: Pki, ca_trust: TrustStore) -> None:
        raw = sign(alert_xml(), key_pem=key_pem(pki.weak_key), cert_pem=pem(pki.weak))
        report = verify(raw, ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "weak_algorithm")
        assert "1024 bits" in report.message
        assert verify(raw, ca_trust, now=NOW, min_rsa_bits=1024).state == "valid"

    def test_dsa_method(self, signed: bytes, ca_trust: TrustStore) -> None:
        def dsa(root: etree._Element) -> None:
            method = first(signatures(root)[0], ".//ds:SignatureMethod")
            method.set("Algorithm", SignatureMethod.DSA_SHA256.value)

        report = verify(_mutate(signed, dsa), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "weak_algorithm")


class TestUnsupportedAlgorithm:
    """Unknown URIs, shared-secret MACs and foreign transforms are refused outright."""

    def test_hmac(self, ca_trust: TrustStore) -> None:
        signer = XMLSigner(signature_algorithm=SignatureMethod.HMAC_SHA256)
        raw = to_bytes(signer.sign(tree(alert_xml()), key=b"shared secret"))
        report = verify(raw, ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "unsupported_algorithm")
        assert "MAC" in report.message

    @pytest.mark.parametrize(
        ("path", "uri"),
        [
            (".//ds:SignatureMethod", "http://www.w3.org/2001/04/xmldsig-more#rsa-md5"),
            (".//ds:DigestMethod", "http://www.w3.org/2001/04/xmldsig-more#md5"),
            (".//ds:CanonicalizationMethod", "urn:example:c14n"),
        ],
    )
    def test_unknown_uri(self, path: str, uri: str, signed: bytes, ca_trust: TrustStore) -> None:
        def swap(root: etree._Element) -> None:
            first(signatures(root)[0], path).set("Algorithm", uri)

        report = verify(_mutate(signed, swap), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "unsupported_algorithm")

    def test_xslt_transform(self, signed: bytes, ca_trust: TrustStore) -> None:
        def add(root: etree._Element) -> None:
            transforms = first(signatures(root)[0], ".//ds:Transforms")
            etree.SubElement(
                transforms, f"{{{DS}}}Transform",
                Algorithm="http://www.w3.org/TR/1999/REC-xslt-19991116",
            )

        report = verify(_mutate(signed, add), ca_trust, now=NOW)
        assert (report.state, report.reason) == ("invalid", "unsupported_algorithm")
        assert "xslt" in report.message
