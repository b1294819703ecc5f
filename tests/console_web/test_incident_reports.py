"""Incident reports from the EOC: the form's report, its destinations and previews, sending
from the console (session and CSRF) and from the API (tokens), through the daemon's routes to
an MQTT talkgroup and the partner's topic; the board lists what came in."""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from multidict import MultiDict

from gateway.config import Config
from gateway.console.accounts import add_account, set_token
from gateway.console.incidents import (
    Report,
    ReportError,
    build_incident,
    chosen_sinks,
    current_incidents,
    destinations,
)
from gateway.ledger import Decision
from gateway.metrics import INPUT_REJECTED
from gateway.router import Router
from gateway.translate.incident import incident_from_edxl, incident_from_json, text_to_incident
from tests.daemon.conftest import (
    console_login,
    daemon_toml,
    load,
    poll_until,
    publish_all,
    running_daemon,
    subscriber,
)
from tests.helpers import Broker

MACHINE = "test-token-0123456789abcdef"
NOW = datetime(2026, 12, 4, 7, 30, 12, 345, tzinfo=UTC)
SINKS = (
    '[[sink]]\nname = "tg-ca"\ntype = "mqtt"\ntopic = "radio/tg/ca"\n'
    "retry_initial = 0.05\nretry_max = 0.5\n\n"
    '[[sink]]\nname = "partner"\ntype = "mqtt"\ntopic = "partner/incidents"\n'
    "retry_initial = 0.05\nretry_max = 0.5\n\n"
    '[[sink]]\nname = "field-log"\ntype = "file"\npath = "field-log"\n\n'
    '[[sink]]\nname = "cap-files"\ntype = "file"\npath = "cap-files"\n'
)
# The talkgroup gets the radio line; the partner the EDXL-DE envelope; what the field sends
# is logged, and never offered to the console's form (its route takes the field only).
ROUTES = (
    '[[route]]\nname = "to-talkgroup"\ninput = "incident"\nsinks = ["tg-ca"]\n'
    'translation = "incident-text"\nsources = ["console", "field"]\n\n'
    '[[route]]\nname = "to-partner"\ninput = "incident"\nsinks = ["partner"]\n'
    'translation = "edxl"\nsources = ["console"]\n\n'
    '[[route]]\nname = "field-log"\ninput = "incident"\nsinks = ["field-log"]\n'
    'translation = "incident"\nsources = ["field"]\n\n'
    '[[route]]\nname = "alerts"\nsinks = ["cap-files"]\n'
)
FIELD = '[[source]]\nname = "field"\ntype = "mqtt"\nkind = "incident"\ntopics = ["field/in/#"]\n'
REPORT = Report(
    incident_type="hazmat",
    priority="urgent",
    description_en="Tanker leaking on the Ambassador Bridge ramp",
    description_fr="Camion-citerne qui fuit sur la bretelle du pont Ambassador",
    latitude="42.31201",
    longitude="-83.07402",
    location="Ambassador Bridge, Windsor",
    units="HZ1, E4",
)


def _config(tmp_path: Path, broker: Broker) -> tuple[Config, dict[str, str]]:
    users = tmp_path / "users"
    add_account(users, "alice", "operator", "alice-pass-1234")
    add_account(users, "victor", "viewer", "victor-pass-1234")
    tokens = {"alice": set_token(users, "alice"), "victor": set_token(users, "victor")}
    extra = f'[console]\nusers_file = "{users}"\nsecret_file = "{tmp_path / "secret"}"\n\n{FIELD}'
    path = daemon_toml(tmp_path, broker.url, sinks=SINKS, routes=ROUTES, extra=extra)
    return load(path), tokens


def _refused() -> float:
    reasons = ("no_type", "no_text", "bad_field", "bad_location", "no_point")
    return sum(INPUT_REJECTED.value(component="console", reason=f"incident_{r}") for r in reasons)


