"""What the console's pages show, from a real ledger (SQLite and PostgreSQL), and its feed."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import quote

import jinja2
import pytest

from cap_schemas.parse import parse_alert
from gateway.console.i18n import words
from gateway.console.live import JournalFeed
from gateway.console.views import (
    ParsedCache,
    alert_href,
    alert_page,
    board_rows,
    duration,
    health_lines,
    ringing_rows,
)
from gateway.ledger import EntryState
from gateway.storage.sqlite import SqliteLedger
from hardware.feed_alerts import FEED_ALERTS, make_live
from tests.daemon.conftest import CapFactory
from tests.identity_pairs import api_weather_gov_form
from tests.ledger.conftest import T0, FakeClock, Planner, clock, ledger, open_ledger

__all__ = ["clock", "ledger", "open_ledger"]  # fixtures of the ledger suite, used here

cap = CapFactory(sender="views@borderlink.invalid")


def _admit(led: SqliteLedger, raw: bytes, planner: Planner) -> None:
    led.admit(parse_alert(raw), source="http", received_at=T0, plan=planner)


class TestDuration:
    def test_units(self) -> None:
        assert [duration(s) for s in (5, 59, 60, 3599, 3600, 3725, 90000, -120)] == [
            "5 s", "59 s", "1 min", "59 min", "1 h 00 min", "1 h 02 min", "1 d 1 h", "2 min",
        ]  # fmt: skip


class TestBoard:
    def test_most_severe_first_with_deliveries_by_state(
        self, ledger: SqliteLedger, clock: FakeClock
    ) -> None:
        minor = cap(severity="Minor", headline="minor one", sent=T0)
        extreme = cap(severity="Extreme", urgency="Immediate", headline="extreme one", sent=T0)
        _admit(ledger, minor, Planner(sinks=("mqtt",)))
        _admit(ledger, extreme, Planner(sinks=("mqtt", "air"), held=[False, True]))
        rows = board_rows(ledger, clock.now(), ParsedCache())
        assert [r.headline for r in rows] == ["extreme one", "minor one"]
        top = rows[0]
        assert top.deliveries == {"held": ("air",), "pending": ("mqtt",)}
        assert top.attention
        assert top.languages == ("en-US",)
        assert top.certainty == "Likely"
        assert top.country == "us"
        assert top.href.startswith("/alerts/views@borderlink.invalid,")
        assert not rows[1].attention

    def test_a_bilingual_alert_speaks_the_consoles_language(
        self, ledger: SqliteLedger, clock: FakeClock
    ) -> None:
        tornado = (FEED_ALERTS / "naad" / "eccc-tornado-warning-on.xml").read_bytes()
        _admit(ledger, make_live(tornado, now=clock.now()).raw, Planner(sinks=("mqtt",)))
        (english,) = board_rows(ledger, clock.now(), ParsedCache())
        (french,) = board_rows(ledger, clock.now(), ParsedCache(), language="fr")
        assert (english.event, english.headline) == ("tornado", "tornado warning in effect")
        assert english.areas.startswith("Prescott and Russell")
        assert (french.event, french.headline) == ("tornade", "avertissement de tornade en vigueur")
        assert french.areas.startswith("Prescott et Russell")
        assert french.languages == english.languages == ("en-CA", "fr-CA")
        # An alert in one language only is shown in it whatever the console's language.
        _admit(ledger, cap(severity="Minor", headline="minor one", sent=T0), Planner())
        rows = board_rows(ledger, clock.now(), ParsedCache(), language="fr")
        assert [r.headline for r in rows][-1] == "minor one"

    def test_detail_has_the_journal_and_holds(self, ledger: SqliteLedger, clock: FakeClock) -> None:
        raw = cap(severity="Extreme", sent=T0)
        _admit(ledger, raw, Planner(sinks=("air",), held=True))
        key = parse_alert(raw).key
        page = alert_page(ledger, key, clock.now(), ParsedCache())
        assert page is not None
        assert [e.sink for e in page.holds] == ["air"]
        assert page.decision_line == (
            "held from http: every delivery waits for an operator; 1 deliveries (1 held)"
        )
        assert "admitted" in [j.event for j in page.journal]
        assert page.raw_text.startswith("<?xml")
        assert page.alert is not None
        ledger.approve(page.holds[0].id, by="alice", comment="checked")
        again = alert_page(ledger, key, clock.now(), ParsedCache())
        assert again is not None
        assert again.deliveries[0].state is EntryState.PENDING
        assert "approved by alice: checked" in again.deliveries[0].reason


class TestRinging:
    def test_extreme_rings_until_acknowledged(self, ledger: SqliteLedger, clock: FakeClock) -> None:
        extreme = cap(severity="Extreme", headline="rings", sent=T0)
        _admit(ledger, extreme, Planner(sinks=("mqtt",)))
        _admit(ledger, cap(severity="Severe", sent=T0), Planner(sinks=("mqtt",)))
        rows = ringing_rows(ledger, clock.now(), ParsedCache())
        assert [r.headline for r in rows] == ["rings"]
        assert rows[0].sound == "extreme"
        key = parse_alert(extreme).key
        assert ledger.acknowledge(key, "alice", clock.now())
        assert ringing_rows(ledger, clock.now(), ParsedCache()) == []
        assert ledger.acknowledgements([key]) == {key: "alice"}
        assert board_rows(ledger, clock.now(), ParsedCache())[0].acknowledged_by == "alice"


class TestHealth:
    def test_sources_streams_and_sinks(self) -> None:
        now = T0
        fresh = (now - timedelta(seconds=10)).isoformat()
        old = (now - timedelta(seconds=900)).isoformat()
        sources = [
            {"source": "naad", "required": True, "healthy": True, "error": None,
             "streams": [{"name": "a", "healthy": True, "last_message_at": old, "detail": ""},
                         {"name": "b", "healthy": True, "last_message_at": old, "detail": ""}]},
            {"source": "ipaws", "required": False, "healthy": True, "error": None,
             "streams": [{"name": "poll", "healthy": True, "last_message_at": fresh,
                          "detail": ""}]},
            {"source": "nws", "required": True, "healthy": False, "error": "refused",
             "streams": []},
            {"source": "naad-2", "required": True, "led_elsewhere": True},
        ]  # fmt: skip
        sinks = [{"name": "air", "running": True, "error": None},
                 {"name": "pager", "running": False, "error": "OSError: gone"}]  # fmt: skip
        outbox = {("air", EntryState.HELD): 2, ("air", EntryState.PENDING): 1}
        cluster = {
            "peers": [
                {"name": "gw-a", "last_seen": (now - timedelta(seconds=1)).isoformat(),
                 "leads": ["naad"]},
                {"name": "gw-b", "last_seen": (now - timedelta(seconds=60)).isoformat(),
                 "leads": [], "claims": {"radio": 2, "air": 1}},
            ]
        }  # fmt: skip
        found = health_lines(sources, sinks, outbox, now, 300, cluster=cluster)
        lines = {(line.kind, line.name): line for line in found}
        assert lines["instance", "gw-a"].state == "ok"
        assert lines["instance", "gw-a"].error == "leads naad"
        assert lines["instance", "gw-b"].state == "down"
        assert lines["instance", "gw-b"].error == "leads -; under way: air 1, radio 2"
        one = {"peers": cluster["peers"][:1]}
        alone = health_lines(sources, sinks, outbox, now, 300, cluster=one)
        assert not [line for line in alone if line.kind == "instance"]  # one instance: none
        assert lines["source", "naad"].state == "stale"
        assert lines["source", "naad"].last_message_age == 900
        assert lines["stream", "naad · a"].state == "stale"
        assert lines["source", "ipaws"].state == "ok"
        assert lines["source", "nws"].state == "down"
        assert lines["source", "nws"].error == "refused"
        assert lines["source", "naad-2"].state == "led_elsewhere"
        assert lines["sink", "air"].error == "1 pending, 2 held, 0 failed"
        assert lines["sink", "pager"].state == "down"
        assert lines["sink", "pager"].error == "OSError: gone"


async def _reads(feed: JournalFeed, count: int) -> None:
    """Wait (with a deadline) until the feed has read the journal ``count`` times."""
    async with asyncio.timeout(10):
        while feed.reads < count:
            feed.read.clear()
            await feed.read.wait()


class TestJournalFeed:
    async def test_each_new_line_once_to_every_subscriber(
        self, ledger: SqliteLedger, clock: FakeClock
    ) -> None:
        feed = JournalFeed(lambda: ledger, clock.now, interval=0.02)
        await feed.start()
        try:
            async with feed.subscribe() as first, feed.subscribe() as second:
                await _reads(feed, 1)  # the feed's first read: nothing yet
                raw = cap(sent=T0)
                _admit(ledger, raw, Planner(sinks=("mqtt",)))
                key = str(parse_alert(raw).key)
                got = [await asyncio.wait_for(first.get(), 5)]
                got2 = [await asyncio.wait_for(second.get(), 5)]
                await _reads(feed, feed.reads + 3)  # overlapping reads of the same window
                while not first.empty():
                    got.append(first.get_nowait())
                assert all(line is not None and str(line.key) == key for line in got + got2)
                ids = [line.id for line in got if line is not None]
                assert len(ids) == len(set(ids)) == len(ledger.journal(parse_alert(raw).key))
        finally:
            await feed.stop()

    async def test_nobody_listening_reads_nothing_then_recent_lines_reach_the_first(
        self, ledger: SqliteLedger, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        """While no event stream is open the journal is not read; the first stream hears of
        the changes of the overlap window before it (made while its page was loading)."""
        reads: list[object] = []
        original = ledger.journal_between

        def journal_between(*args: Any, **kwargs: Any) -> Any:
            reads.append(args)
            return original(*args, **kwargs)

        monkeypatch.setattr(ledger, "journal_between", journal_between)
        ticks = 0
        ticked = asyncio.Event()

        def now() -> datetime:
            nonlocal ticks
            ticks += 1
            ticked.set()
            return clock.now()

        feed = JournalFeed(lambda: ledger, now, interval=0.02)
        await feed.start()
        try:
            raw = cap(sent=T0)
            _admit(ledger, raw, Planner(sinks=("mqtt",)))
            async with asyncio.timeout(10):  # the feed's loop turns several times, idle
                while ticks < 5:
                    ticked.clear()
                    await ticked.wait()
            assert reads == []
            async with feed.subscribe() as queue:
                line = await asyncio.wait_for(queue.get(), 5)
                assert line is not None
                assert str(line.key) == str(parse_alert(raw).key)
            assert reads
        finally:
            await feed.stop()

    async def test_a_slow_subscriber_is_told_to_reload(
        self, ledger: SqliteLedger, clock: FakeClock
    ) -> None:
        feed = JournalFeed(lambda: ledger, clock.now, interval=0.02, queue_size=2)
        await feed.start()
        try:
            async with feed.subscribe() as queue:
                for _ in range(3):
                    _admit(ledger, cap(sent=T0), Planner(sinks=("a", "b")))
                deadline = asyncio.get_running_loop().time() + 5
                seen = []
                while None not in seen:
                    assert asyncio.get_running_loop().time() < deadline
                    seen.append(await asyncio.wait_for(queue.get(), 5))
                assert feed.subscribers == 1
        finally:
            await feed.stop()


class TestCopies:
    def test_duplicates_and_namesakes_are_listed(
        self, ledger: SqliteLedger, clock: FakeClock
    ) -> None:
        raw = cap(sent=T0, identifier="NWS-IDP-PROD-42")
        _admit(ledger, raw, Planner(sinks=("mqtt",)))
        ledger.admit(parse_alert(raw), source="nws", received_at=T0, plan=Planner(sinks=("mqtt",)))
        other = CapFactory(sender="w-nws.webmaster@noaa.gov")(sent=T0, identifier="NWS-IDP-PROD-42")
        ledger.admit(parse_alert(other), source="ipaws", received_at=T0, plan=Planner(sinks=()))
        page = alert_page(ledger, parse_alert(raw).key, clock.now(), ParsedCache())
        assert page is not None
        assert [j.detail.split(":")[0] for j in page.copies] == ["from nws"]
        assert [a.source for a, _href in page.namesakes] == ["ipaws"]


class TestEventCopies:
    """The alert page links a copy to its event's first copy, and lists every other copy of
    the event with the identity rule that linked it."""

    def test_a_warning_by_two_feeds(self, ledger: SqliteLedger, clock: FakeClock) -> None:
        tornado = (FEED_ALERTS / "ipaws" / "nws-tornado-warning-me.xml").read_bytes()
        raw = make_live(tornado, now=clock.now()).raw
        first, copy = parse_alert(raw), parse_alert(api_weather_gov_form(raw))
        for alert, source in ((first, "ipaws"), (copy, "nws")):
            ledger.admit(alert, source=source, received_at=clock.now(), plan=Planner())
        page = alert_page(ledger, copy.key, clock.now(), ParsedCache())
        assert page is not None
        assert page.event == (str(first.key), alert_href(first.key))
        assert [(a.key, a.source) for a, _href in page.event_copies] == [(first.key, "ipaws")]
        assert page.namesakes == []
        html = _render(page)
        assert 'data-testid="event-of"' in html
        assert "A copy of" in html
        assert "(rule vtec)" in html
        back = alert_page(ledger, first.key, clock.now(), ParsedCache())
        assert back is not None
        assert back.event is None
        assert [(a.key, a.event_rule) for a, _href in back.event_copies] == [(copy.key, "vtec")]
        assert f'href="{alert_href(copy.key)}"' in _render(back)


def _render(page: object) -> str:
    env = jinja2.Environment(
        loader=jinja2.PackageLoader("gateway.console", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    env.filters["quote"] = lambda text: quote(str(text), safe="")
    return env.get_template("alert_live.html").render(t=words("en"), page=page)


class TestTemplateWords:
    """Every ``t.NAME`` a template shows is a word of both languages. A word named like a
    method of the mapping that holds the words (``update``) would print that method
    (``<built-in method update of dict ...>``): such a word is written ``t["NAME"]``."""

    def test_each_word_a_template_names_is_a_word(self) -> None:
        folder = Path(__file__).resolve().parents[2] / "gateway" / "console" / "templates"
        named = {
            (path.name, name)
            for path in sorted(folder.glob("*.html"))
            for name in re.findall(r"\bt\.([a-z_]+)", path.read_text(encoding="utf-8"))
        }
        assert named
        for language in ("en", "fr"):
            table = words(language)
            missing = sorted((f, n) for f, n in named if n not in table)
            shadowed = sorted((f, n) for f, n in named if hasattr(table, n))
            assert missing == [], language
            assert shadowed == [], language
