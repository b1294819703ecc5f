"""Trust stores (pinned anchors per source) and the per-source signature policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from structlog.testing import capture_logs

from cap_schemas.errors import CapSignatureError
from cap_schemas.signature import SignaturePolicy, TrustStore, sign, verify
from tests.signature.pki import (
    NOW,
    Pki,
    alert_xml,
    key_pem,
    make_cert,
    pem,
)


class TestTrustStoreLoading:
    """PEM bundles load certificates and public keys; anything else is refused by name."""

    def test_bundle_of_certificates_and_a_key(self, pki: Pki) -> None:
        key = pki.rogue_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo,
        )
        store = TrustStore.from_pem(pem(pki.ca) + pem(pki.signer) + key)
        assert len(store.certificates) == 2
        assert len(store.public_keys) == 1
        assert store.authorities == (pki.ca,)
        assert store.signers == (pki.signer,)
        assert not store.is_empty

    def test_legacy_x509_certificate_label(self, pki: Pki) -> None:
        legacy = pem(pki.ca).replace(b" CERTIFICATE-----", b" X509 CERTIFICATE-----")
        assert TrustStore.from_pem(legacy).certificates == (pki.ca,)

    def test_empty(self) -> None:
        assert TrustStore.empty().is_empty

    def test_no_block(self) -> None:
        with pytest.raises(ValueError, match="no CERTIFICATE or PUBLIC KEY block"):
            TrustStore.from_pem(b"hello")

    def test_private_key_is_refused(self, pki: Pki) -> None:
        with pytest.raises(ValueError, match="PEM block 1 is a PRIVATE KEY"):
            TrustStore.from_pem(key_pem(pki.signer_key))

    def test_corrupt_certificate(self) -> None:
        bad = b"-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n"
        with pytest.raises(ValueError, match=r"PEM block 1 \(CERTIFICATE\) is unreadable"):
            TrustStore.from_pem(bad)

    def test_files_merge_and_name_the_missing_one(self, pki: Pki, tmp_path: Path) -> None:
        (tmp_path / "ca.pem").write_bytes(pem(pki.ca))
        (tmp_path / "dup.pem").write_bytes(pem(pki.ca) + pem(pki.signer))
        store = TrustStore.from_pem_files([tmp_path / "ca.pem", tmp_path / "dup.pem"])
        assert len(store.certificates) == 2
        with pytest.raises(ValueError, match=r"missing\.pem.*cannot be read"):
            TrustStore.from_pem_files([tmp_path / "missing.pem"])
        (tmp_path / "empty.pem").write_bytes(b"")
        with pytest.raises(ValueError, match=r"empty\.pem.*no CERTIFICATE"):
            TrustStore.from_pem_files([tmp_path / "empty.pem"])


class TestTrustDecisions:
    """Chains, pins and time as seen by TrustStore.decide."""

    def test_expiring_soon(self, pki: Pki) -> None:
        store = TrustStore.from_pem(pem(pki.ca) + pem(pki.expired) + pem(pki.signer))
        assert store.expiring(NOW) == [("old.example.ca", pki.expired.not_valid_after_utc)]
        late = pki.signer.not_valid_after_utc - timedelta(days=10)
        names = [name for name, _ in store.expiring(late)]
        assert names == ["old.example.ca", "Borderlink Test Root CA", "alerts.example.ca"] or (
            names == ["old.example.ca", "alerts.example.ca", "Borderlink Test Root CA"]
        )

    def test_expired_anchor_is_reported_as_expired(self, pki: Pki) -> None:
        short_ca = make_cert(
            cn="Short Lived CA", public_key=pki.ca_key.public_key(), issuer_key=pki.ca_key,
            ca=True, not_before=datetime(2019, 1, 1, tzinfo=UTC),
            not_after=datetime(2021, 1, 1, tzinfo=UTC),
        )
        leaf = make_cert(
            cn="leaf.example.ca", public_key=pki.signer_key.public_key(),
            issuer_key=pki.ca_key, issuer=short_ca,
        )
        decision = TrustStore.from_pem(pem(short_ca)).decide(leaf, [], NOW)
        assert (decision.trusted, decision.reason) == (False, "expired")
        assert "Short Lived CA" in decision.message
        inside = TrustStore.from_pem(pem(short_ca)).decide(
            leaf, [], datetime(2020, 6, 1, tzinfo=UTC),
        )
        assert inside.trusted
        assert inside.anchor == "Short Lived CA"

    def test_pinned_intermediate_as_anchor(self, pki: Pki) -> None:
        decision = TrustStore.from_pem(pem(pki.intermediate)).decide(pki.chained, [], NOW)
        assert decision.trusted
        assert decision.anchor == "Borderlink Test Issuing CA"

    def test_signer_cert_is_not_an_authority(self, pki: Pki) -> None:
        # Pinning a signer does not let it vouch for certificates it might have issued.
        forged = make_cert(
            cn="child.example.ca", public_key=pki.rogue_key.public_key(),
            issuer_key=pki.signer_key, issuer=pki.signer,
        )
        decision = TrustStore.from_pem(pem(pki.signer)).decide(forged, [pki.signer], NOW)
        assert (decision.trusted, decision.reason) == (False, "untrusted")


class TestPolicy:
    """SignaturePolicy.check applies require / allow_multiple / allow_sha1 per source."""

    def test_required_and_unsigned_is_invalid(self, ca_trust: TrustStore) -> None:
        report = SignaturePolicy(require=True, trust=ca_trust).check(alert_xml(), NOW)
        assert (report.state, report.reason) == ("invalid", "unsigned")
        with pytest.raises(CapSignatureError) as info:
            report.raise_for_state()
        assert info.value.reason == "unsigned"

    def test_optional_and_unsigned_is_unsigned(self, ca_trust: TrustStore) -> None:
        report = SignaturePolicy(require=False, trust=ca_trust).check(alert_xml(), NOW)
        assert report.state == "unsigned"

    def test_optional_untrusted_signer_counts_as_unsigned(self, pki: Pki) -> None:
        raw = sign(alert_xml(), key_pem=key_pem(pki.rogue_key), cert_pem=pem(pki.rogue))
        report = SignaturePolicy(require=False).check(raw, NOW)
        assert (report.state, report.reason) == ("unsigned", "untrusted")
        required = SignaturePolicy(require=True, trust=TrustStore.from_pem(pem(pki.ca)))
        assert required.check(raw, NOW).state == "invalid"

    def test_optional_but_tampered_stays_invalid(self, signed: bytes) -> None:
        tampered = signed.replace(b"Tornado", b"Tomato", 1)
        report = SignaturePolicy(require=False).check(tampered, NOW)
        assert (report.state, report.reason) == ("invalid", "altered")

    def test_valid(self, signed: bytes, ca_trust: TrustStore) -> None:
        report = SignaturePolicy(require=True, trust=ca_trust).check(signed, NOW)
        assert report.state == "valid"
        report.raise_for_state()

    def test_default_time_is_now(self, signed: bytes, ca_trust: TrustStore) -> None:
        # The test PKI is valid from 2020 to 2099: "now" falls inside.
        assert SignaturePolicy(trust=ca_trust).check(signed).state == "valid"
        assert verify(signed, ca_trust).state == "valid"


class TestPolicyFromOptions:
    """The config keys trust_anchors / require_signature / allow_sha1 map onto a policy."""

    def test_anchors_relative_to_config_dir(self, pki: Pki, tmp_path: Path, signed: bytes) -> None:
        (tmp_path / "anchors").mkdir()
        (tmp_path / "anchors" / "ca.pem").write_bytes(pem(pki.ca))
        policy = SignaturePolicy.from_options(
            {"trust_anchors": ["anchors/ca.pem"], "allow_sha1": True},
            base_dir=tmp_path,
            allow_multiple=True,
        )
        assert policy.require  # pinning anchors makes signatures required by default
        assert policy.allow_sha1
        assert policy.allow_multiple
        assert policy.check(signed, NOW).state == "valid"

    def test_defaults_without_anchors(self) -> None:
        policy = SignaturePolicy.from_options({})
        assert (policy.require, policy.allow_sha1, policy.allow_multiple) == (False, False, False)
        assert policy.trust.is_empty

    def test_explicit_optional(self, pki: Pki, tmp_path: Path) -> None:
        (tmp_path / "ca.pem").write_bytes(pem(pki.ca))
        policy = SignaturePolicy.from_options(
            {"trust_anchors": [str(tmp_path / "ca.pem")], "require_signature": False},
        )
        assert not policy.require

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({"trust_anchors": "ca.pem"}, "must be a list"),
            ({"trust_anchors": [3]}, "entries must be file paths"),
            ({"require_signature": "yes"}, "'require_signature' must be true or false"),
            ({"allow_sha1": 1}, "'allow_sha1' must be true or false"),
            ({"require_signature": True}, "pins nothing"),
            ({"trust_anchors": ["does-not-exist.pem"]}, "cannot be read"),
        ],
    )
    def test_errors_name_the_key(self, options: dict[str, object], message: str) -> None:
        with pytest.raises(ValueError, match=message):
            SignaturePolicy.from_options(options)


class TestPolicyLogging:
    """Accepting a SHA-1 signature is logged with the signers and algorithms."""

    def test_sha1_acceptance_is_logged(self, sha1_signed: bytes, ca_trust: TrustStore) -> None:
        policy = SignaturePolicy(require=True, trust=ca_trust, allow_sha1=True)
        with capture_logs() as logs:
            report = policy.check(sha1_signed, NOW)
        assert report.state == "valid"
        assert logs == [{
            "event": "signature_sha1_accepted",
            "log_level": "warning",
            "signers": ["alerts.example.ca"],
            "algorithms": ["rsa-sha1", "sha1"],
        }]

    def test_sha256_is_not_logged(self, signed: bytes, ca_trust: TrustStore) -> None:
        with capture_logs() as logs:
            SignaturePolicy(require=True, trust=ca_trust).check(signed, NOW)
        assert logs == []

    def test_multiple_option(self, double: bytes, pki: Pki, tmp_path: Path) -> None:
        (tmp_path / "ca.pem").write_bytes(pem(pki.ca))
        single = SignaturePolicy.from_options({"trust_anchors": [str(tmp_path / "ca.pem")]})
        assert single.check(double, NOW).reason == "multiple"
        multi = SignaturePolicy.from_options(
            {"trust_anchors": [str(tmp_path / "ca.pem")], "allow_multiple_signatures": True},
        )
        assert multi.check(double, NOW).state == "valid"


class TestPolicyForSource:
    """A source's policy allows several signatures when its adapter says its alerts carry them
    (NAAD); its table may still refuse them."""

    def test_naad_allows_multiple(self, pki: Pki, tmp_path: Path, double: bytes) -> None:
        (tmp_path / "ca.pem").write_bytes(pem(pki.ca))
        options = {"trust_anchors": ["ca.pem"]}
        naad = SignaturePolicy.from_options(options, base_dir=tmp_path, allow_multiple=True)
        assert naad.allow_multiple
        assert naad.check(double, NOW).state == "valid"
        ipaws = SignaturePolicy.from_options(options, base_dir=tmp_path)
        assert not ipaws.allow_multiple
        assert ipaws.check(double, NOW).reason == "multiple"

    def test_naad_can_refuse_multiple(self, pki: Pki, tmp_path: Path) -> None:
        (tmp_path / "ca.pem").write_bytes(pem(pki.ca))
        policy = SignaturePolicy.from_options(
            {"trust_anchors": ["ca.pem"], "allow_multiple_signatures": False},
            base_dir=tmp_path, allow_multiple=True,
        )
        assert not policy.allow_multiple
