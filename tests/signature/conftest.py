"""Fixtures for the signature tests: one PKI per session (key generation is the slow part)."""

from __future__ import annotations

import pytest
from signxml.algorithms import DigestAlgorithm, SignatureMethod

from cap_schemas.signature import TrustStore, sign
from tests.signature.pki import (
    Pki,
    Sha1Signer,
    alert_xml,
    build_pki,
    key_pem,
    pem,
    to_bytes,
    tree,
)


@pytest.fixture(scope="session")
def pki() -> Pki:
    return build_pki()


@pytest.fixture(scope="session")
def ca_trust(pki: Pki) -> TrustStore:
    """Trusts whatever chains to the test root CA."""
    return TrustStore.from_pem(pem(pki.ca))


@pytest.fixture(scope="session")
def pinned_trust(pki: Pki) -> TrustStore:
    """Trusts exactly the test signer certificate (no CA)."""
    return TrustStore.from_pem(pem(pki.signer))


@pytest.fixture(scope="session")
def signed(pki: Pki) -> bytes:
    """The test alert signed by the trusted signer (rsa-sha256, exclusive C14N)."""
    return sign(alert_xml(), key_pem=key_pem(pki.signer_key), cert_pem=pem(pki.signer))


@pytest.fixture(scope="session")
def double(pki: Pki, signed: bytes) -> bytes:
    """The signed alert with a second signature (by the rogue signer) added over it."""
    return sign(signed, key_pem=key_pem(pki.rogue_key), cert_pem=pem(pki.rogue))


@pytest.fixture(scope="session")
def sha1_signed(pki: Pki) -> bytes:
    """The test alert signed the legacy way: rsa-sha1 with a sha1 digest."""
    signer = Sha1Signer(
        signature_algorithm=SignatureMethod.RSA_SHA1, digest_algorithm=DigestAlgorithm.SHA1,
    )
    return to_bytes(signer.sign(tree(alert_xml()), key=pki.signer_key, cert=[pki.signer]))
