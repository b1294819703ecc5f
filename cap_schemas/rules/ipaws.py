"""IPAWS profile rules ("CAP v1.2 USA IPAWS Profile v1.0", OASIS, with the ECIG guide).

Sources: the profile text as encoded in google/cap-library's ``Ipaws1Profile`` (version code,
time zones, expires, matching categories and event codes, one SAME event code, areas, SAME
geocodes), the profile's EAS-ORG requirement for EAS/HazCollect, and the WEA text parameters
(CMAMtext <= 90 characters, CMAMlongtext <= 360 characters, 47 CFR 10.430).

Rule ids start with ``ipaws.``. The zero-offset time zone rule is ``cap.utc-offset`` (an
error under this profile, see :mod:`cap_schemas.rules.core`).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

from cap_schemas.model import Alert, Info
from cap_schemas.rules import ERROR, INFO, WARNING, Finding, area_path, info_path

PROFILE_CODE = "IPAWSv1.0"
EAS_ORG_VALUES = frozenset({"EAS", "CIV", "WXR", "PEP"})
# BLOCKCHANNEL opt-outs; CAPEXCH was also observed in a real signed IPAWS message.
BLOCKCHANNEL_VALUES = frozenset({"EAS", "NWEM", "CMAS", "PUBLIC", "CAPEXCH"})
CMAM_TEXT_MAX = 90
CMAM_LONG_TEXT_MAX = 360

_SAME_EVENT = re.compile(r"^[A-Z]{3}$")
_SAME_LOCATION = re.compile(r"^\d{6}$")


def is_ipaws(alert: Alert) -> bool:
    return PROFILE_CODE in alert.codes


def check(alert: Alert, profile: str) -> Iterator[Finding]:
    if PROFILE_CODE not in alert.codes:
        yield Finding(
            ERROR,
            "ipaws.version-code",
            "/alert",
            f"<code>{PROFILE_CODE}</code> is required",
        )
    first: Info | None = None
    for i, info in enumerate(alert.infos):
        base = info_path(i)
        if first is None:
            first = info
        else:
            if set(info.categories) != set(first.categories):
                yield Finding(
                    ERROR,
                    "ipaws.categories-match",
                    f"{base}/category",
                    "all <info> blocks must have the same <category> values",
                )
            if set(info.event_codes) != set(first.event_codes):
                yield Finding(
                    ERROR,
                    "ipaws.event-codes-match",
                    f"{base}/eventCode",
                    "all <info> blocks must have the same <eventCode> values",
                )
        if info.expires is None:
            yield Finding(ERROR, "ipaws.expires", base, "<expires> is required")
        same = [c.value for c in info.event_codes if c.name == "SAME"]
        if len(same) != 1 or not _SAME_EVENT.match(same[0]):
            shown = ", ".join(repr(v) for v in same) or "none"
            yield Finding(
                ERROR,
                "ipaws.same-event-code",
                f"{base}/eventCode",
                "exactly one <eventCode> SAME with a three-letter upper-case SAME event code "
                f"is required (found {shown})",
            )
        if not info.areas:
            yield Finding(ERROR, "ipaws.area", base, "at least one <area> is required")
        for j, area in enumerate(info.areas):
            apath = area_path(i, j)
            codes = area.geocode_values("SAME")
            if not codes:
                yield Finding(
                    WARNING,
                    "ipaws.same-geocode",
                    apath,
                    "a <geocode> SAME (6-digit PSSCCC) should name the area",
                )
            for value in codes:
                if not _SAME_LOCATION.match(value):
                    yield Finding(
                        ERROR,
                        "ipaws.same-geocode",
                        f"{apath}/geocode",
                        f"SAME location code {value!r} is not 6 digits (PSSCCC)",
                    )
        yield from _parameters(info, base)
        if info.effective is not None or info.onset is not None:
            yield Finding(
                INFO,
                "ipaws.effective-ignored",
                base,
                "<effective> and <onset> are ignored: IPAWS alerts take effect when sent",
            )
        for field in ("description", "instruction"):
            if not getattr(info, field):
                yield Finding(WARNING, f"ipaws.{field}", base, f"<{field}> should be present")


def _parameters(info: Info, base: str) -> Iterator[Finding]:
    where = f"{base}/parameter"
    orgs = info.parameter_values("EAS-ORG")
    if not orgs:
        yield Finding(
            WARNING,
            "ipaws.eas-org",
            base,
            "EAS-ORG parameter (SAME originator) is required for EAS and HazCollect",
        )
    if len(orgs) > 1:
        yield Finding(ERROR, "ipaws.eas-org", where, "EAS-ORG appears more than once")
    for org in orgs:
        if org not in EAS_ORG_VALUES:
            yield Finding(
                ERROR,
                "ipaws.eas-org",
                where,
                f"EAS-ORG {org!r} is not one of {', '.join(sorted(EAS_ORG_VALUES))}",
            )
    for channel in info.parameter_values("BLOCKCHANNEL"):
        if channel not in BLOCKCHANNEL_VALUES:
            yield Finding(
                ERROR,
                "ipaws.blockchannel",
                where,
                f"BLOCKCHANNEL {channel!r} is not one of {', '.join(sorted(BLOCKCHANNEL_VALUES))}",
            )
    for name, limit in (("CMAMtext", CMAM_TEXT_MAX), ("CMAMlongtext", CMAM_LONG_TEXT_MAX)):
        for text in info.parameter_values(name):
            if len(text) > limit:
                yield Finding(
                    ERROR,
                    "ipaws.wea-text",
                    where,
                    f"{name} is {len(text)} characters, over the {limit} allowed",
                )
    for value in info.parameter_values("EAS-Must-Carry"):
        if value.lower() not in ("true", "false"):
            yield Finding(
                ERROR,
                "ipaws.eas-must-carry",
                where,
                f"EAS-Must-Carry must be True or False, not {value!r}",
            )
