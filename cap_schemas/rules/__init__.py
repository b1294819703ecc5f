"""Validation rules beyond the XSD: the CAP 1.2 text, the CAP-CP profile and the IPAWS profile.

Each module exposes ``check(alert, profile) -> Iterator[Finding]``; :mod:`cap_schemas.validate`
runs them. Rule ids are stable (``cap.*``, ``capcp.*``, ``ipaws.*``, ``xsd``) so that logs,
metrics and tests can rely on them.
"""

from __future__ import annotations

from dataclasses import dataclass

from cap_schemas.model import Alert, FrozenRecord

ERROR = "error"
WARNING = "warning"
INFO = "info"
SEVERITIES = (ERROR, WARNING, INFO)


@dataclass(frozen=True, init=False, slots=True)
class Finding(FrozenRecord):
    """One validation result: how bad, which rule, where (XPath, 1-based) and what."""

    severity: str
    rule: str
    xpath: str
    message: str

    def __init__(self, severity: str, rule: str, xpath: str, message: str) -> None:
        object.__setattr__(self, "severity", severity)
        object.__setattr__(self, "rule", rule)
        object.__setattr__(self, "xpath", xpath)
        object.__setattr__(self, "message", message)

    def __str__(self) -> str:
        return f"{self.severity}: {self.rule} at {self.xpath}: {self.message}"


SOREM_BI = "layer:SOREM:1.0:Broadcast_Immediately"
EAS_MUST_CARRY = "EAS-Must-Carry"


def broadcast_immediately(alert: Alert) -> bool:
    """Whether the alert is to be broadcast at once: CAP-CP's SOREM
    ``layer:SOREM:1.0:Broadcast_Immediately`` = ``Yes`` or the IPAWS ``EAS-Must-Carry`` =
    ``True``, in any info block.

    The one rule the whole gateway uses (outbox priority, must-carry in translations, radio
    text). Values are compared without regard to case or surrounding blanks: a ``yes`` that
    the profile check reports as an error still marks the alert as urgent, since treating
    an urgent alert as routine is the worse mistake.
    """
    for info in alert.infos:
        for param in info.parameters:
            value = param.value.strip().casefold()
            if param.name == SOREM_BI and value == "yes":
                return True
            if param.name == EAS_MUST_CARRY and value == "true":
                return True
    return False


def info_path(index: int) -> str:
    """XPath of the ``index``-th (0-based) info block."""
    return f"/alert/info[{index + 1}]"


def area_path(info_index: int, area_index: int) -> str:
    return f"{info_path(info_index)}/area[{area_index + 1}]"
