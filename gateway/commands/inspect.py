"""``borderlink inspect FILE``: a readable summary of one CAP alert.

Who sent it, what it is, where and when it applies, in which languages, what it carries,
its signatures (verified against ``--trust`` anchors when given; without anchors a signature
can only be "untrusted") and how it validates. Exit 0 when the file was read, 2 when not.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from cap_schemas.model import Alert, Info, format_cap_datetime
from cap_schemas.validate import detect_profile, validate
from gateway.commands import Subparsers
from gateway.commands.validate import EXIT_UNREADABLE, EXIT_VALID, InputError, load_alert

# Parameters an operator wants to see first (broadcast intrusion, wireless text, EAS origin).
KEY_PARAMETERS = (
    "layer:SOREM:1.0:Broadcast_Immediately",
    "layer:SOREM:2.0:WirelessImmediate",
    "layer:SOREM:2.0:WirelessText",
    "layer:SOREM:1.0:Broadcast_Text",
    "EAS-ORG",
    "EAS-Must-Carry",
    "CMAMtext",
    "CMAMlongtext",
    "BLOCKCHANNEL",
    "WEAHandling",
    "VTEC",
)


def _time(value: datetime | None) -> str:
    return format_cap_datetime(value) if value is not None else "-"


def _short(text: str | None, limit: int = 160) -> str:
    if not text:
        return "-"
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def signature_summary(
    alert: Alert,
    trust_files: Iterable[str] = (),
    *,
    allow_multiple: bool = False,
    allow_sha1: bool = False,
) -> str:
    """One line on the signatures: count, and the verification state when available.

    ``allow_multiple`` checks every signature of an alert that carries several (NAAD alerts
    do: the originator's and NAAD's); ``allow_sha1`` accepts the legacy rsa-sha1 method.
    """
    count = alert.signature_count
    if count == 0:
        return "none (unsigned)"
    try:
        sig: Any = importlib.import_module("cap_schemas.signature")
    except ImportError:
        return f"{count} (not verified: signature support unavailable)"
    files = list(trust_files)
    try:
        store_cls: Any = sig.TrustStore
        trust = store_cls.from_pem_files(files) if files else store_cls.empty()
        report = sig.verify(alert.raw, trust, allow_multiple=allow_multiple, allow_sha1=allow_sha1)
    except Exception as exc:  # noqa: BLE001 - a summary line must not take the command down
        return f"{count} (could not verify: {exc})"
    signers = ", ".join(report.signers) or "-"
    anchors = "" if files else "; no trust anchors given (--trust)"
    hint = {
        "multiple": "; give --allow-multiple-signatures to check each of them",
        "weak_algorithm": "; --allow-sha1 accepts the legacy rsa-sha1 method",
    }.get(str(report.reason), "")
    return f"{count}, {report.state} ({report.reason}); signers: {signers}{anchors}{hint}"


def _info_lines(index: int, info: Info) -> list[str]:
    lines = [
        f"info {index + 1} [{info.language}]: {info.event}",
        f"  category: {', '.join(c.value for c in info.categories)}"
        f"   urgency/severity/certainty: {info.urgency}/{info.severity}/{info.certainty}",
        f"  headline: {_short(info.headline)}",
        f"  from: {info.sender_name or '-'}",
        f"  effective: {_time(info.effective)}   onset: {_time(info.onset)}"
        f"   expires: {_time(info.expires)}",
    ]
    if info.response_types:
        lines.append(f"  response: {', '.join(r.value for r in info.response_types)}")
    if info.event_codes:
        lines.append(
            "  event codes: " + ", ".join(f"{c.name}={c.value}" for c in info.event_codes),
        )
    lines.extend(
        f"  {name}: {_short(value)}"
        for name in KEY_PARAMETERS
        for value in info.parameter_values(name)
    )
    for area in info.areas:
        shapes = []
        if area.polygons:
            shapes.append(f"{len(area.polygons)} polygon(s)")
        if area.circles:
            shapes.append(f"{len(area.circles)} circle(s)")
        codes = ", ".join(f"{g.name}={g.value}" for g in area.geocodes[:6])
        if len(area.geocodes) > 6:
            codes += f", … ({len(area.geocodes)} geocodes)"
        extra = "; ".join(x for x in (", ".join(shapes), codes) if x)
        lines.append(f"  area: {_short(area.area_desc, 80)}" + (f" ({extra})" if extra else ""))
    for resource in info.resources:
        size = f", {resource.size} bytes" if resource.size is not None else ""
        embedded = ", embedded" if resource.deref_uri else ""
        where = f" {resource.uri}" if resource.uri else ""
        lines.append(
            f"  resource: {_short(resource.resource_desc, 60)} ({resource.mime_type}{size}"
            f"{embedded}){where}",
        )
    return lines


def summary(
    alert: Alert,
    *,
    trust_files: Iterable[str] = (),
    allow_multiple: bool = False,
    allow_sha1: bool = False,
) -> str:
    profile = detect_profile(alert)
    findings = validate(alert, profile=profile)
    errors = [f for f in findings if f.severity == "error"]
    warnings = [f for f in findings if f.severity == "warning"]
    lines = [
        f"alert:      {alert.identifier}",
        f"sender:     {alert.sender}",
        f"sent:       {_time(alert.sent)}",
        f"status:     {alert.status}   type: {alert.msg_type}   scope: {alert.scope}",
        f"CAP:        {alert.version}   profile: {profile}   "
        f"codes: {', '.join(alert.codes) or '-'}",
        f"languages:  {', '.join(alert.languages()) or '-'}",
        "signatures: "
        + signature_summary(
            alert, trust_files, allow_multiple=allow_multiple, allow_sha1=allow_sha1
        ),
    ]
    if alert.source:
        lines.append(f"source:     {alert.source}")
    if alert.note:
        lines.append(f"note:       {_short(alert.note)}")
    lines.extend(f"references: {ref}" for ref in alert.references)
    for i, info in enumerate(alert.infos):
        lines.extend(_info_lines(i, info))
    verdict = "valid" if not errors else "INVALID"
    lines.append(
        f"validation: {verdict} under {profile} ({len(errors)} error(s), "
        f"{len(warnings)} warning(s))",
    )
    lines.extend(f"  {f.severity}: {f.rule} at {f.xpath}: {f.message}" for f in errors + warnings)
    return "\n".join(lines) + "\n"


def run(args: argparse.Namespace) -> int:
    try:
        alert, _ = load_alert(args.file)
    except InputError as exc:
        sys.stderr.write(f"{args.file}: {exc}\n")
        return EXIT_UNREADABLE
    sys.stdout.write(
        summary(
            alert,
            trust_files=args.trust,
            allow_multiple=args.allow_multiple_signatures,
            allow_sha1=args.allow_sha1,
        )
    )
    sys.stdout.flush()
    return EXIT_VALID


def register(subparsers: Subparsers) -> None:
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "inspect",
        help="show a readable summary of a CAP alert (who, what, where, when, signatures)",
    )
    parser.add_argument("file", metavar="FILE", help="CAP file, or - for stdin")
    parser.add_argument(
        "--trust",
        action="append",
        default=[],
        metavar="PEM",
        help="PEM file of trusted signing certificates (repeatable)",
    )
    parser.add_argument(
        "--allow-multiple-signatures",
        action="store_true",
        help="check every signature of an alert that carries several (NAAD alerts do)",
    )
    parser.add_argument(
        "--allow-sha1", action="store_true", help="accept the legacy rsa-sha1 signature method"
    )
    parser.set_defaults(handler=run)
