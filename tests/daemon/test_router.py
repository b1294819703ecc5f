"""Routing: filters, area geometry, live-sink safety, holds, one delivery per sink."""

from __future__ import annotations

import tomllib
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from cap_schemas.model import Alert
from cap_schemas.parse import parse_alert
from gateway.assembly import check_names
from gateway.config import parse_config
from gateway.errors import ConfigError, TranslationError
from gateway.ledger import Admission, Decision
from gateway.model import Rendered
from gateway.router import (
    PlanContext,
    Router,
    circle_intersects_polygon,
    haversine_km,
    point_in_polygon,
    polygons_intersect,
)
from gateway.storage.sqlite import SqliteLedger
from gateway.translate.registry import RENDERERS
from tests.daemon.conftest import CapFactory

SQUARE = [(0.0, 0.0), (0.0, 1.0), (1.0, 1.0), (1.0, 0.0), (0.0, 0.0)]


def router(tmp_path: Path, routes: str, sinks: str = "") -> Router:
    sinks = sinks or (
        '[[sink]]\nname = "a"\ntype = "mqtt"\n\n'
        '[[sink]]\nname = "b"\ntype = "mqtt"\n\n'
        '[[sink]]\nname = "live"\ntype = "mqtt"\nlive = true\n\n'
        '[[sink]]\nname = "j"\ntype = "mqtt"\nformat = "json"\n'
    )
    text = f'[mqtt]\nbroker = "mqtt://127.0.0.1:1"\n\n{sinks}\n{routes}'
    path = tmp_path / "r.toml"
    return Router(parse_config(tomllib.loads(text), path=path))


def plan(
    r: Router,
    raw: bytes,
    *,
    source: str = "mqtt",
    signature: str = "unsigned",
    hold: str = "",
    trust: str | None = None,
) -> dict[str, object]:
    alert = parse_alert(raw)
    level = trust or ("verified" if signature == "valid" else "authenticated")
    ctx = PlanContext(alert, source, signature, "cap", trust=level)
    return {p.sink: p for p in r.plan(ctx, Admission(alert.key, Decision.NEW, hold=hold))}


class TestGeometry:
    """Point-in-polygon, polygon and circle intersection, haversine."""

    def test_point_in_polygon(self) -> None:
        assert point_in_polygon((0.5, 0.5), SQUARE)
        assert not point_in_polygon((1.5, 0.5), SQUARE)
        assert not point_in_polygon((0.5, -0.1), SQUARE)

    def test_polygons(self) -> None:
        shifted = [(lat + 0.5, lon + 0.5) for lat, lon in SQUARE]
        far = [(lat + 5, lon + 5) for lat, lon in SQUARE]
        inner = [(0.4, 0.4), (0.4, 0.6), (0.6, 0.6), (0.6, 0.4), (0.4, 0.4)]
        cross = [(-1.0, 0.4), (-1.0, 0.6), (2.0, 0.6), (2.0, 0.4), (-1.0, 0.4)]
        assert polygons_intersect(SQUARE, shifted)
        assert polygons_intersect(SQUARE, inner)
        assert polygons_intersect(inner, SQUARE)
        assert polygons_intersect(SQUARE, cross)  # no vertex inside the other: edges cross
        assert not polygons_intersect(SQUARE, far)

    def test_circle_and_polygon(self) -> None:
        # 1 degree of latitude is about 111 km.
        assert circle_intersects_polygon((0.5, 0.5), 1.0, SQUARE)
        assert circle_intersects_polygon((0.5, 1.5), 60.0, SQUARE)
        assert not circle_intersects_polygon((0.5, 1.5), 50.0, SQUARE)

    def test_haversine(self) -> None:
        # One degree along a meridian is R * pi / 180 = 111.195 km (mean Earth radius).
        assert haversine_km((42.0, -83.0), (43.0, -83.0)) == pytest.approx(111.195, rel=1e-4)
        assert haversine_km((0.0, 0.0), (0.0, 180.0)) == pytest.approx(20015.1, rel=1e-3)

    @given(
        st.floats(-0.5, 1.5), st.floats(-0.5, 1.5)
    )
    def test_point_in_square_matches_bounds(self, lat: float, lon: float) -> None:
        inside = 0 < lat < 1 and 0 < lon < 1
        edge = min(abs(lat), abs(lat - 1), abs(lon), abs(lon - 1)) < 1e-9
        if not edge:
            assert point_in_polygon((lat, lon), SQUARE) == inside