class TestReport:
    """A report becomes an incident field by field; each field that cannot says so."""

    def test_bilingual_point_and_units(self) -> None:
        incident = build_incident(REPORT, agency="windsor-eoc", now=NOW)
        assert incident.agency == "windsor-eoc"
        assert re.fullmatch(r"WINDSOR-EOC-20261204-073012-[0-9A-F]{4}", incident.incident_id)
        assert incident.created == incident.updated == NOW.replace(microsecond=0)
        assert incident.location is not None
        assert (incident.location.latitude, incident.location.longitude) == (42.31201, -83.07402)
        assert incident.location.description == "Ambassador Bridge, Windsor"
        assert incident.units == ("HZ1", "E4")
        assert incident.text.startswith("Tanker")
        assert incident.text_fr.startswith("Camion-citerne")
        assert incident.priority == "urgent"

    @pytest.mark.parametrize(
        ("change", "message"),
        [
            ({"incident_type": ""}, "incident_type: the type is required"),
            ({"description_en": ""}, "description_en: the notes in English are required"),
            ({"priority": "asap"}, "priority: 'asap' is not one of urgent"),
            ({"status": "burning"}, "status: 'burning' is not one of active"),
            ({"latitude": "north"}, "latitude: 'north' is not a number"),
            ({"longitude": "-200"}, "longitude: from -180 to 180 degrees"),
            ({"longitude": ""}, "latitude: give both latitude and longitude"),
            ({"latitude": "", "longitude": ""}, "latitude: a civic address needs its point"),
            ({"incident_id": "two words"}, "incident_id: no spaces"),
            ({"incident_id": "A-1", "created": "monday"}, "created: 'monday' is not an ISO"),
            ({"incident_id": "A-1", "created": "2027-01-01T00:00:00+00:00"}, "created: a past"),
        ],
    )
    def test_fields_that_cannot_make_a_report_say_which(
        self, change: dict[str, str], message: str
    ) -> None:
        fields = {f: getattr(REPORT, f) for f in Report.__dataclass_fields__}
        before = _refused()
        with pytest.raises(ReportError, match=message) as refused:
            build_incident(Report(**{**fields, **change}), agency="eoc", now=NOW)
        assert refused.value.reason
        assert _refused() == before  # counted by the door that refuses it, not while checking

    def test_json_body(self) -> None:
        report = Report.from_json(
            {"incident_type": "flood", "description_en": "x", "latitude": 42.5,
             "longitude": -83, "units": ["A1", "B2"], "destinations": ["tg-ca"]}
        )  # fmt: skip
        assert (report.latitude, report.longitude, report.units) == ("42.5", "-83.0", "A1 B2")
        assert report.destinations == ("tg-ca",)
        for body, says in (
            ({"incident_type": 5}, "incident_type: a string"),
            ({"latitude": True}, "latitude: a number of degrees"),
            ({"destinations": "tg-ca"}, "destinations: a list of sink names"),
            ({"colour": "red"}, "colour: not a field"),
        ):
            with pytest.raises(ReportError, match=says):
                Report.from_json(body)

    def test_form_destinations_are_the_ticked_boxes(self) -> None:
        form = MultiDict([("incident_type", "fire"), ("destination", "a"), ("destination", "b")])
        assert Report.from_form(form).destinations == ("a", "b")


class TestDestinations:
    """The form offers what the routes allow from the console, with each one's rendering."""

    def test_routes_that_take_the_console(self, tmp_path: Path, mosquitto: Broker) -> None:
        config, _tokens = _config(tmp_path, mosquitto)
        incident = build_incident(REPORT, agency="windsor-eoc", now=NOW)
        found = destinations(Router(config), incident, NOW)
        assert [(d.sink, d.route, d.translation) for d in found] == [
            ("tg-ca", "to-talkgroup", "incident-text"),
            ("partner", "to-partner", "edxl"),
        ]
        radio = found[0].preview
        assert radio.startswith(f"INC1 ID={incident.incident_id} ST=active TY=hazmat ")
        assert " PR=urgent " in radio
        assert radio.endswith("// Tanker leaking on the Ambassador Bridge ramp")
        heard = text_to_incident(radio)  # minutes are the radio line's precision
        assert heard == replace(incident, created=heard.created, updated=heard.updated)
        assert heard.updated == NOW.replace(second=0, microsecond=0)
        assert incident_from_edxl(found[1].preview.encode()) == incident

    def test_chosen_sinks(self) -> None:
        available = [_dest("tg-ca"), _dest("partner")]
        assert chosen_sinks(Report(), available) == ("tg-ca", "partner")
        assert chosen_sinks(Report(destinations=("partner",)), available) == ("partner",)
        with pytest.raises(ReportError, match="destinations: choose at least one"):
            chosen_sinks(Report(destinations=()), available)
        with pytest.raises(ReportError, match=r"'field-log' is not a destination.*tg-ca, partner"):
            chosen_sinks(Report(destinations=("field-log",)), available)


