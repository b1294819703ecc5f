"""Pinned trust anchors for XML signatures: which signers borderlink believes, and until when.

A :class:`TrustStore` holds what an operator pinned for one source, never the system CA store:

* **end-entity certificates** (no ``BasicConstraints: CA``): the exact signer certificate. A
  signature is anchored when its signing certificate is byte-for-byte one of these. This is how
  legacy signers are pinned whose chains no longer validate (SHA-1 signed, vanished CAs), e.g.
  the NAADS ``dss1.pelmorex.com`` certificate of 2012-2018;
* **CA certificates** (``BasicConstraints: CA``): trust anchors for chain validation. A signing
  certificate is anchored when a chain from it (through the intermediates carried in the
  signature's ``X509Data``) ends at one of them, validated by :mod:`cryptography`'s X.509
  path builder at the verification time: web-PKI rules for the CA certificates, and for the
  signer only that a ``KeyUsage`` extension, if present, allows ``digitalSignature``;
* **bare public keys** (``PUBLIC KEY`` PEM blocks): for producers that sign with a
  ``KeyValue`` only and no certificate. Such a key never expires.

Time is part of trust: a pinned certificate outside its validity window at the verification
time yields ``"expired"`` or ``"not_yet_valid"`` rather than ``"untrusted"``, so that an
operator sees a rotation problem for what it is. :meth:`TrustStore.expiring` lists anchors
that run out soon (warn at least 30 days ahead).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.x509.verification import (
    Criticality,
    ExtensionPolicy,
    PolicyBuilder,
    Store,
    VerificationError,
)

__all__ = [
    "TrustDecision",
    "TrustStore",
    "common_name",
    "is_ca",
    "key_fingerprint",
]

_PEM_BLOCK = re.compile(
    rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----", re.DOTALL,
)

# Longest chain accepted from a signature's X509Data (FEMA's IPAWS chain has 5 certificates).
MAX_CHAIN_DEPTH = 8


def common_name(cert: x509.Certificate) -> str:
    """The subject CN of a certificate, or its whole RFC 4514 subject when it has no CN."""
    try:
        names = cert.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        if names:
            value = names[0].value
            return value if isinstance(value, str) else value.decode("utf-8", "replace")
        return cert.subject.rfc4514_string()
    except ValueError:
        return "<unreadable subject>"


def key_fingerprint(key: PublicKeyTypes) -> str:
    """SHA-256 of the DER SubjectPublicKeyInfo, hex, as ``key:sha256:<first 16 hex digits>``."""
    der = key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo,
    )
    return "key:sha256:" + hashlib.sha256(der).hexdigest()[:16]


def _spki(key: PublicKeyTypes) -> bytes:
    return key.public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo,
    )


def is_ca(cert: x509.Certificate) -> bool:
    """Whether the certificate says it is a CA (BasicConstraints cA=true)."""
    try:
        constraints = cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return False
    return constraints.ca


def _validity_problem(cert: x509.Certificate, now: datetime) -> tuple[str, str] | None:
    """``(reason, message)`` when ``now`` is outside the certificate's validity window."""
    if now < cert.not_valid_before_utc:
        return (
            "not_yet_valid",
            f"certificate {common_name(cert)!r} is not valid before "
            f"{cert.not_valid_before_utc.isoformat()} (verification time {now.isoformat()})",
        )
    if now > cert.not_valid_after_utc:
        return (
            "expired",
            f"certificate {common_name(cert)!r} expired on "
            f"{cert.not_valid_after_utc.isoformat()} (verification time {now.isoformat()})",
        )
    return None


def _retry_times(
    leaf: x509.Certificate, others: Sequence[x509.Certificate], now: datetime,
) -> list[datetime]:
    """Times closest to ``now`` at which the leaf and one other certificate are both valid
    (at most a handful): where a chain that fails at ``now`` might hold."""
    times: list[datetime] = []
    for other in [None, *others[:MAX_CHAIN_DEPTH]]:
        start = leaf.not_valid_before_utc
        end = leaf.not_valid_after_utc
        if other is not None:
            start = max(start, other.not_valid_before_utc)
            end = min(end, other.not_valid_after_utc)
        if start > end:
            continue
        when = min(max(now, start), end)
        if when != now and when not in times:
            times.append(when)
    return times