class TestFilters:
    """Each filter narrows a route; lists are alternatives; filters combine."""

    def test_severity_status_language(self, tmp_path: Path, cap: CapFactory) -> None:
        r = router(
            tmp_path,
            '[[route]]\nname = "x"\nsinks = ["a"]\n[route.match]\n'
            'severity = ["Extreme"]\nstatus = ["Actual"]\nlanguage = ["fr"]\n',
        )
        assert plan(r, cap(severity="Extreme", language="fr-CA"))
        assert not plan(r, cap(severity="Severe", language="fr-CA"))
        assert not plan(r, cap(severity="Extreme", language="en-CA"))
        assert not plan(r, cap(severity="Extreme", language="fr-CA", status="Exercise"))

    def test_event_codes_and_msg_type(self, tmp_path: Path, cap: CapFactory) -> None:
        r = router(
            tmp_path,
            '[[route]]\nname = "x"\nsinks = ["a"]\n[route.match]\n'
            'event_codes = ["SAME=TOR", "tornado"]\nmsg_type = ["Alert"]\n',
        )
        assert plan(r, cap(event_codes=(("SAME", "TOR"),)))
        assert plan(r, cap(event_codes=(("profile:CAP-CP:Event:0.4", "Tornado"),)))
        assert not plan(r, cap(event_codes=(("SAME", "SVR"),)))
        assert not plan(r, cap(event_codes=(("OTHER", "TOR"),)))

    def test_geocode_prefix(self, tmp_path: Path, cap: CapFactory) -> None:
        r = router(
            tmp_path,
            '[[route]]\nname = "x"\nsinks = ["a"]\n[route.match]\n'
            'geocodes = ["SAME=026", "profile:CAP-CP:Location:0.3=3537"]\n',
        )
        assert plan(r, cap(geocodes=(("SAME", "026163"),)))
        assert plan(r, cap(geocodes=(("profile:CAP-CP:Location:0.3", "3537039"),)))
        assert not plan(r, cap(geocodes=(("SAME", "036001"),)))
        assert not plan(r, cap(geocodes=(("UGC", "026163"),)))

    def test_region_polygon_and_circle(self, tmp_path: Path, cap: CapFactory) -> None:
        r = router(
            tmp_path,
            '[[route]]\nname = "x"\nsinks = ["a"]\n[route.match]\n'
            "regions = [{ polygon = [[42.0, -83.3], [42.0, -82.6], [42.45, -82.6],"
            " [42.45, -83.3]] }]\n",
        )
        windsor = "42.25,-83.10 42.25,-82.90 42.35,-82.90 42.35,-83.10 42.25,-83.10"
        toronto = "43.60,-79.50 43.60,-79.30 43.75,-79.30 43.75,-79.50 43.60,-79.50"
        assert plan(r, cap(polygon=windsor, geocodes=()))
        assert not plan(r, cap(polygon=toronto, geocodes=()))
        assert plan(r, cap(circle="42.50,-83.00 10", geocodes=()))  # 5.5 km outside, r=10
        assert not plan(r, cap(circle="42.60,-83.00 10", geocodes=()))
        assert not plan(r, cap(geocodes=(("SAME", "026163"),)))  # no shape, no geocode filter

    def test_sources_and_signature(self, tmp_path: Path, cap: CapFactory) -> None:
        r = router(
            tmp_path,
            '[[route]]\nname = "x"\nsinks = ["a"]\nsources = ["http"]\n'
            '[route.match]\nsignature = ["valid"]\n',
        )
        assert plan(r, cap(), source="http", signature="valid")
        assert not plan(r, cap(), source="mqtt", signature="valid")
        assert not plan(r, cap(), source="http", signature="unsigned")