def _dest(sink: str) -> Any:
    from gateway.console.incidents import Destination  # noqa: PLC0415 - only here

    return Destination(sink, "mqtt", "r", "incident-text", "", "")


async def _sign_in(http: aiohttp.ClientSession, base: str, name: str, password: str) -> str:
    """Sign in as a browser does; the CSRF token of the incident form's page."""
    assert await console_login(http, base, name, password) == 302
    async with http.get(f"{base}/") as resp:
        board = await resp.text()
    return board.split('name="csrf" value="', 1)[1].split('"', 1)[0]


def _form(csrf: str, **fields: str) -> MultiDict[str]:
    form: MultiDict[str] = MultiDict(csrf=csrf)
    for name in ("incident_type", "priority", "description_en", "description_fr", "latitude",
                 "longitude", "location", "units"):  # fmt: skip
        form.add(name, str(getattr(REPORT, name)))
    for name, value in fields.items():
        if name == "destination":
            for sink in value.split():
                form.add("destination", sink)
        else:
            form[name] = value
    return form


class TestSendingThroughTheDaemon:
    """Composed in the console or posted to the API, the report reaches the chosen
    destinations as their route renders it, and only those."""

    async def test_console_form_preview_and_send(self, tmp_path: Path, mosquitto: Broker) -> None:
        config, _tokens = _config(tmp_path, mosquitto)
        jar = aiohttp.CookieJar(unsafe=True)
        async with (
            subscriber(mosquitto, ["radio/#", "partner/#"]) as seen,
            running_daemon(config) as daemon,
            aiohttp.ClientSession(cookie_jar=jar) as http,
        ):
            base = f"http://127.0.0.1:{daemon.http_port}"
            csrf = await _sign_in(http, base, "alice", "alice-pass-1234")
            async with http.get(f"{base}/incidents/new") as resp:
                page = await resp.text()
                assert resp.status == 200
            assert 'value="tg-ca" checked' in page
            assert 'value="partner" checked' in page
            assert 'value="field-log"' not in page  # its route does not take the console
            # The live check: the radio line of the talkgroup, the partner's envelope.
            async with http.post(
                f"{base}/incidents/new/check", data=_form(csrf, destination="tg-ca partner")
            ) as resp:
                check = await resp.text()
            assert "INC1 ID=TEST-" in check
            assert "PR=urgent" in check
            assert "edxlDistribution" in check
            # The check runs as the operator types: a report not finished yet is no
            # refused input (the empty form is checked as soon as it opens).
            before = _refused()
            for partial, says in (
                (_form(csrf, latitude="95"), "latitude: from -90 to 90 degrees"),
                (_form(csrf, incident_type=""), "incident_type: the type is required"),
            ):
                async with http.post(f"{base}/incidents/new/check", data=partial) as resp:
                    assert resp.status == 200
                    assert says in await resp.text()
            assert _refused() == before
            # Sent to the talkgroup only.
            async with http.post(
                f"{base}/incidents", data=_form(csrf, destination="tg-ca"), allow_redirects=False
            ) as resp:
                assert resp.status == 302, await resp.text()
                assert resp.headers["Location"].startswith("/incidents/new?done=TEST-")
            await seen.wait_for(lambda: len(seen.on("radio/tg/ca")) == 1)
            line = seen.on("radio/tg/ca")[0].payload.decode()
            incident = text_to_incident(line)
            assert incident.incident_type == "hazmat"
            assert incident.text == REPORT.description_en
            assert incident.text_fr == REPORT.description_fr
            assert incident.agency == "test"
            await asyncio.sleep(0.5)  # a delivery to the partner would have come by now
            assert seen.on("partner/") == []
            # In the ledger as any inbound incident, from the source "console".
            rows = current_incidents(daemon.ledger, daemon.clock.now())
            assert [(r.incident.incident_id, r.source) for r in rows] == [
                (incident.incident_id, "console")
            ]
            async with http.get(f"{base}/board/rows") as resp:
                assert incident.incident_id in await resp.text()
            # An update of it, from its row on the board: the form comes filled in.
            quoted = aiohttp.helpers.quote(rows[0].key, safe="")
            async with http.get(f"{base}/board/rows") as resp:
                assert f"/incidents/new?of={quoted}" in await resp.text()
            async with http.get(f"{base}/incidents/new?of={quoted}") as resp:
                update_page = await resp.text()
            assert f'name="incident_id" value="{incident.incident_id}"' in update_page
            created = rows[0].incident.created.isoformat()  # seconds: the JSON's precision
            assert f'name="created" value="{created}"' in update_page
            closing = _form(csrf, destination="tg-ca", incident_id=incident.incident_id,
                            created=created, status="closed")  # fmt: skip
            async with http.post(f"{base}/incidents", data=closing, allow_redirects=False) as resp:
                assert resp.status == 302, await resp.text()
            await seen.wait_for(lambda: len(seen.on("radio/tg/ca")) == 2)
            closed = text_to_incident(seen.on("radio/tg/ca")[1].payload.decode())
            assert (closed.incident_id, closed.status) == (incident.incident_id, "closed")
            assert closed.created == incident.created  # the radio line's minute
            (stored,) = daemon.ledger.incidents(rows[0].received_at, limit=1, with_raw=True)
            assert incident_from_json(stored.raw).created.isoformat() == created
            assert current_incidents(daemon.ledger, daemon.clock.now()) == []
            # A field that cannot make a report: the form comes back, nothing is sent.
            async with http.post(
                f"{base}/incidents", data=_form(csrf, incident_type="", destination="tg-ca")
            ) as resp:
                assert resp.status == 400
                assert "incident_type: the type is required" in await resp.text()
            assert _refused() == before + 1  # a report sent and refused is counted
            # Without the form's token: refused.
            async with http.post(f"{base}/incidents", data=_form("stale")) as resp:
                assert resp.status == 403

    async def test_api_and_viewers(self, tmp_path: Path, mosquitto: Broker) -> None:
        config, tokens = _config(tmp_path, mosquitto)
        async with (
            subscriber(mosquitto, ["radio/#", "partner/#"]) as seen,
            running_daemon(config) as daemon,
            aiohttp.ClientSession() as http,
        ):
            base = f"http://127.0.0.1:{daemon.http_port}"
            url = f"{base}/api/v1/incidents"
            body = {
                "incident_type": "flood", "priority": "high", "description_en": "Road under water",
                "description_fr": "Route inondée", "latitude": 42.2, "longitude": -83.0,
                "units": ["W1"], "destinations": ["partner"],
            }  # fmt: skip
            async with http.post(url, json=body, headers=_bearer(tokens["alice"])) as resp:
                assert resp.status == 202, await resp.text()
                sent = await resp.json()
            assert sent["decision"] == Decision.NEW.value
            assert sent["destinations"] == ["partner"]
            assert [d["sink"] for d in sent["deliveries"]] == ["partner"]
            assert sent["radio_text"].startswith(f"INC1 ID={sent['incident_id']} ")
            await seen.wait_for(lambda: len(seen.on("partner/incidents")) == 1)
            incident = incident_from_edxl(seen.on("partner/incidents")[0].payload)
            assert incident.incident_id == sent["incident_id"]
            assert incident.text_fr == "Route inondée"
            # The machine token sends to every destination when none is named.
            del body["destinations"]
            async with http.post(url, json=body, headers=_bearer(MACHINE)) as resp:
                assert resp.status == 202
                assert (await resp.json())["destinations"] == ["tg-ca", "partner"]
            await seen.wait_for(lambda: len(seen.on("radio/tg/ca")) == 1)
            # Refusals: a bad field (counted), no credentials, a viewer.
            before = INPUT_REJECTED.value(component="console", reason="incident_bad_destination")
            async with http.post(
                url, json={**body, "destinations": ["field-log"]}, headers=_bearer(MACHINE)
            ) as resp:
                assert resp.status == 400
                answer = await resp.json()
            assert answer["error"] == "bad_report"
            assert "'field-log' is not a destination" in answer["message"]
            after = INPUT_REJECTED.value(component="console", reason="incident_bad_destination")
            assert after == before + 1
            async with http.post(url, json=body) as resp:
                assert resp.status == 401
            async with http.post(url, json=body, headers=_bearer(tokens["victor"])) as resp:
                assert resp.status == 403
            async with http.post(url, data=b"[1]", headers=_bearer(MACHINE)) as resp:
                assert (resp.status, (await resp.json())["error"]) == (400, "bad_json")
            # Listed, with the latest of each incident.
            async with http.get(url) as resp:
                listed = await resp.json()
            assert len(listed["features"]) == 2
            assert {f["properties"]["priority"] for f in listed["features"]} == {"high"}

    async def test_viewer_gets_403_on_the_form(self, tmp_path: Path, mosquitto: Broker) -> None:
        config, _tokens = _config(tmp_path, mosquitto)
        jar = aiohttp.CookieJar(unsafe=True)
        async with running_daemon(config) as daemon, aiohttp.ClientSession(cookie_jar=jar) as http:
            base = f"http://127.0.0.1:{daemon.http_port}"
            csrf = await _sign_in(http, base, "victor", "victor-pass-1234")
            async with http.get(f"{base}/") as resp:
                assert "/incidents/new" not in await resp.text()  # no link for a viewer
            async with http.get(f"{base}/incidents/new") as resp:
                assert resp.status == 403
            async with http.post(f"{base}/incidents", data=_form(csrf)) as resp:
                assert resp.status == 403
            assert daemon.ledger.incidents(datetime(2000, 1, 1, tzinfo=UTC)) == []


