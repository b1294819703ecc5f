"""``borderlink inspect FILE [--json]``: a readable summary of one CAP alert.

Who sent it, what it is, where and when it applies, in which languages, what it carries,
its signatures (verified against ``--trust`` anchors when given; without anchors a signature
can only be "untrusted"), where it says it came from, and how it validates.

``--json`` prints the same facts as one object:

- the gateway's summary of an alert, as the HTTP API gives it: ``alert_key``, ``sender``,
  ``identifier``, ``sent``, ``status``, ``msg_type``, ``scope``, ``country``, ``event``,
  ``expires``, ``references`` and ``infos``, each info also with ``categories``,
  ``response_types``, ``parameters`` (the key ones, as [name, value]), ``resources``
  (``description``, ``mime_type``, ``size``, ``uri``, ``embedded``) and ``locations``: for
  a Canadian (``CA``, CLC codes) and a US station (``US``, county codes), the SAME location
  codes the block leads to, each with ``code``, ``area`` (its name), ``kind``, ``scale``
  (subdivision, division, province, nation), ``from`` (what in the alert it comes from)
  and ``widens`` (a whole province or state for a smaller area: refused unless a route
  says ``widen = "province"``);
- ``file``, ``version`` (of CAP), ``profile``, ``codes``, ``languages``;
- ``signatures``: ``count``, ``state`` (unsigned, valid or invalid; null when they could not
  be checked, and ``error`` says why), ``reason``, ``message``, ``signers``, ``algorithms``,
  ``anchors`` (whether ``--trust`` was given);
- ``provenance``: ``trust`` (verified when a signature verified against an anchor, else
  anonymous: a file proves nothing of where it came from), ``source``, ``note``,
  ``incidents``;
- ``validation``: ``profile``, ``valid``, ``errors`` and ``warnings`` (counts), ``findings``
  (``severity``, ``rule``, ``xpath``, ``message``).

Times are CAP times (``2024-05-01T12:00:00-00:00``); what the alert leaves out is null.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from gateway.commands import Subparsers, add_command, described
from gateway.commands.validate import EXIT_UNREADABLE, EXIT_VALID, InputError, load_alert

if TYPE_CHECKING:
    from cap_schemas.model import Alert, Info
    from cap_schemas.signature_trust import TrustStore

# What `borderlink --help` lists for this command (read there without importing it).
SUMMARY = "show a readable summary of a CAP alert (who, what, where, when, signatures)"


EXIT_CODES = {
    EXIT_VALID: "the alert was read and summarised (valid or not, signed or not)",
    EXIT_UNREADABLE: "the file could not be read, is not CAP or was refused as hostile, or "
    "a --trust file could not be read (the file is named)",
}

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

# What to do about a signature refused for a reason an option changes.
_HINTS = {
    "multiple": "; give --allow-multiple-signatures to check each of them",
    "weak_algorithm": "; --allow-sha1 accepts the legacy rsa-sha1 method",
}


# ------------------------------------------------------------------------------ the facts


def trust_anchors(files: Sequence[str]) -> TrustStore | None:
    """The anchors of ``--trust`` (None without); ``ValueError`` names a file that cannot be
    read or holds no certificate or key."""
    if not files:
        return None
    from cap_schemas.signature import TrustStore  # noqa: PLC0415 - cryptography, on demand

    return TrustStore.from_pem_files(files)


def signature_facts(
    alert: Alert,
    trust: TrustStore | None = None,
    *,
    allow_multiple: bool = False,
    allow_sha1: bool = False,
) -> dict[str, Any]:
    """What the signatures show, checked against ``trust`` (without: every signature can
    only be untrusted). ``allow_multiple`` checks every signature of an alert that carries
    several (NAAD alerts do); ``allow_sha1`` accepts the legacy rsa-sha1 method."""
    facts: dict[str, Any] = {
        "count": alert.signature_count,
        "state": "unsigned",
        "reason": None,
        "message": None,
        "signers": [],
        "algorithms": [],
        "anchors": trust is not None,
        "error": None,
    }
    if alert.signature_count == 0:
        return facts
    from cap_schemas.signature import TrustStore, verify  # noqa: PLC0415 - on demand

    try:
        report = verify(
            alert.raw,
            trust or TrustStore.empty(),
            allow_multiple=allow_multiple,
            allow_sha1=allow_sha1,
        )
    except Exception as exc:  # noqa: BLE001 - a summary must not take the command down
        return facts | {"state": None, "error": str(exc)}
    return facts | {
        "state": report.state,
        "reason": str(report.reason),
        "message": report.message or None,
        "signers": list(report.signers),
        "algorithms": list(report.algorithms),
    }


def location_facts(info: Info) -> dict[str, list[dict[str, Any]]]:
    """The SAME location codes the info block leads to for a Canadian (CLC) and a US (county)
    station, each with the area it covers, what it comes from, and whether it widens the
    alert (a route refuses such a code unless it says ``widen = "province"``)."""
    from cap_schemas.tables import Crosswalk  # noqa: PLC0415 - tables on demand
    from gateway.translate.locations import resolve  # noqa: PLC0415

    return {
        country: [
            {
                "code": loc.code,
                "area": loc.area.name,
                "kind": loc.area.kind,
                "scale": loc.area.scale.name.lower(),
                "from": loc.origin,
                "widens": loc.widens,
            }
            for loc in resolve(info, country, Crosswalk.default())
        ]
        for country in ("CA", "US")
    }


def _info_extras(info: Info) -> dict[str, Any]:
    """What the summary of an info block does not carry and an operator reads here."""
    return {
        "locations": location_facts(info),
        "categories": [c.value for c in info.categories],
        "response_types": [r.value for r in info.response_types],
        "parameters": [
            [name, value] for name in KEY_PARAMETERS for value in info.parameter_values(name)
        ],
        "resources": [
            {
                "description": r.resource_desc,
                "mime_type": r.mime_type,
                "size": r.size,
                "uri": r.uri,
                "embedded": bool(r.deref_uri),
            }
            for r in info.resources
        ],
    }


def facts(alert: Alert, signatures: dict[str, Any], *, file: str) -> dict[str, Any]:
    """Everything ``inspect`` says about ``alert``: the object ``--json`` prints, and what
    the text is written from (so the two never tell different stories)."""
    from cap_schemas.validate import detect_profile, validate  # noqa: PLC0415 - lxml
    from gateway.summary import summary  # noqa: PLC0415

    profile = detect_profile(alert)
    findings = validate(alert, profile=profile)
    errors = sum(f.severity == "error" for f in findings)
    out = summary(alert)
    out["infos"] = [
        base | _info_extras(info) for base, info in zip(out["infos"], alert.infos, strict=True)
    ]
    return out | {
        "file": file,
        "version": alert.version,
        "profile": profile,
        "codes": list(alert.codes),
        "languages": list(alert.languages()),
        "signatures": signatures,
        "provenance": {
            "trust": "verified" if signatures["state"] == "valid" else "anonymous",
            "source": alert.source,
            "note": alert.note,
            "incidents": alert.incidents,
        },
        "validation": {
            "profile": profile,
            "valid": errors == 0,
            "errors": errors,
            "warnings": sum(f.severity == "warning" for f in findings),
            "findings": [
                {"severity": f.severity, "rule": f.rule, "xpath": f.xpath, "message": f.message}
                for f in findings
            ],
        },
    }


# ------------------------------------------------------------------------------- the text


def _short(text: str | None, limit: int = 160) -> str:
    if not text:
        return "-"
    flat = " ".join(text.split())
    return flat if len(flat) <= limit else flat[: limit - 1] + "…"


def _listed(values: Sequence[Any]) -> str:
    return ", ".join(str(v) for v in values) or "-"


def signature_line(signatures: dict[str, Any]) -> str:
    """The signatures in one line: count, and the verification state when available."""
    count = signatures["count"]
    if count == 0:
        return "none (unsigned)"
    if signatures["error"] is not None:
        return f"{count} (could not verify: {signatures['error']})"
    anchors = "" if signatures["anchors"] else "; no trust anchors given (--trust)"
    return (
        f"{count}, {signatures['state']} ({signatures['reason']}); signers: "
        f"{_listed(signatures['signers'])}{anchors}{_HINTS.get(signatures['reason'], '')}"
    )


def _area_line(area: dict[str, Any]) -> str:
    shapes = [f"{area[kind]} {kind[:-1]}(s)" for kind in ("polygons", "circles") if area[kind]]
    geocodes = area["geocodes"]
    codes = ", ".join(f"{name}={value}" for name, value in geocodes[:6])
    if len(geocodes) > 6:
        codes += f", … ({len(geocodes)} geocodes)"
    extra = "; ".join(x for x in (", ".join(shapes), codes) if x)
    return f"  area: {_short(area['desc'], 80)}" + (f" ({extra})" if extra else "")


def _location_line(country: str, location: dict[str, Any]) -> str:
    widens = ' -- WIDENS the alert: refused unless the route says widen = "province"'
    return (
        f"  SAME {country} {location['code']}: {location['area']} ({location['kind']})"
        f" from {location['from']}{widens if location['widens'] else ''}"
    )


def _resource_line(resource: dict[str, Any]) -> str:
    size = f", {resource['size']} bytes" if resource["size"] is not None else ""
    embedded = ", embedded" if resource["embedded"] else ""
    where = f" {resource['uri']}" if resource["uri"] else ""
    return (
        f"  resource: {_short(resource['description'], 60)} ({resource['mime_type']}{size}"
        f"{embedded}){where}"
    )


def _info_lines(index: int, info: dict[str, Any]) -> list[str]:
    lines = [
        f"info {index + 1} [{info['language']}]: {info['event']}",
        f"  category: {', '.join(info['categories'])}   urgency/severity/certainty:"
        f" {info['urgency']}/{info['severity']}/{info['certainty']}",
        f"  headline: {_short(info['headline'])}",
        f"  from: {info['sender_name'] or '-'}",
        f"  effective: {info['effective'] or '-'}   onset: {info['onset'] or '-'}"
        f"   expires: {info['expires'] or '-'}",
    ]
    if info["response_types"]:
        lines.append(f"  response: {', '.join(info['response_types'])}")
    codes = [f"{name}={value}" for name, values in info["event_codes"].items() for value in values]
    if codes:
        lines.append(f"  event codes: {', '.join(codes)}")
    lines.extend(f"  {name}: {_short(value)}" for name, value in info["parameters"])
    lines.extend(_area_line(area) for area in info["areas"])
    for country, found in info["locations"].items():
        if not found:
            lines.append(f"  SAME {country}: none")
        lines.extend(_location_line(country, location) for location in found)
    lines.extend(_resource_line(resource) for resource in info["resources"])
    return lines


def text(seen: dict[str, Any]) -> str:
    """The facts of :func:`facts` as an operator reads them."""
    validation = seen["validation"]
    lines = [
        f"alert:      {seen['identifier']}",
        f"sender:     {seen['sender']}",
        f"sent:       {seen['sent']}",
        f"status:     {seen['status']}   type: {seen['msg_type']}   scope: {seen['scope']}",
        f"CAP:        {seen['version']}   profile: {seen['profile']}   "
        f"codes: {_listed(seen['codes'])}",
        f"languages:  {_listed(seen['languages'])}",
        f"signatures: {signature_line(seen['signatures'])}",
    ]
    provenance = seen["provenance"]
    if provenance["source"]:
        lines.append(f"source:     {provenance['source']}")
    if provenance["note"]:
        lines.append(f"note:       {_short(provenance['note'])}")
    lines.extend(f"references: {ref}" for ref in seen["references"])
    for i, info in enumerate(seen["infos"]):
        lines.extend(_info_lines(i, info))
    lines.append(
        f"validation: {'valid' if validation['valid'] else 'INVALID'} under"
        f" {validation['profile']} ({validation['errors']} error(s),"
        f" {validation['warnings']} warning(s))",
    )
    lines.extend(
        f"  {f['severity']}: {f['rule']} at {f['xpath']}: {f['message']}"
        for severity in ("error", "warning")
        for f in validation["findings"]
        if f["severity"] == severity
    )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------- the command


def run(args: argparse.Namespace) -> int:
    try:
        trust = trust_anchors(args.trust)
    except ValueError as exc:
        sys.stderr.write(f"borderlink inspect: {exc}\n")
        return EXIT_UNREADABLE
    try:
        alert, _ = load_alert(args.file)
    except InputError as exc:
        sys.stderr.write(f"{args.file}: {exc}\n")
        return EXIT_UNREADABLE
    signatures = signature_facts(
        alert,
        trust,
        allow_multiple=args.allow_multiple_signatures,
        allow_sha1=args.allow_sha1,
    )
    seen = facts(alert, signatures, file=args.file)
    if args.json:
        sys.stdout.write(json.dumps(seen, indent=2, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(text(seen))
    sys.stdout.flush()
    return EXIT_VALID


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "inspect",
        summary=SUMMARY,
        description=described(__doc__),
        codes=EXIT_CODES,
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
    parser.add_argument("--json", action="store_true", help="the same facts as one JSON object")
    parser.set_defaults(handler=run)