class TestSafety:
    """Live sinks never see non-Actual alerts or unsigned alerts without a route's consent."""

    def test_exercise_never_reaches_live_sink(self, tmp_path: Path, cap: CapFactory) -> None:
        r = router(tmp_path, '[[route]]\nname = "x"\nsinks = ["a", "live"]\n')
        planned = plan(r, cap(status="Exercise"), signature="valid")
        assert set(planned) == {"a"}
        allowed = router(
            tmp_path,
            '[[route]]\nname = "x"\nsinks = ["a", "live"]\nallow_non_actual = true\n',
        )
        assert set(plan(allowed, cap(status="Exercise"), signature="valid")) == {"a", "live"}

    def test_unsigned_is_held_before_live_sink(self, tmp_path: Path, cap: CapFactory) -> None:
        r = router(tmp_path, '[[route]]\nname = "x"\nsinks = ["a", "live"]\n')
        planned = plan(r, cap(), signature="unsigned")
        assert planned["live"].held is True  # type: ignore[attr-defined]
        assert planned["a"].held is False  # type: ignore[attr-defined]
        signed = plan(r, cap(), signature="valid")
        assert signed["live"].held is False  # type: ignore[attr-defined]

    def test_anonymous_input_never_reaches_a_live_sink(
        self, tmp_path: Path, cap: CapFactory
    ) -> None:
        r = router(
            tmp_path, '[[route]]\nname = "x"\nsinks = ["a", "live"]\nallow_unsigned_live = true\n'
        )
        assert set(plan(r, cap(), trust="anonymous")) == {"a"}
        assert set(plan(r, cap(), trust="authenticated")) == {"a", "live"}
        strict = router(
            tmp_path, '[[route]]\nname = "x"\nsinks = ["live"]\nlive_trust = "verified"\n'
        )
        assert set(plan(strict, cap(), trust="authenticated")) == set()
        assert set(plan(strict, cap(), signature="valid")) == {"live"}
        lowered = router(
            tmp_path,
            '[[route]]\nname = "x"\nsinks = ["live"]\nlive_trust = "anonymous"\n'
            "allow_unsigned_live = true\n",
        )
        assert set(plan(lowered, cap(), trust="anonymous")) == {"live"}

    def test_trust_filter(self, tmp_path: Path, cap: CapFactory) -> None:
        r = router(
            tmp_path,
            '[[route]]\nname = "x"\nsinks = ["a"]\nmatch.trust = ["verified", "authenticated"]\n',
        )
        assert set(plan(r, cap(), trust="anonymous")) == set()
        assert set(plan(r, cap(), trust="authenticated")) == {"a"}
        assert set(plan(r, cap(), signature="valid")) == {"a"}

    def test_hold_action_and_validation_hold(self, tmp_path: Path, cap: CapFactory) -> None:
        r = router(
            tmp_path,
            '[[route]]\nname = "x"\nsinks = ["a"]\naction = "hold"\n\n'
            '[[route]]\nname = "y"\nsinks = ["b"]\n',
        )
        planned = plan(r, cap())
        assert planned["a"].held is True  # type: ignore[attr-defined]
        assert planned["b"].held is False  # type: ignore[attr-defined]
        held = plan(r, cap(), hold="2 validation errors")
        assert all(p.held for p in held.values())  # type: ignore[attr-defined]

    def test_one_delivery_per_sink_first_route_wins(
        self, tmp_path: Path, cap: CapFactory
    ) -> None:
        r = router(
            tmp_path,
            '[[route]]\nname = "first"\nsinks = ["a"]\n\n'
            '[[route]]\nname = "second"\nsinks = ["a", "b"]\n',
        )
        planned = plan(r, cap())
        assert planned["a"].route == "first"  # type: ignore[attr-defined]
        assert planned["b"].route == "second"  # type: ignore[attr-defined]