def _check_signer_key_usage(
    _policy: object, _cert: x509.Certificate, key_usage: x509.KeyUsage | None,
) -> None:
    if key_usage is not None and not key_usage.digital_signature:
        msg = "the signer certificate's KeyUsage does not allow digitalSignature"
        raise ValueError(msg)


@dataclass(frozen=True, slots=True)
class TrustDecision:
    """Whether a signer is anchored in a :class:`TrustStore` at a given time.

    ``reason`` is ``""`` when trusted, else ``"untrusted"``, ``"expired"`` or
    ``"not_yet_valid"``; ``anchor`` names what vouched for the signer.
    """

    trusted: bool
    reason: str
    message: str
    signer: str
    anchor: str = ""


@dataclass(frozen=True, slots=True)
class TrustStore:
    """Certificates and keys pinned for one source. Build with the ``from_*`` constructors."""

    certificates: tuple[x509.Certificate, ...] = ()
    public_keys: tuple[PublicKeyTypes, ...] = ()

    # -- construction ------------------------------------------------------------------------

    @classmethod
    def empty(cls) -> TrustStore:
        """A store that trusts nobody (every signature is ``"untrusted"``)."""
        return cls()

    @classmethod
    def from_pem(cls, data: bytes, *, origin: str = "PEM data") -> TrustStore:
        """Read every ``CERTIFICATE`` and ``PUBLIC KEY`` block of a PEM bundle.

        Raises :class:`ValueError` naming ``origin`` when a block cannot be read or when the
        data holds no usable block at all (an empty anchor file is a configuration mistake).
        """
        certificates: list[x509.Certificate] = []
        keys: list[PublicKeyTypes] = []
        for number, match in enumerate(_PEM_BLOCK.finditer(bytes(data)), start=1):
            kind = match.group(1)
            label = kind.decode("ascii", "replace")
            block = match.group(0)
            if kind in (b"CERTIFICATE", b"X509 CERTIFICATE"):
                block = block.replace(b" " + kind + b"-----", b" CERTIFICATE-----")
            elif kind != b"PUBLIC KEY":
                msg = (
                    f"{origin}: PEM block {number} is a {label}; only CERTIFICATE and "
                    "PUBLIC KEY blocks can be pinned"
                )
                raise ValueError(msg)
            try:
                if kind == b"PUBLIC KEY":
                    keys.append(serialization.load_pem_public_key(block))
                else:
                    certificates.append(x509.load_pem_x509_certificate(block))
            except ValueError as exc:
                msg = f"{origin}: PEM block {number} ({label}) is unreadable: {exc}"
                raise ValueError(msg) from exc
        if not certificates and not keys:
            msg = f"{origin}: no CERTIFICATE or PUBLIC KEY block found"
            raise ValueError(msg)
        return cls(tuple(certificates), tuple(keys))

    @classmethod
    def from_pem_files(cls, paths: Iterable[str | Path]) -> TrustStore:
        """Read and merge PEM files (one or more blocks each). Errors name the file."""
        store = cls()
        for path in paths:
            file = Path(path)
            try:
                data = file.read_bytes()
            except OSError as exc:
                msg = f"trust anchor file {str(file)!r} cannot be read: {exc.strerror or exc}"
                raise ValueError(msg) from exc
            store = store.merged(cls.from_pem(data, origin=f"trust anchor file {str(file)!r}"))
        return store

    def merged(self, other: TrustStore) -> TrustStore:
        """The union of two stores (duplicates kept once)."""
        certs = list(self.certificates)
        seen = {c.public_bytes(serialization.Encoding.DER) for c in certs}
        for cert in other.certificates:
            der = cert.public_bytes(serialization.Encoding.DER)
            if der not in seen:
                certs.append(cert)
                seen.add(der)
        keys = list(self.public_keys)
        key_seen = {_spki(k) for k in keys}
        for key in other.public_keys:
            if _spki(key) not in key_seen:
                keys.append(key)
                key_seen.add(_spki(key))
        return TrustStore(tuple(certs), tuple(keys))

    # -- queries -----------------------------------------------------------------------------

    @property
    def is_empty(self) -> bool:
        return not self.certificates and not self.public_keys

    @property
    def signers(self) -> tuple[x509.Certificate, ...]:
        """Pinned end-entity certificates (exact signer pins)."""
        return tuple(c for c in self.certificates if not is_ca(c))

    @property
    def authorities(self) -> tuple[x509.Certificate, ...]:
        """Pinned CA certificates (chain anchors)."""
        return tuple(c for c in self.certificates if is_ca(c))

    def expiring(
        self, now: datetime, *, within: timedelta = timedelta(days=30),
    ) -> list[tuple[str, datetime]]:
        """Pinned certificates that expire before ``now + within`` (already expired included),
        as ``(subject CN, not_valid_after)`` sorted soonest first."""
        limit = now + within
        found = [
            (common_name(c), c.not_valid_after_utc)
            for c in self.certificates
            if c.not_valid_after_utc <= limit
        ]
        return sorted(found, key=lambda item: item[1])

    def pinned_key(self, key: PublicKeyTypes) -> bool:
        """Whether a bare public key is pinned."""
        wanted = _spki(key)
        return any(_spki(k) == wanted for k in self.public_keys)

    def signer_for_key(self, key: PublicKeyTypes) -> x509.Certificate | None:
        """A pinned end-entity certificate carrying this public key, if any."""
        wanted = _spki(key)
        for cert in self.signers:
            if _spki(cert.public_key()) == wanted:
                return cert
        return None

    def decide(
        self,
        leaf: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        now: datetime,
    ) -> TrustDecision:
        """Is ``leaf`` (with the untrusted ``intermediates`` it came with) anchored at ``now``?"""
        name = common_name(leaf)
        leaf_der = leaf.public_bytes(serialization.Encoding.DER)
        for pinned in self.certificates:
            if pinned.public_bytes(serialization.Encoding.DER) == leaf_der:
                problem = _validity_problem(leaf, now)
                if problem is not None:
                    return TrustDecision(False, problem[0], problem[1], name, name)
                return TrustDecision(True, "", f"signer {name!r} is pinned", name, name)
        authorities = self.authorities
        if not authorities:
            return TrustDecision(
                False, "untrusted",
                f"signer {name!r} (issued by {leaf.issuer.rfc4514_string()!r}) is not pinned "
                "for this source",
                name,
            )
        error = self._verify_chain(leaf, intermediates, now, authorities)
        if isinstance(error, str):
            # Would the chain hold at a time when the signer certificate is valid? Then the
            # failure is one of time, and the operator should be told so.
            for when in _retry_times(leaf, [*intermediates, *authorities], now):
                retry = self._verify_chain(leaf, intermediates, when, authorities)
                if isinstance(retry, str):
                    continue
                for cert in retry:
                    problem = _validity_problem(cert, now)
                    if problem is not None:
                        return TrustDecision(False, problem[0], problem[1], name)
            return TrustDecision(
                False, "untrusted",
                f"signer {name!r} does not chain to a pinned authority: {error}", name,
            )
        anchor = common_name(error[-1])
        return TrustDecision(True, "", f"signer {name!r} chains to {anchor!r}", name, anchor)

    @staticmethod
    def _verify_chain(
        leaf: x509.Certificate,
        intermediates: Sequence[x509.Certificate],
        when: datetime,
        authorities: Sequence[x509.Certificate],
    ) -> list[x509.Certificate] | str:
        """The validated chain (leaf first, anchor last), or the verifier's error text."""
        ee_policy = ExtensionPolicy.permit_all().may_be_present(
            x509.KeyUsage, Criticality.AGNOSTIC, _check_signer_key_usage,
        )
        builder = (
            PolicyBuilder()
            .store(Store(list(authorities)))
            .time(when)
            .max_chain_depth(MAX_CHAIN_DEPTH)
            .extension_policies(
                ee_policy=ee_policy, ca_policy=ExtensionPolicy.webpki_defaults_ca(),
            )
        )
        try:
            verified = builder.build_client_verifier().verify(leaf, list(intermediates))
        except (VerificationError, ValueError) as exc:
            return str(exc) or "no valid chain"
        return list(verified.chain)
