"""``borderlink validate FILE...``: check CAP files against the XSD and a profile.

Checks CAP files (CAP 1.2, or 1.1/1.0 read as 1.2) against the CAP 1.2 XSD, the CAP rules
and a profile; an EDXL-DE 1.0 or 2.0 envelope against its own schema, and each CAP alert it
carries as a CAP alert (``FILE alert N``). ``-`` reads stdin.

``--json`` prints a list of one object per file (and per alert of an envelope): ``file``,
``status`` (valid, invalid, unreadable or hostile), ``profile``, ``version``, ``key``,
``error`` and ``reason`` (why a file was refused), ``warnings`` (notes on reading it) and
``findings``, each with ``severity``, ``rule``, ``xpath`` and ``message``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from gateway.commands import Subparsers, add_command, described
from gateway.metrics import INPUT_REJECTED

# The CAP library (lxml, the schemas) and structlog are imported when a file is checked: a
# technician's 'borderlink validate --help' stays instant.
if TYPE_CHECKING:
    from cap_schemas.model import Alert
    from cap_schemas.parse import ParseLimits
    from cap_schemas.validate import Finding

# What `borderlink --help` lists for this command (read there without importing it).
SUMMARY = "check CAP files against the CAP 1.2 XSD and the CAP-CP or IPAWS profile"


EXIT_VALID = 0
EXIT_INVALID = 1
EXIT_UNREADABLE = 2
EXIT_CODES = {
    EXIT_VALID: "every file is valid",
    EXIT_INVALID: "at least one file has an error finding",
    EXIT_UNREADABLE: "at least one file could not be read or was refused as hostile "
    "(this wins over 1)",
}
# cap_schemas.validate.PROFILES (a test holds them equal), without loading lxml for --help.
PROFILES = ("auto", "cap", "cap-cp", "ipaws")


class InputError(Exception):
    """A file could not be read or parsed; ``exit_code`` says how the command should end."""

    def __init__(self, message: str, *, hostile: bool = False, reason: str = "unreadable"):
        super().__init__(message)
        self.hostile = hostile
        self.reason = reason


def read_input(name: str, *, stdin: Any = None) -> bytes:
    """The bytes of a file, or of stdin for ``-``."""
    try:
        if name == "-":
            stream = stdin if stdin is not None else sys.stdin.buffer
            data: bytes = stream.read()
            return data
        return Path(name).read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read the file: {exc.strerror or exc}") from None


def load_alert(name: str, *, limits: ParseLimits | None = None) -> tuple[Alert, list[str]]:
    """Read and parse one file; parse failures are counted and raised as :class:`InputError`."""
    return parse_input(read_input(name), name, limits=limits)


def parse_input(
    data: bytes, name: str, *, limits: ParseLimits | None = None
) -> tuple[Alert, list[str]]:
    """Parse the bytes of ``name``; failures are counted and raised as :class:`InputError`."""
    import structlog  # noqa: PLC0415 - loaded with the CAP library, when a file is read

    from cap_schemas.errors import CapHostileError, CapParseError  # noqa: PLC0415
    from cap_schemas.parse import parse_alert_with_warnings  # noqa: PLC0415

    try:
        if limits is None:
            return parse_alert_with_warnings(data)
        return parse_alert_with_warnings(data, limits=limits)
    except CapParseError as exc:
        INPUT_REJECTED.inc(component="cli", reason=exc.reason)
        log = structlog.get_logger(__name__)
        log.warning("input_rejected", file=name, reason=exc.reason, error=str(exc))
        kind = "refused as hostile" if isinstance(exc, CapHostileError) else "not readable CAP"
        raise InputError(
            f"{kind}: {exc}",
            hostile=isinstance(exc, CapHostileError),
            reason=exc.reason,
        ) from None


@dataclass
class FileResult:
    file: str
    status: str  # "valid" | "invalid" | "unreadable" | "hostile"
    profile: str | None = None
    version: str | None = None
    key: str | None = None
    error: str | None = None
    reason: str | None = None
    warnings: list[str] = field(default_factory=list)
    findings: list[Finding] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["findings"] = [asdict(f) for f in self.findings]
        return data


def _refused(name: str, exc: InputError) -> FileResult:
    return FileResult(
        file=name,
        status="hostile" if exc.hostile else "unreadable",
        error=str(exc),
        reason=exc.reason,
    )


def _checked(name: str, alert: Alert, profile: str, warnings: list[str]) -> FileResult:
    from cap_schemas.validate import detect_profile, is_valid, validate  # noqa: PLC0415

    chosen = detect_profile(alert) if profile == "auto" else profile
    findings = validate(alert, profile=chosen)
    return FileResult(
        file=name,
        status="valid" if is_valid(findings) else "invalid",
        profile=chosen,
        version=alert.version,
        key=str(alert.key),
        warnings=warnings,
        findings=findings,
    )


def check_file(name: str, profile: str, *, limits: ParseLimits | None = None) -> list[FileResult]:
    """One result for a CAP file; for an EDXL-DE envelope, one for the envelope and one for
    each alert in it."""
    from cap_schemas.edxl import looks_like_edxl  # noqa: PLC0415
    from cap_schemas.parse import ParseLimits  # noqa: PLC0415

    try:
        data = read_input(name)
        if looks_like_edxl(data):
            return _check_envelope(name, data, profile, limits or ParseLimits())
        alert, warnings = parse_input(data, name, limits=limits)
    except InputError as exc:
        return [_refused(name, exc)]
    return [_checked(name, alert, profile, warnings)]


def _check_envelope(name: str, data: bytes, profile: str, limits: ParseLimits) -> list[FileResult]:
    from cap_schemas.edxl import unwrap, unwrap_alerts, validate_edxl  # noqa: PLC0415
    from cap_schemas.errors import CapHostileError, CapParseError  # noqa: PLC0415
    from cap_schemas.validate import is_valid  # noqa: PLC0415

    try:
        envelope = unwrap(data, limits=limits)
        alerts = unwrap_alerts(data, limits=limits)
    except CapParseError as exc:
        INPUT_REJECTED.inc(component="cli", reason=exc.reason)
        hostile = isinstance(exc, CapHostileError)
        kind = "refused as hostile" if hostile else "not a readable EDXL-DE envelope"
        return [_refused(name, InputError(f"{kind}: {exc}", hostile=hostile, reason=exc.reason))]
    findings = validate_edxl(data, limits=limits)
    notes = [] if alerts else ["the envelope carries no CAP alert"]
    results = [
        FileResult(
            file=name,
            status="valid" if is_valid(findings) else "invalid",
            profile=f"EDXL-DE {envelope.version}",
            version=envelope.version,
            key=envelope.distribution_id,
            warnings=notes,
            findings=findings,
        )
    ]
    results.extend(
        _checked(f"{name} alert {i}", alert, profile, []) for i, alert in enumerate(alerts, start=1)
    )
    return results


def _text(result: FileResult) -> str:
    if result.status in ("unreadable", "hostile"):
        return f"{result.file}: {result.status.upper()}: {result.error}\n"
    counts = {s: sum(f.severity == s for f in result.findings) for s in ("error", "warning")}
    what = (
        result.profile
        if result.profile and result.profile.startswith("EDXL-DE")
        else f"profile {result.profile}, CAP {result.version}"
    )
    head = (
        f"{result.file}: {'valid' if result.status == 'valid' else 'INVALID'} "
        f"({what}; {counts['error']} error(s), "
        f"{counts['warning']} warning(s))\n"
    )
    lines = [head]
    lines.extend(f"  {f.severity}: {f.rule} at {f.xpath}: {f.message}\n" for f in result.findings)
    lines.extend(f"  note: {w}\n" for w in result.warnings)
    return "".join(lines)


def exit_code(results: list[FileResult]) -> int:
    if any(r.status in ("unreadable", "hostile") for r in results):
        return EXIT_UNREADABLE
    if any(r.status == "invalid" for r in results):
        return EXIT_INVALID
    return EXIT_VALID


def run(args: argparse.Namespace) -> int:
    from cap_schemas.parse import ParseLimits  # noqa: PLC0415

    limits = ParseLimits(max_bytes=args.max_bytes) if args.max_bytes else None
    results = [r for name in args.files for r in check_file(name, args.profile, limits=limits)]
    out = sys.stdout
    if args.json:
        out.write(json.dumps([r.to_json() for r in results], indent=2, ensure_ascii=False))
        out.write("\n")
    else:
        for result in results:
            out.write(_text(result))
    out.flush()
    return exit_code(results)


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "validate",
        summary=SUMMARY,
        description=described(__doc__),
        codes=EXIT_CODES,
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help="CAP file, or - for stdin")
    parser.add_argument(
        "--profile",
        choices=PROFILES,
        default="auto",
        help="profile to check (auto: from the alert's <code>; default auto)",
    )
    parser.add_argument("--json", action="store_true", help="machine-readable output")
    parser.add_argument(
        "--max-bytes",
        type=int,
        default=0,
        help="refuse files larger than this (default 8 MiB)",
    )
    parser.set_defaults(handler=run)