class TestPlannedContent:
    """What a planned delivery carries: payload, attributes, priority, expiry."""

    def test_attributes_json_and_priority(self, tmp_path: Path, cap: CapFactory) -> None:
        r = router(tmp_path, '[[route]]\nname = "x"\nsinks = ["a", "j"]\n')
        raw = cap(severity="Moderate", broadcast_immediately=True)
        planned = plan(r, raw)
        a, j = planned["a"], planned["j"]
        assert a.parts == (raw,)  # type: ignore[attr-defined]
        assert a.content_type == "application/cap+xml"  # type: ignore[attr-defined]
        assert a.priority == 0  # type: ignore[attr-defined]
        attrs = a.attributes  # type: ignore[attr-defined]
        assert attrs["country"] == "us"
        assert attrs["status"] == "actual"
        assert attrs["alert_key"] == CapFactory.key_of(raw)
        assert "+" not in attrs["key"]
        assert "/" not in attrs["key"]
        assert attrs["delivery_id"] != j.attributes["delivery_id"]  # type: ignore[attr-defined]
        assert j.content_type == "application/json"  # type: ignore[attr-defined]
        assert b'"alert_key"' in j.parts[0]  # type: ignore[attr-defined]

    def test_update_reaches_sinks_of_the_original(self, tmp_path: Path, cap: CapFactory) -> None:
        """A cancel that no longer matches the filters still goes where the original went."""
        r = router(
            tmp_path,
            '[[route]]\nname = "severe"\nsinks = ["a"]\n[route.match]\nseverity = ["Severe"]\n',
        )
        original = parse_alert(cap(severity="Severe"))
        cancel = parse_alert(
            cap(severity="Minor", msg_type="Cancel", references=[str(original.key)])
        )
        with SqliteLedger(tmp_path / "l.sqlite3") as ledger:
            now = datetime.now(UTC)
            _admit(ledger, r, original, now)
            entry = ledger.due("a", now)[0]
            ledger.mark_delivered(entry.id, now)
            admission = _admit(ledger, r, cancel, now)
            assert admission.decision is Decision.CANCEL
            assert [e.sink for e in ledger.deliveries(cancel.key)] == ["a"]

    def test_cancel_reaches_sinks_that_may_have_the_original(
        self, tmp_path: Path, cap: CapFactory
    ) -> None:
        """A send under way or a failed attempt may have reached the sink: the cancel goes
        there too; a sink never tried gets nothing (its entry is simply superseded)."""
        r = router(
            tmp_path,
            '[[route]]\nname = "severe"\nsinks = ["a", "b", "j"]\n'
            '[route.match]\nseverity = ["Severe"]\n',
        )
        original = parse_alert(cap(severity="Severe"))
        cancel = parse_alert(
            cap(severity="Minor", msg_type="Cancel", references=[str(original.key)])
        )
        with SqliteLedger(tmp_path / "l.sqlite3") as ledger:
            now = datetime.now(UTC)
            _admit(ledger, r, original, now)
            under_way = ledger.claim("a", now)[0]  # a transmission in progress
            failed = ledger.due("b", now)[0]
            ledger.mark_failed(failed.id, "timed out after the line took it", retry_at=now)
            admission = _admit(ledger, r, cancel, now)
            assert admission.decision is Decision.CANCEL
            assert sorted(e.sink for e in ledger.deliveries(cancel.key)) == ["a", "b"]
            states = {e.sink: e.state.value for e in ledger.deliveries(original.key)}
            assert states == {"a": "superseded", "b": "superseded", "j": "superseded"}
            assert under_way.started_at is not None

    def test_restart_releases_claims_but_remembers_the_attempt(
        self, tmp_path: Path, cap: CapFactory
    ) -> None:
        """An attempt under way at a crash is due again at once after the restart."""
        r = router(tmp_path, '[[route]]\nname = "all"\nsinks = ["a"]\n')
        alert = parse_alert(cap(severity="Severe"))
        now = datetime.now(UTC)
        with SqliteLedger(tmp_path / "l.sqlite3") as ledger:
            _admit(ledger, r, alert, now)
            assert len(ledger.claim("a", now, lease=timedelta(minutes=5))) == 1
            assert ledger.due("a", now) == []  # leased: a second worker does not take it
        with SqliteLedger(tmp_path / "l.sqlite3") as ledger:
            assert ledger.release_claims(now) == 1
            again = ledger.due("a", now)
            assert len(again) == 1
            assert again[0].attempted
            assert ledger.release_claims(now) == 0


