"""``borderlink sign FILE --key K --cert C [-o OUT]``: sign a CAP alert we originate.

Adds an enveloped XML signature (the same library and rules the gateway verifies with:
rsa-sha256 or ecdsa-sha256, sha256 digests, exclusive C14N) as the alert's last element, with
the certificate (and any intermediates after it in the PEM file) in KeyInfo, so that a
partner who pins that certificate or its CA verifies it. The key is read from a file (never
from the command line); a key protected by a passphrase takes it from --password-file.
Writes to standard output, or to OUT (replaced whole, never half written).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from gateway.commands import Subparsers, add_command, described

# What `borderlink --help` lists for this command (read there without importing it).
SUMMARY = "sign a CAP alert with the deployment's key and certificate"

EXIT_CODES = {
    0: "signed (written to standard output or OUT)",
    2: "the alert, key, certificate or passphrase cannot be read or used (the reason is said)",
}


def _fail(message: str) -> int:
    print(f"borderlink sign: {message}", file=sys.stderr)  # noqa: T201 - for the operator
    return 2


def _read(path: str, what: str) -> bytes:
    try:
        return sys.stdin.buffer.read() if path == "-" else Path(path).read_bytes()
    except OSError as exc:
        raise ValueError(f"{what} {path}: cannot read it: {exc.strerror or exc}") from None


def handle(args: argparse.Namespace) -> int:
    from cap_schemas.errors import CapParseError, CapSignatureError  # noqa: PLC0415
    from cap_schemas.signature import sign  # noqa: PLC0415
    from gateway.statefile import atomic_write  # noqa: PLC0415

    try:
        document = _read(args.file, "alert")
        key = _read(args.key, "key")
        cert = _read(args.cert, "certificate")
        password = None
        if args.password_file:
            password = _read(args.password_file, "password file").rstrip(b"\r\n")
    except ValueError as exc:
        return _fail(str(exc))
    try:
        signed = sign(document, key_pem=key, cert_pem=cert, password=password)
    except (CapSignatureError, CapParseError) as exc:
        return _fail(f"{args.file}: {exc}")
    if args.output:
        try:
            atomic_write(Path(args.output), signed)
        except OSError as exc:
            return _fail(f"{args.output}: cannot write it: {exc.strerror or exc}")
    else:
        sys.stdout.buffer.write(signed)
        sys.stdout.buffer.flush()
    return 0


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers, "sign", summary=SUMMARY, description=described(__doc__), codes=EXIT_CODES
    )
    parser.add_argument("file", metavar="FILE", help="the CAP alert, or - for standard input")
    parser.add_argument("--key", required=True, help="PEM private key file (RSA or EC)")
    parser.add_argument(
        "--cert", required=True, help="PEM certificate of the key, then any intermediates"
    )
    parser.add_argument("--password-file", help="file holding the key's passphrase")
    parser.add_argument("-o", "--output", help="write here instead of standard output")
    parser.set_defaults(handler=handle)
