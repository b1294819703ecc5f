"""Validate an alert: the official CAP 1.2 XSD, the CAP 1.2 rules and a profile.

Profiles: ``"cap"`` (CAP 1.2 only), ``"cap-cp"`` (Canadian Profile 0.4 with the NAAD/SOREM
layer), ``"ipaws"`` (IPAWS profile 1.0) and ``"auto"`` (chosen from the alert's ``<code>``
values). Every finding names its severity, a stable rule id, an XPath and a message; an alert
is valid when no finding is an error.

The XSD checks the bytes that came in for CAP 1.2 input (``Alert.raw``) and the CAP 1.2
serialisation for CAP 1.1/1.0 input or alerts built in code.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable
from importlib import resources

from lxml import etree

from cap_schemas.errors import CapParseError
from cap_schemas.model import CAP12_NS, Alert
from cap_schemas.parse import SCHEMA_COMPILE_LOCK, parse_xml, recently_parsed
from cap_schemas.rules import ERROR, INFO, WARNING, Finding, capcp, core, ipaws
from cap_schemas.serialize import to_xml

__all__ = [
    "ERROR",
    "INFO",
    "PROFILES",
    "WARNING",
    "Finding",
    "detect_profile",
    "is_valid",
    "validate",
    "validate_xsd",
]

PROFILES = ("auto", "cap", "cap-cp", "ipaws")

_local = threading.local()


def _schema() -> etree.XMLSchema:
    """The compiled CAP 1.2 schema, one per thread (lxml schemas keep a per-object error log)."""
    schema: etree.XMLSchema | None = getattr(_local, "schema", None)
    if schema is None:
        data = resources.files("cap_schemas").joinpath("xsd/cap12.xsd").read_bytes()
        with SCHEMA_COMPILE_LOCK:
            schema = etree.XMLSchema(parse_xml(data).getroottree())
        _local.schema = schema
    return schema


def validate_xsd(data: object) -> list[Finding]:
    """Check CAP 1.2 bytes against the official OASIS CAP 1.2 schema.

    ``data`` is typed ``object`` so that anything but bytes gets an ``xml`` finding from the
    compiled module too (see :func:`cap_schemas.parse.parse_xml`).
    """
    root = recently_parsed(data)
    if root is None:
        try:
            root = parse_xml(data)
        except CapParseError as exc:
            return [Finding(ERROR, "xml", "/", str(exc))]
    if root.tag != f"{{{CAP12_NS}}}alert":
        return [
            Finding(
                ERROR,
                "xsd",
                "/",
                f"root element {root.tag!r} is not a CAP 1.2 alert",
            ),
        ]
    schema = _schema()
    if schema.validate(root.getroottree()):
        return []
    findings = []
    for entry in schema.error_log:
        path = entry.path or "/alert"
        findings.append(Finding(ERROR, "xsd", path, f"line {entry.line}: {entry.message}"))
    return findings


def detect_profile(alert: Alert) -> str:
    """ "cap-cp" when a ``profile:CAP-CP:`` code is present, "ipaws" for ``IPAWSv1.0``."""
    if capcp.is_capcp(alert):
        return "cap-cp"
    if ipaws.is_ipaws(alert):
        return "ipaws"
    return "cap"


def validate(alert: Alert, *, profile: str = "auto", xsd: bool = True) -> list[Finding]:
    """All findings for ``alert`` under ``profile`` (errors first, then warnings, then info).

    The XSD step checks ``alert.raw`` when the alert was read from CAP 1.2 bytes, else the
    CAP 1.2 serialisation of the model. An alert derived from another with
    ``dataclasses.replace`` keeps the source's ``raw``: clear it (``raw=b""``) so that the
    derived alert itself is checked. ``xsd=False`` skips the schema step.
    """
    if profile not in PROFILES:
        msg = f"unknown profile {profile!r}; expected one of {', '.join(PROFILES)}"
        raise ValueError(msg)
    chosen = detect_profile(alert) if profile == "auto" else profile
    findings: list[Finding] = []
    if xsd:
        data = alert.raw if alert.raw and alert.version == "1.2" else to_xml(alert)
        findings.extend(validate_xsd(data))
    findings.extend(core.check(alert, chosen))
    if chosen == "cap-cp":
        findings.extend(capcp.check(alert, chosen))
    elif chosen == "ipaws":
        findings.extend(ipaws.check(alert, chosen))
    return sorted(findings, key=_severity_rank)


_SEVERITY_ORDER = {ERROR: 0, WARNING: 1, INFO: 2}


def _severity_rank(finding: Finding) -> int:
    return _SEVERITY_ORDER.get(finding.severity, 3)


def is_valid(findings: Iterable[Finding]) -> bool:
    """True when no finding is an error."""
    return all(f.severity != ERROR for f in findings)
