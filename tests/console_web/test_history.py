"""History and search: the ledger's search on both backends, the console's paging with the
country read from each alert, and the Atom export that carries each CAP alert unchanged."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from lxml import etree

from cap_schemas.parse import parse_alert
from gateway.console.atom import ATOM, atom_feed
from gateway.console.views import ParsedCache, Search, search
from gateway.storage.sqlite import SqliteLedger
from tests.daemon.conftest import CapFactory
from tests.ledger.conftest import T0, FakeClock, Planner, clock, ledger, open_ledger

__all__ = ["clock", "ledger", "open_ledger"]  # fixtures of the ledger suite, used here

CAP = "urn:oasis:names:tc:emergency:cap:1.2"


def _fill(led: SqliteLedger) -> list[bytes]:
    """Twelve alerts a minute apart: every third Canadian (an SGC geocode), one a 100%_off
    headline (LIKE's own characters must be taken literally)."""
    docs = []
    for n in range(12):
        canadian = n % 3 == 0
        raw = CapFactory(sender=f"s{n}@borderlink.invalid")(
            sent=T0,
            event="Tornado Warning" if n % 2 else "Flood Watch",
            headline="100%_off" if n == 5 else f"headline {n}",
            geocodes=(("profile:CAP-CP:Location:0.3", "3537039"),)
            if canadian
            else (("SAME", "026163"),),
            language="en-CA" if canadian else "en-US",
        )
        led.admit(
            parse_alert(raw), source="http", received_at=T0 + timedelta(minutes=n),
            plan=Planner(sinks=()),
        )  # fmt: skip
        docs.append(raw)
    return docs


class TestLedgerSearch:
    def test_text_dates_status_and_paging(self, ledger: SqliteLedger) -> None:
        _fill(ledger)
        tornado = ledger.search(text="tornado")
        assert len(tornado) == 6
        assert [a.received_at for a in tornado] == sorted(
            (a.received_at for a in tornado), reverse=True
        )
        assert [a.headline for a in ledger.search(text="100%_")] == ["100%_off"]
        assert ledger.search(text="0%x") == []
        assert len(ledger.search(text="S3@BORDERLINK")) == 1  # any case, the sender too
        window = ledger.search(since=T0 + timedelta(minutes=2), until=T0 + timedelta(minutes=5))
        assert [a.headline for a in window] == ["headline 4", "headline 3", "headline 2"]
        first = ledger.search(limit=5)
        second = ledger.search(limit=5, before=first[-1].received_at)
        assert not {a.key for a in first} & {a.key for a in second}
        assert ledger.search(status="cancelled") == []
        assert len(ledger.search(status="active")) == 12


class TestConsoleSearch:
    def test_country_filter_pages_through_batches(self, ledger: SqliteLedger) -> None:
        _fill(ledger)
        cache = ParsedCache()
        page, more = search(ledger, Search(country="ca"), cache, limit=3)
        assert [f.country for f in page] == ["ca", "ca", "ca"]
        assert more is not None
        rest, last = search(ledger, Search(country="ca", before=more), cache, limit=3)
        assert [f.country for f in rest] == ["ca"]
        assert last is None
        assert {f.stored.key for f in page}.isdisjoint({f.stored.key for f in rest})
        us, _ = search(ledger, Search(country="us", text="tornado"), cache, limit=50)
        assert len(us) == 4


class TestAtom:
    def test_each_entry_carries_its_cap_unchanged(
        self, ledger: SqliteLedger, clock: FakeClock
    ) -> None:
        docs = _fill(ledger)
        found, _ = search(ledger, Search(text="tornado"), ParsedCache(), limit=50)
        body = atom_feed(
            found, title="EOC: alerts", url="http://127.0.0.1/history.atom", now=datetime.now(UTC)
        )
        feed = etree.fromstring(body)
        entries = feed.findall(f"{{{ATOM}}}entry")
        assert len(entries) == 6
        for entry in entries:
            cap = entry.find(f"{{{ATOM}}}content/{{{CAP}}}alert")
            assert cap is not None
            alert = parse_alert(etree.tostring(cap))
            assert f"urn:borderlink:alert:{alert.key}" == entry.findtext(f"{{{ATOM}}}id")
            original = next(d for d in docs if alert.key.identifier.encode() in d)
            assert parse_alert(original).key == alert.key
        assert feed.findtext(f"{{{ATOM}}}title") == "EOC: alerts"