class TestIncomingIncidents:
    """An incident from a field unit over MQTT is admitted, routed and listed while current;
    its later updates replace it, and closing it takes it off."""

    async def test_field_incident_listed_updated_and_closed(
        self, tmp_path: Path, mosquitto: Broker
    ) -> None:
        config, _tokens = _config(tmp_path, mosquitto)
        async with (
            subscriber(mosquitto, ["radio/#"]) as seen,
            running_daemon(config) as daemon,
        ):
            field = daemon.sources["field"]
            await asyncio.wait_for(field.subscribed.wait(), 10)  # type: ignore[attr-defined]
            first = _field_incident("active", "08:01")
            await publish_all(mosquitto, [first], topic="field/in/us")
            await seen.wait_for(lambda: len(seen.on("radio/tg/ca")) == 1)
            rows = current_incidents(daemon.ledger, daemon.clock.now())
            assert [(r.incident.incident_id, r.source, r.channel) for r in rows] == [
                ("DET-FD-0007", "field", "field/in/us")
            ]
            await publish_all(mosquitto, [_field_incident("onscene", "08:05")], topic="field/in/us")

            async def updated() -> bool:
                now = daemon.clock.now()
                got = await asyncio.to_thread(current_incidents, daemon.ledger, now)
                return [(r.incident.status, r.updates) for r in got] == [("onscene", 2)]

            await poll_until(updated)
            await publish_all(mosquitto, [_field_incident("closed", "08:09")], topic="field/in/us")

            async def closed() -> bool:
                now = daemon.clock.now()
                return await asyncio.to_thread(current_incidents, daemon.ledger, now) == []

            await poll_until(closed)


def _field_incident(status: str, at: str) -> bytes:
    day = datetime.now(UTC).date().isoformat()
    return json.dumps(
        {
            "$schema": "borderlink:incident:1",
            "incidentTrackingIdentifier": "DET-FD-0007",
            "incidentTypeCommonRegistryText": "fire.structure",
            "incidentStatusCommonRegistryText": status,
            "location": {
                "latitude": 42.3314,
                "longitude": -83.0458,
                "civicAddressText": "Woodward Ave and Jefferson Ave",
            },
            "units": ["E1"],
            "notesText": "Smoke from a warehouse",
            "agencyIdentifier": "DET-FD",
            "incidentPriority": "high",
            "createdTimestamp": f"{day}T08:01:00+00:00",
            "lastUpdateTimestamp": f"{day}T{at}:00+00:00",
        }
    ).encode()


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}
