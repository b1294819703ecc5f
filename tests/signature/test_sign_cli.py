"""``borderlink sign``: an alert we originate signed from key and certificate files, as a
subprocess; ``inspect --trust`` and xmlsec1 (an independent implementation) verify it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from cryptography.hazmat.primitives import serialization

from tests.helpers import require_tool
from tests.signature.pki import Pki, alert_xml, key_pem, pem


def _borderlink(*argv: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(  # noqa: PLW1510 - the exit status is asserted
        [sys.executable, "-m", "gateway", *argv], input=stdin, capture_output=True, timeout=60
    )


def _files(pki: Pki, tmp: Path) -> dict[str, Path]:
    paths = {
        "alert": tmp / "alert.xml",
        "key": tmp / "eoc.key",
        "cert": tmp / "eoc.pem",
        "ca": tmp / "ca.pem",
        "rogue": tmp / "rogue.pem",
    }
    paths["alert"].write_bytes(alert_xml())
    paths["key"].write_bytes(key_pem(pki.signer_key))
    paths["cert"].write_bytes(pem(pki.signer))
    paths["ca"].write_bytes(pem(pki.ca))
    paths["rogue"].write_bytes(pem(pki.rogue))
    return paths


class TestSignCommand:
    def test_signed_alert_verifies_in_inspect_and_xmlsec1(self, pki: Pki, tmp_path: Path) -> None:
        f = _files(pki, tmp_path)
        out = tmp_path / "signed.xml"
        done = _borderlink("sign", str(f["alert"]), "--key", str(f["key"]), "--cert",
                           str(f["cert"]), "-o", str(out))  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout == b""
        seen = _borderlink("inspect", str(out), "--trust", str(f["ca"])).stdout.decode()
        assert "signatures: 1, valid (verified)" in seen
        xmlsec1 = require_tool("xmlsec1")
        referee = subprocess.run(  # noqa: PLW1510
            [xmlsec1, "--verify", "--trusted-pem", str(f["ca"]), str(out)],
            capture_output=True, text=True, timeout=60,
        )  # fmt: skip
        assert referee.returncode == 0, referee.stderr
        # Pinned elsewhere: not verified.
        other = _borderlink("inspect", str(out), "--trust", str(f["rogue"])).stdout.decode()
        assert "valid (verified)" not in other

    def test_standard_input_to_standard_output_with_a_passphrase(
        self, pki: Pki, tmp_path: Path
    ) -> None:
        f = _files(pki, tmp_path)
        f["key"].write_bytes(
            pki.signer_key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.BestAvailableEncryption(b"s3cret-phrase"),
            )
        )
        secret = tmp_path / "pass"
        secret.write_text("s3cret-phrase\n", encoding="utf-8")
        done = _borderlink("sign", "-", "--key", str(f["key"]), "--cert", str(f["cert"]),
                           "--password-file", str(secret), stdin=alert_xml())  # fmt: skip
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(b"<?xml")
        seen = _borderlink("inspect", "-", "--trust", str(f["ca"]), stdin=done.stdout)
        assert "signatures: 1, valid (verified)" in seen.stdout.decode()
        wrong = tmp_path / "wrong"
        wrong.write_text("nope\n", encoding="utf-8")
        refused = _borderlink("sign", str(f["alert"]), "--key", str(f["key"]), "--cert",
                              str(f["cert"]), "--password-file", str(wrong))  # fmt: skip
        assert refused.returncode == 2
        assert b"signing key or certificate unreadable" in refused.stderr

    def test_what_cannot_be_signed_says_why(self, pki: Pki, tmp_path: Path) -> None:
        f = _files(pki, tmp_path)
        mismatch = _borderlink("sign", str(f["alert"]), "--key", str(f["key"]), "--cert",
                               str(f["rogue"]))  # fmt: skip
        assert mismatch.returncode == 2
        assert b"does not belong to the key" in mismatch.stderr
        missing = _borderlink("sign", str(tmp_path / "none.xml"), "--key", str(f["key"]),
                              "--cert", str(f["cert"]))  # fmt: skip
        assert missing.returncode == 2
        assert b"none.xml: cannot read it" in missing.stderr
        (tmp_path / "edxl.xml").write_bytes(b"<notcap/>")
        wrong_root = _borderlink("sign", str(tmp_path / "edxl.xml"), "--key", str(f["key"]),
                                 "--cert", str(f["cert"]))  # fmt: skip
        assert wrong_root.returncode == 2
        assert b"not a CAP alert" in wrong_root.stderr