def _admit(ledger: SqliteLedger, r: Router, alert: Alert, now: datetime) -> Admission:
    ctx = PlanContext(alert, "mqtt")
    return ledger.admit(
        alert, source="mqtt", received_at=now, plan=r.planner(ctx)
    )


class TestTranslationFailures:
    """A translation that cannot express an alert, or crashes, skips only its own route."""

    def test_failing_translations_skip_their_route(
        self, tmp_path: Path, cap: CapFactory, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        def refuse(_alert: Alert, _options: object) -> Rendered:
            raise TranslationError("no SAME code for this event")

        def crash(_alert: Alert, _options: object) -> Rendered:
            raise RuntimeError("bug")

        monkeypatch.setitem(RENDERERS, "refuse", refuse)
        monkeypatch.setitem(RENDERERS, "crash", crash)
        r = router(
            tmp_path,
            '[[route]]\nname = "x"\nsinks = ["a"]\ntranslation = "refuse"\n\n'
            '[[route]]\nname = "y"\nsinks = ["b"]\ntranslation = "crash"\n\n'
            '[[route]]\nname = "z"\nsinks = ["j"]\n',
        )
        assert set(plan(r, cap())) == {"j"}


class TestRouteOptions:
    """Each route's translation options reach its own deliveries; bad options are refused
    when the configuration is checked."""

    def test_same_translation_other_options(self, tmp_path: Path, cap: CapFactory) -> None:
        r = router(
            tmp_path,
            '[[route]]\nname = "pager"\nsinks = ["a"]\ntranslation = "text"\n'
            'translation_options = { radio = "pager", lang = "en", budget = 120 }\n\n'
            '[[route]]\nname = "dmr"\nsinks = ["b"]\ntranslation = "text"\n'
            'translation_options = { radio = "dmr", lang = "fr" }\n',
        )
        planned = plan(r, cap(severity="Severe", headline="flood warning for the river"))
        pager = planned["a"].parts  # type: ignore[attr-defined]
        dmr = planned["b"].parts  # type: ignore[attr-defined]
        assert pager != dmr
        assert all(len(p) <= 120 for p in pager)

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ('{ radio = "pager", lang = "de" }', "lang 'de' is not en, fr or both"),
            ('{ radio = "pager", budgit = 120 }', "unknown option(s) budgit for 'text'"),
            ('{ radio = "telegraph" }', "radio 'telegraph' is not one of"),
        ],
    )
    def test_bad_options_refused(self, tmp_path: Path, options: str, message: str) -> None:
        text = (
            '[mqtt]\nbroker = "mqtt://127.0.0.1:1"\n\n[[sink]]\nname = "a"\ntype = "mqtt"\n\n'
            f'[[route]]\nname = "pager"\nsinks = ["a"]\ntranslation = "text"\n'
            f"translation_options = {options}\n"
        )
        config = parse_config(tomllib.loads(text), path=tmp_path / "r.toml")
        with pytest.raises(ConfigError) as info:
            check_names(config)
        assert 'route #1 "pager".translation_options' in str(info.value)
        assert message in str(info.value)
