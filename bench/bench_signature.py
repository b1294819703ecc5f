"""Signature verification throughput: borderlink's verify() beside bare signxml.

Side by side in one run on the same bytes:

* ``borderlink``: :func:`cap_schemas.signature.verify` — hardened parse, structure checks
  (root, wrapping, placement, reference, algorithms), signxml verification, chain validation
  to a pinned CA with :mod:`cryptography`, signed XML extraction;
* ``signxml``: the bare minimum a naive integration does, ``XMLVerifier().verify(raw,
  x509_cert=<pinned cert>)`` with ``location="./"`` and no schema check (no trust chain, no
  structure checks). On the real NAAD alert it fails outright: the NAADS signature's
  SignedInfo is mis-canonicalised by libxml2 2.14 (see docs/signatures.md).

Each figure is the median of several timed batches; the ratio is signxml time / borderlink
time (below 1 means the checks cost something, and how much).
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

from cryptography import x509
from signxml.algorithms import DigestAlgorithm, SignatureMethod
from signxml.verifier import SignatureConfiguration, XMLVerifier

from bench.timing import per_op
from cap_schemas.signature import TrustStore, sign, verify
from tests.signature.pki import NOW, alert_xml, build_pki, key_pem, pem

CORPUS = Path(__file__).resolve().parents[2] / "shared" / "corpus" / "cap-cp"
REPEATS = 7
BATCH_SECONDS = 0.2


def _per_op(fn: Callable[[], object]) -> float:
    return per_op(fn, repeats=REPEATS, batch_seconds=BATCH_SECONDS)


def _rate(seconds: float | None) -> str:
    return "fails" if seconds is None else f"{1 / seconds:,.0f}"


def _bare(
    raw: bytes, cert: x509.Certificate | None, config: SignatureConfiguration,
) -> Callable[[], object]:
    def run() -> object:
        return XMLVerifier().verify(
            raw, x509_cert=cert, expect_config=config, validate_schema=False,
        )

    return run


def main() -> None:
    pki = build_pki()
    trust = TrustStore.from_pem(pem(pki.ca))
    key, cert = key_pem(pki.signer_key), pem(pki.signer)
    paragraph = "Take shelter now in a basement or an interior room on the lowest floor. " * 250
    cases: list[tuple[str, bytes, TrustStore, datetime, bool]] = [
        ("own alert, 1 signature", sign(alert_xml(), key_pem=key, cert_pem=cert), trust, NOW,
         False),
        ("own alert ~20 KB, 1 signature",
         sign(alert_xml(headline=paragraph[:18000]), key_pem=key, cert_pem=cert), trust, NOW,
         False),
    ]
    snowfall = CORPUS / "gcl-canada-snowfall-signed-2013.cap"
    if snowfall.exists():
        naad = TrustStore.from_pem_files([
            CORPUS / "gcl-naads-dss1-x509-cert.pem",
            CORPUS / "gcl-environment-canada-x509-cert.pem",
        ])
        cases.append((
            "NAAD 2013 (NAADS + ECCC, rsa-sha1)", snowfall.read_bytes(), naad,
            datetime(2013, 1, 24, 22, 0, tzinfo=UTC), True,
        ))

    header = f"{'document':<36} {'KiB':>6} {'borderlink/s':>13} {'signxml/s':>10} {'ratio':>6}"
    print(header)
    print("-" * len(header))
    for name, raw, store, when, multiple in cases:
        report = verify(raw, store, now=when, allow_multiple=multiple, allow_sha1=multiple)
        assert report.state == "valid", report

        def ours(raw: bytes = raw, store: TrustStore = store, when: datetime = when,
                 multiple: bool = multiple) -> object:
            return verify(raw, store, now=when, allow_multiple=multiple, allow_sha1=multiple)

        config = SignatureConfiguration(
            location="./", verification_time=when,
            signature_methods=frozenset(SignatureMethod),
            digest_algorithms=frozenset(DigestAlgorithm),
        )
        bare = _bare(raw, store.certificates[0] if multiple else pki.signer, config)
        try:
            bare()
            theirs: float | None = _per_op(bare)
        except Exception:
            theirs = None
        mine = _per_op(ours)
        ratio = "-" if theirs is None else f"{theirs / mine:.2f}"
        print(f"{name:<36} {len(raw) / 1024:>6.1f} {_rate(mine):>13} {_rate(theirs):>10} "
              f"{ratio:>6}")

    signed_once = _per_op(lambda: sign(alert_xml(), key_pem=key, cert_pem=cert))
    print(f"\nsign() rsa-sha256, 2048-bit key: {1 / signed_once:,.0f} alerts/s")
    _hostile_variants(cases)


def _hostile_variants(
    cases: list[tuple[str, bytes, TrustStore, datetime, bool]], count: int = 5000,
) -> None:
    """Random byte edits (replace, delete, insert; 1-3 per variant) of the signed documents:
    a variant may only be accepted if exactly the original signed alert is handed on."""
    rnd = random.Random(20260601)  # reproducible fuzzing, not security
    accepted = false_accepts = 0
    reasons: dict[str, int] = {}
    started = time.perf_counter()
    for _ in range(count):
        _, raw, store, when, multiple = rnd.choice(cases)
        baseline = verify(raw, store, now=when, allow_multiple=multiple,
                          allow_sha1=multiple).signed_xml
        data = bytearray(raw)
        for _ in range(rnd.choice((1, 1, 2, 3))):
            at = rnd.randrange(len(data))
            roll = rnd.random()
            if roll < 0.6:
                data[at] = rnd.randrange(256)
            elif roll < 0.8:
                del data[at]
            else:
                data.insert(at, rnd.choice(b"<>/ =\"'&#x;abc\n"))
        report = verify(bytes(data), store, now=when, allow_multiple=multiple,
                        allow_sha1=multiple)
        reasons[report.reason] = reasons.get(report.reason, 0) + 1
        if report.state == "valid":
            accepted += 1
            false_accepts += report.signed_xml != baseline
    elapsed = time.perf_counter() - started
    print(f"\nhostile variants: {count:,} in {elapsed:.1f} s; accepted with identical signed "
          f"content: {accepted:,}; false accepts: {false_accepts}")
    print("  reasons: " + ", ".join(f"{k} {v:,}" for k, v in sorted(reasons.items(),
                                                                    key=lambda kv: -kv[1])))


if __name__ == "__main__":
    main()
