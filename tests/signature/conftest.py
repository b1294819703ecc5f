"""Fixtures for the signature tests: one PKI per session (key generation is the slow part)."""

from __future__ import annotations

import pytest

from cap_schemas.signature import TrustStore, sign
from tests.signature.pki import Pki, alert_xml, build_pki, key_pem, pem


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
