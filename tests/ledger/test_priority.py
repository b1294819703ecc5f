"""priority_of: Broadcast-Immediately and Extreme+Immediate first, then severity x urgency."""

from __future__ import annotations

import itertools
from dataclasses import replace

import pytest

from cap_schemas.model import SEVERITY_RANK, URGENCY_RANK, Severity, Urgency
from gateway.ledger import priority_of
from tests.ledger.conftest import make_alert


class TestPriorityOf:
    """Lower is more urgent; the flags of both countries' profiles give 0."""

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("layer:SOREM:1.0:Broadcast_Immediately", "Yes"),
            ("layer:SOREM:1.0:Broadcast_Immediately", "yes "),
            ("EAS-Must-Carry", "True"),
            ("EAS-Must-Carry", "TRUE"),
        ],
    )
    def test_broadcast_flags(self, name: str, value: str) -> None:
        alert = make_alert(
            severity=Severity.MINOR, urgency=Urgency.PAST, parameters=((name, value),)
        )
        assert priority_of(alert) == 0

    @pytest.mark.parametrize(
        ("name", "value"),
        [
            ("layer:SOREM:1.0:Broadcast_Immediately", "No"),
            ("EAS-Must-Carry", "False"),
            ("layer:SOREM:2.0:WirelessImmediate", "Yes"),
            ("layer:sorem:1.0:broadcast_immediately", "Yes"),  # valueName is case-sensitive
        ],
    )
    def test_flags_that_do_not_count(self, name: str, value: str) -> None:
        alert = make_alert(
            severity=Severity.MINOR, urgency=Urgency.PAST, parameters=((name, value),)
        )
        assert priority_of(alert) > 0

    def test_extreme_immediate(self) -> None:
        assert priority_of(make_alert(severity=Severity.EXTREME, urgency=Urgency.IMMEDIATE)) == 0

    def test_order_is_severity_then_urgency(self) -> None:
        ranked = sorted(
            itertools.product(Severity, Urgency),
            key=lambda su: (SEVERITY_RANK[su[0]], URGENCY_RANK[su[1]]),
        )
        priorities = [priority_of(make_alert(severity=s, urgency=u)) for s, u in ranked]
        assert priorities == sorted(priorities)
        assert len(set(priorities[1:])) == len(priorities) - 1  # all distinct but the top
        assert priorities[0] == 0
        assert min(priorities[1:]) >= 1

    def test_most_urgent_info_counts(self) -> None:
        alert = make_alert(severity=Severity.MINOR, urgency=Urgency.FUTURE, infos=2)
        urgent_fr = replace(alert.infos[1], severity=Severity.SEVERE, urgency=Urgency.IMMEDIATE)
        mixed = replace(alert, infos=(alert.infos[0], urgent_fr))
        assert priority_of(mixed) == priority_of(
            make_alert(severity=Severity.SEVERE, urgency=Urgency.IMMEDIATE)
        )

    def test_no_info_ranks_last(self) -> None:
        worst = priority_of(make_alert(severity=Severity.MINOR, urgency=Urgency.PAST))
        assert priority_of(make_alert(infos=0)) > worst
