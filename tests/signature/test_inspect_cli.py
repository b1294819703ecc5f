"""``borderlink inspect`` on an alert with two signatures (as NAAD alerts carry): said why it
is refused, and verified when the technician allows several; ``--json`` gives the verified
signer and the trust it earns. As a subprocess on real files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from cap_schemas.signature import sign
from tests.signature.pki import Pki, key_pem, pem


def _inspect(*argv: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # noqa: PLW1510 - the exit status is asserted
        [sys.executable, "-m", "gateway", "inspect", *argv],
        capture_output=True,
        text=True,
        timeout=60,
    )


def _signature_line(out: str) -> str:
    return next(line for line in out.splitlines() if line.startswith("signatures:"))


def test_two_signatures_refused_then_verified_when_allowed(
    pki: Pki, signed: bytes, tmp_path: Path
) -> None:
    twice = sign(signed, key_pem=key_pem(pki.signer_key), cert_pem=pem(pki.signer))
    alert = tmp_path / "two-signatures.xml"
    alert.write_bytes(twice)
    anchor = tmp_path / "ca.pem"
    anchor.write_bytes(pem(pki.ca))

    plain = _inspect(str(alert), "--trust", str(anchor))
    assert plain.returncode == 0, plain.stderr
    line = _signature_line(plain.stdout)
    assert line.startswith("signatures: 2, invalid (multiple)")
    assert "--allow-multiple-signatures" in line

    allowed = _inspect(str(alert), "--trust", str(anchor), "--allow-multiple-signatures")
    assert allowed.returncode == 0, allowed.stderr
    assert _signature_line(allowed.stdout).startswith("signatures: 2, valid (verified)")


def test_json_reports_the_verified_signer_and_its_trust(
    pki: Pki, signed: bytes, tmp_path: Path
) -> None:
    alert = tmp_path / "signed.xml"
    alert.write_bytes(signed)
    anchor = tmp_path / "ca.pem"
    anchor.write_bytes(pem(pki.ca))

    done = _inspect("--json", str(alert), "--trust", str(anchor))
    assert done.returncode == 0, done.stderr
    seen = json.loads(done.stdout)
    signatures = seen["signatures"]
    assert (signatures["count"], signatures["state"], signatures["reason"]) == (
        1,
        "valid",
        "verified",
    )
    assert signatures["anchors"] is True
    assert signatures["signers"]
    assert signatures["error"] is None
    assert seen["provenance"]["trust"] == "verified"

    untrusted = json.loads(_inspect("--json", str(alert)).stdout)
    assert untrusted["signatures"]["state"] == "invalid"
    assert untrusted["signatures"]["anchors"] is False
    assert untrusted["provenance"]["trust"] == "anonymous"
