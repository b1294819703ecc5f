"""The chaos scenarios of ``make chaos`` and ``make chaos-cluster``, short: daemon and broker
SIGKILLs while alerts flow over HTTP and MQTT to MQTT, file and radio sinks; and three
instances on one PostgreSQL ledger with the leader killed and PostgreSQL restarted. Nothing
acknowledged is lost, only resend sinks see repeats, a takeover takes at most 10 s."""

from __future__ import annotations

import pytest

from bench.chaos import Report, run
from bench.chaos_cluster import ClusterReport
from bench.chaos_cluster import run as run_cluster
from tests.helpers import require_tool


@pytest.fixture(scope="module")
def report() -> Report:
    """One short run (about ten seconds) that every test below reads."""
    require_tool("mosquitto")
    return run(alerts=80, kills=8, broker_kills=2, seed=7)


# The runs are the fixtures: under a loaded machine (the whole suite, other work) starting the
# daemons, the kills and the settling take longer than the usual two minutes.
pytestmark = pytest.mark.timeout(300)


class TestChaosShort:
    """Eight daemon kills, two broker kills, about eighty alerts."""

    def test_nothing_lost_repeats_only_where_allowed(self, report: Report) -> None:
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

    def test_the_radio_station_hears_each_alert_once(self, report: Report) -> None:
        """The radio sink (live: an attempt in doubt is held) put every admitted alert on the
        air once, as an APRS message its station told apart, or holds it for an operator."""
        assert "radio" not in report.duplicates, report.table()
        assert report.radio.reused == [], report.table()  # message numbers survive the kills
        assert report.radio.strays == [], report.table()  # every frame names its alert
        # heard, or held (a held one may have been heard too: the kill came between the copy
        # and the ledger's record of its ack)
        assert report.received["radio"] + report.held.get("radio", 0) >= report.admitted
        assert report.radio.frames == report.received["radio"] + report.radio.repeats


@pytest.fixture(scope="module")
def cluster_report() -> ClusterReport:
    """One short cluster run (about fifteen seconds) that the tests below read."""
    require_tool("mosquitto")
    return run_cluster(
        instances=3, alerts=60, kills=2, leader_kills=1, pg_restarts=1, broker_kills=1, seed=7
    )


class TestChaosClusterShort:
    """Three instances on one PostgreSQL ledger; the leader and another instance SIGKILLed,
    PostgreSQL restarted (-m immediate) and the broker SIGKILLed while about sixty alerts
    flow."""

    def test_the_run_and_the_led_feed(self, cluster_report: ClusterReport) -> None:
        report = cluster_report
        assert (report.kills, report.leader_kills, report.pg_restarts) == (2, 1, 1)
        assert report.broker_kills == 1
        assert report.acked >= 40, report.table()  # attempts refused while PG was down: not lost
        assert report.unresolved == [], report.table()
        assert report.naad_missed == [], report.table()  # the led feed missed nothing

    def test_nothing_lost_repeats_only_where_allowed(self, cluster_report: ClusterReport) -> None:
        report = cluster_report
        assert report.lost == [], report.table()
        assert report.lost_in_broker == [], report.table()
        assert report.admitted == report.acked, report.table()
        assert "air" not in report.duplicates, report.table()  # in_doubt = hold: never twice
        assert report.ok, report.table()

    def test_takeover_within_ten_seconds(self, cluster_report: ClusterReport) -> None:
        assert len(cluster_report.takeovers) == 1, cluster_report.table()
        assert cluster_report.takeovers[0] <= 10, cluster_report.table()

    def test_every_instance_back_on_the_ledger(self, cluster_report: ClusterReport) -> None:
        """After PostgreSQL's restart every running instance writes its heartbeat again."""
        assert cluster_report.unreconnected == [], cluster_report.table()
        assert len(cluster_report.reconnects) == 1
