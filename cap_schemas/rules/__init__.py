"""Validation rules beyond the XSD: the CAP 1.2 text, the CAP-CP profile and the IPAWS profile.

Each module exposes ``check(alert, profile) -> Iterator[Finding]``; :mod:`cap_schemas.validate`
runs them. Rule ids are stable (``cap.*``, ``capcp.*``, ``ipaws.*``, ``xsd``) so that logs,
metrics and tests can rely on them.
"""

from __future__ import annotations

from dataclasses import dataclass

ERROR = "error"
WARNING = "warning"
INFO = "info"
SEVERITIES = (ERROR, WARNING, INFO)


@dataclass(frozen=True, slots=True)
class Finding:
    """One validation result: how bad, which rule, where (XPath, 1-based) and what."""

    severity: str
    rule: str
    xpath: str
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.rule} at {self.xpath}: {self.message}"


def info_path(index: int) -> str:
    """XPath of the ``index``-th (0-based) info block."""
    return f"/alert/info[{index + 1}]"


def area_path(info_index: int, area_index: int) -> str:
    return f"{info_path(info_index)}/area[{area_index + 1}]"
