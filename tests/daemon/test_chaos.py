"""The chaos scenario of ``make chaos``, short: daemon and broker SIGKILLs while alerts flow
over HTTP and MQTT; nothing acknowledged is lost, only resend sinks see repeats."""

from __future__ import annotations

from bench.chaos import run
from tests.helpers import require_tool


class TestChaosShort:
    """Eight daemon kills, two broker kills, about eighty alerts."""

    def test_nothing_lost_repeats_only_where_allowed(self) -> None:
        require_tool("mosquitto")
        report = run(alerts=80, kills=8, broker_kills=2, seed=7)
        assert report.kills == 8
        assert report.broker_kills == 2
        assert report.acked >= 60  # most attempts land; the rest were refused, not lost
        assert report.lost == [], report.table()
        # every acknowledged alert reached the ledger, but those the broker acknowledged and
        # lost when it was killed before saving them (its durability, counted apart)
        assert report.admitted + len(report.lost_in_broker) == report.acked
        assert "air" not in report.duplicates, report.table()  # in_doubt = hold: never twice
        # the file sink (resend) holds every admitted alert, repeats marked D~2.json
        assert report.received["files"] >= report.admitted, report.table()
        assert set(report.in_doubt) <= {"hold", "resend"}
        assert report.ok
