"""Coordination on one ledger: leases of once-only tasks (with a token that grows at every
takeover) and the heartbeat of each instance; on every backend."""

from __future__ import annotations

from datetime import timedelta

from tests.ledger.conftest import T0, FakeClock, OpenLedger, Planner, admit, make_alert

TTL = timedelta(seconds=5)


class TestLeases:
    """One holder at a time; a lease not renewed runs out and another takes it over."""

    def test_lead_renew_deny_takeover(self, open_ledger: OpenLedger, clock: FakeClock) -> None:
        with open_ledger(clock=clock) as led:
            assert led.lead("source:naad", "gw-a", T0, TTL) == 1
            assert led.lead("source:naad", "gw-a", T0 + timedelta(seconds=1), TTL) == 1
            assert led.lead("source:naad", "gw-b", T0 + timedelta(seconds=2), TTL) is None
            # gw-a stops renewing: after its lease runs out, gw-b leads with a new token
            later = T0 + timedelta(seconds=6, milliseconds=1)
            assert led.lead("source:naad", "gw-b", later, TTL) == 2
            # a deposed leader coming back finds the lease taken
            assert led.lead("source:naad", "gw-a", later, TTL) is None
            assert led.lead("source:ipaws", "gw-a", later, TTL) == 1  # tasks are apart
            events = [j.event for j in led.journal_between(T0, later + TTL)]
            assert events.count("lead_taken") == 3

    def test_release_lets_another_lead_at_once(
        self, open_ledger: OpenLedger, clock: FakeClock
    ) -> None:
        with open_ledger(clock=clock) as led:
            assert led.lead("source:nws", "gw-a", T0, TTL) == 1
            led.release_lead("source:nws", "gw-a", T0 + timedelta(seconds=1))
            assert led.lead("source:nws", "gw-b", T0 + timedelta(seconds=1), TTL) == 2

    def test_heartbeats(self, open_ledger: OpenLedger, clock: FakeClock) -> None:
        with open_ledger(clock=clock) as led:
            led.heartbeat("gw-a", T0, ["naad"])
            led.heartbeat("gw-b", T0 + timedelta(seconds=1))
            led.heartbeat("gw-a", T0 + timedelta(seconds=2), ["naad", "nws"])
            peers = led.peers()
            assert [p["name"] for p in peers] == ["gw-a", "gw-b"]
            assert peers[0]["leads"] == ["naad", "nws"]
            assert peers[0]["last_seen"] == (T0 + timedelta(seconds=2)).isoformat()

    def test_peers_show_their_claims(self, open_ledger: OpenLedger, clock: FakeClock) -> None:
        """Each instance's deliveries under way, per sink; settled ones leave the count."""
        with open_ledger(clock=clock) as led:
            led.heartbeat("gw-a", T0)
            led.heartbeat("gw-b", T0)
            for _ in range(3):
                admit(led, make_alert(), Planner(sinks=("radio", "feed")))
            led.claim("radio", T0, limit=2, by="gw-a")
            (feed,) = led.claim("feed", T0, by="gw-b")
            claims = {p["name"]: p["claims"] for p in led.peers()}
            assert claims == {"gw-a": {"radio": 2}, "gw-b": {"feed": 1}}
            led.mark_delivered(feed.id, T0)
            assert {p["name"]: p["claims"] for p in led.peers()}["gw-b"] == {}
