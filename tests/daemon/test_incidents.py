"""Inbound incident and radio messages are admitted, deduplicated and routed like alerts."""

from __future__ import annotations

import asyncio
import contextlib
import json
import tomllib
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from cap_schemas.model import AlertKey
from gateway.adapter import Outbound
from gateway.assembly import check_names
from gateway.config import Config, parse_config
from gateway.errors import ConfigError, FrameError
from gateway.ledger import (
    _LOWEST_PRIORITY,
    MESSAGE_PRIORITY,
    Decision,
    EntryState,
    PlannedDelivery,
)
from gateway.messages import (
    MESSAGE_RENDERERS,
    message_key,
    message_record,
    parse_inbound,
)
from gateway.metrics import INPUT_REJECTED
from gateway.model import RadioMessage
from gateway.router import MessageContext, Router, plan_message
from gateway.storage.sqlite import SqliteLedger
from gateway.translate.incident import (
    incident_from_json,
    incident_to_edxl,
    incident_to_json,
    incident_to_text,
)
from hardware.rf_channel import RadioStation, simulation
from tests.daemon.conftest import (
    Proxy,
    daemon_toml,
    load,
    poll_until,
    publish_all,
    running_daemon,
    subscriber,
)
from tests.helpers import Broker
from tests.radio.conftest import build_adapter
from tests.radio.test_end_to_end import sim_options
from tests.translate.test_incident import INCIDENT

# The incident of the translation tests (its text has the characters a radio line escapes).
T0 = INCIDENT.created


def radio(text: str, sender: str = "VE7ABC", number: str | None = None, **kw: Any) -> bytes:
    return RadioMessage(text, sender, "VE7EOC", number, **kw).to_json()


class TestParseInbound:
    """Every form of inbound message is read, and hostile bytes are refused with a reason."""

    def test_radio_message_json(self) -> None:
        got = parse_inbound(radio("Road closed at km 12", number="17"), channel="x")
        assert got.form == "radio"
        assert got.message.text == "Road closed at km 12"
        assert got.message.sender == "VE7ABC"
        assert got.message.number == "17"
        assert got.incident is None
        assert got.kind == "RadioMessage"

    def test_radio_message_carrying_an_incident_line(self) -> None:
        got = parse_inbound(radio(incident_to_text(INCIDENT)))
        assert got.incident is not None
        assert got.incident.incident_id == INCIDENT.incident_id
        assert got.kind == "Incident"

    def test_incident_json_and_edxl(self) -> None:
        doc = parse_inbound(incident_to_json(INCIDENT), channel="eoc/in")
        assert doc.form == "incident"
        assert doc.incident == INCIDENT
        assert doc.message.channel == "eoc/in"
        wrapped = parse_inbound(incident_to_edxl(INCIDENT, sender_id="eoc@example.gov"))
        assert wrapped.form == "edxl"
        assert wrapped.incident == INCIDENT

    def test_plain_text_takes_the_channel(self) -> None:
        got = parse_inbound(b"  Crews en route  \n", channel="field/ca")
        assert got.form == "text"
        assert got.message.text == "Crews en route"
        assert got.message.channel == "field/ca"

    def test_malformed_incident_line_is_kept_as_text(self) -> None:
        got = parse_inbound(b"INC1 ST=active // no id here")
        assert got.incident is None
        assert got.message.text == "INC1 ST=active // no id here"

    @pytest.mark.parametrize(
        ("raw", "says"),
        [
            (b"\xff\xfe bad", "not UTF-8 (byte 0"),
            (b"   ", "empty"),
            (b"ok\x00then", "control characters"),
            (b'{"text": 5}', "no string 'text'"),
            (b'{"text": "   "}', "empty text"),
            (b"{not json", "not JSON"),
            (b"<alert/>", "EDXL-DE"),
            (b'{"$schema": "borderlink:incident:1"}', "incident"),
            (b"x" * (256 * 1024 + 1), "larger than"),
        ],
    )
    def test_hostile_input_is_refused_with_a_reason(self, raw: bytes, says: str) -> None:
        with pytest.raises(FrameError) as caught:
            parse_inbound(raw)
        assert says in str(caught.value)


class TestMessageIdentity:
    """Retries and repeats are one message; a new update or new text is another."""

    def key(self, raw: bytes, at: datetime = T0) -> str:
        inbound = parse_inbound(raw)
        return str(message_key(inbound, source="aprs", received_at=at, raw=raw))

    def test_numbered_retry_is_the_same_message(self) -> None:
        first = self.key(radio("Need water at shelter 3", number="42"))
        retry = self.key(radio("Need water at shelter 3", number="42"), T0 + timedelta(minutes=3))
        assert first == retry

    def test_reused_number_with_other_text_is_another_message(self) -> None:
        # Handhelds restart their numbering at 1 after a power cycle.
        assert self.key(radio("first", number="1")) != self.key(radio("second", number="1"))

    def test_same_sender_and_number_on_two_sources_are_two_messages(self) -> None:
        raw = radio("text", number="5")
        inbound = parse_inbound(raw)
        a = message_key(inbound, source="aprs-ca", received_at=T0, raw=raw)
        b = message_key(inbound, source="aprs-us", received_at=T0, raw=raw)
        assert a != b

    def test_unnumbered_text_is_never_merged(self) -> None:
        raw = radio("10-4")
        assert self.key(raw) != self.key(raw, T0 + timedelta(seconds=1))

    def test_incident_identity_is_id_and_update_time(self) -> None:
        as_json = self.key(incident_to_json(INCIDENT))
        as_line = self.key(radio(incident_to_text(INCIDENT), sender="VE7XYZ"))
        assert as_json == as_line  # the same update heard over MQTT and over the air
        later = replace(INCIDENT, updated=INCIDENT.updated + timedelta(minutes=5))
        assert self.key(incident_to_json(later)) != as_json


class TestRenderers:
    """Each translation of an incident route produces its format, or refuses plain text."""

    def test_message_json_carries_the_incident(self) -> None:
        inbound = parse_inbound(radio(incident_to_text(INCIDENT), number="9"))
        body = json.loads(MESSAGE_RENDERERS["message"](inbound, {}).parts[0])
        assert body["kind"] == "Incident"
        assert body["from"] == "VE7ABC"
        assert body["number"] == "9"
        assert body["incident"]["incidentTrackingIdentifier"] == INCIDENT.incident_id

    def test_text_prefixes_the_sender(self) -> None:
        inbound = parse_inbound(radio("Crews en route"))
        assert MESSAGE_RENDERERS["text"](inbound, {}).parts == (b"VE7ABC: Crews en route",)
        bare = MESSAGE_RENDERERS["text"](inbound, {"sender_prefix": False})
        assert bare.parts == (b"Crews en route",)

    def test_incident_formats_round_trip(self) -> None:
        inbound = parse_inbound(incident_to_json(INCIDENT))
        doc = MESSAGE_RENDERERS["incident"](inbound, {}).parts[0]
        assert incident_from_json(doc) == INCIDENT
        line = MESSAGE_RENDERERS["incident-text"](inbound, {}).parts[0].decode()
        assert line.startswith("INC1 ID=SURREY-FD-2026-0042")
        edxl = MESSAGE_RENDERERS["edxl"](inbound, {"sender_id": "eoc@example.gov"}).parts[0]
        assert parse_inbound(edxl).incident == INCIDENT

    @pytest.mark.parametrize("name", ["incident", "incident-text", "edxl"])
    def test_plain_text_has_no_incident_form(self, name: str) -> None:
        with pytest.raises(FrameError, match="needs an incident report"):
            MESSAGE_RENDERERS[name](parse_inbound(b"just text"), {})


def _config(routes: str, sinks: str = "") -> Config:
    sinks = sinks or (
        '[[sink]]\nname = "eoc"\ntype = "mqtt"\n\n'
        '[[sink]]\nname = "aprs"\ntype = "mqtt"\n\n'
        '[[sink]]\nname = "siren"\ntype = "mqtt"\nlive = true\n\n'
    )
    return parse_config(tomllib.loads(sinks + routes), path=Path("test.toml"))


class TestIncidentRouteConfig:
    """Incident routes are checked when the configuration is read."""

    def test_defaults(self) -> None:
        cfg = _config('[[route]]\nname = "r"\ninput = "incident"\nsinks = ["eoc"]\n')
        route = cfg.routes[0]
        assert route.input == "incident"
        assert route.translation == "message"

    def test_sources_may_name_radio_sinks(self) -> None:
        cfg = _config('[[route]]\ninput = "incident"\nsources = ["aprs"]\nsinks = ["eoc"]\n')
        assert cfg.routes[0].sources == frozenset({"aprs"})
        with pytest.raises(ConfigError, match=r"no source named 'fax'; defined: .*aprs"):
            _config('[[route]]\ninput = "incident"\nsources = ["fax"]\nsinks = ["eoc"]\n')
        with pytest.raises(ConfigError, match="no source named 'aprs'"):
            _config('[[route]]\nsources = ["aprs"]\nsinks = ["eoc"]\n')  # a CAP route

    def test_cap_filters_refused_on_incident_routes(self) -> None:
        with pytest.raises(ConfigError, match=r"route #1\.match.*filters by sources"):
            _config(
                '[[route]]\ninput = "incident"\nsinks = ["eoc"]\n'
                '[route.match]\nseverity = ["Extreme"]\n'
            )

    def test_incident_keys_refused_on_cap_routes(self) -> None:
        with pytest.raises(ConfigError, match=r"route #1\.channels"):
            _config('[[route]]\nsinks = ["eoc"]\nchannels = ["CA-EAST"]\n')

    def test_unknown_input_and_translation(self) -> None:
        with pytest.raises(ConfigError, match=r"route #1\.input"):
            _config('[[route]]\ninput = "fax"\nsinks = ["eoc"]\n')
        config = _config('[[route]]\ninput = "incident"\nsinks = ["eoc"]\ntranslation = "same"\n')
        with pytest.raises(ConfigError, match="for incident input"):
            check_names(config)


class TestPlanMessage:
    """Routing rules: filters, never back to the origin, relayed copies stay put, live holds."""

    ROUTES = (
        '[[route]]\nname = "to-eoc"\ninput = "incident"\nsinks = ["eoc", "aprs"]\n'
        'channels = ["VE7EOC", "field/ca"]\n\n'
        '[[route]]\nname = "siren"\ninput = "incident"\nsinks = ["siren"]\n'
        'senders = ["surrey-fd"]\ntranslation = "incident-text"\nexpire_after = 600\n\n'
        '[[route]]\nname = "cap-only"\nsinks = ["eoc"]\n'
    )

    def plan(self, raw: bytes, source: str = "aprs", channel: str = "") -> dict[str, Any]:
        router = Router(_config(self.ROUTES))
        inbound = parse_inbound(raw, channel=channel)
        key = message_key(inbound, source=source, received_at=T0, raw=raw)
        return {p.sink: p for p in plan_message(router, MessageContext(inbound, source, key, T0))}

    def test_never_back_to_where_it_came_from(self) -> None:
        planned = self.plan(radio("Crews en route"))
        assert set(planned) == {"eoc"}  # "aprs" is the origin
        entry = planned["eoc"]
        assert entry.priority == MESSAGE_PRIORITY
        assert entry.attributes["priority"] == "chatter"
        assert entry.attributes["source"] == "aprs"
        assert entry.attributes["sender"] == "VE7ABC"
        assert entry.route == "to-eoc"

    @pytest.mark.parametrize(
        ("priority", "rank"),
        [("urgent", 6), ("high", 11), ("normal", MESSAGE_PRIORITY), ("low", MESSAGE_PRIORITY + 1)],
    )
    def test_an_incidents_priority_places_it_among_alerts(self, priority: str, rank: int) -> None:
        # 6 is where a Severe and Immediate alert goes, 11 a Moderate and Immediate one.
        raw = incident_to_json(replace(INCIDENT, priority=priority))
        planned = self.plan(raw, "mqtt", channel="field/ca")
        assert set(planned) == {"eoc", "aprs", "siren"}  # the incident's agency: surrey-fd
        assert {p.priority for p in planned.values()} == {rank}

    def test_channel_and_sender_filters(self) -> None:
        assert self.plan(b"hello", source="mqtt", channel="field/us") == {}
        assert set(self.plan(b"hello", source="mqtt", channel="FIELD/CA")) == {"eoc", "aprs"}

    def test_live_sink_is_held_and_expiry_is_set(self) -> None:
        planned = self.plan(incident_to_json(INCIDENT), source="mqtt", channel="x")
        siren = planned["siren"]
        assert siren.held  # unsigned radio traffic never reaches a live output by itself
        assert siren.expires == T0 + timedelta(seconds=600)
        assert siren.parts[0].startswith(b"INC1 ")

    def test_relayed_copy_is_not_routed(self) -> None:
        assert self.plan(radio("copy", relay_id="abc", link="border")) == {}

    def test_cap_routes_do_not_take_messages(self) -> None:
        router = Router(_config(self.ROUTES))
        assert [r.name for r in router.routes] == ["cap-only"]
        assert [r.name for r in router.message_routes] == ["to-eoc", "siren"]


class TestLedgerMessages:
    """Messages are stored with their deliveries at once, deduplicated, never listed as alerts."""

    def admit(self, ledger: SqliteLedger, raw: bytes, sinks: tuple[str, ...] = ("eoc",)) -> Any:
        inbound = parse_inbound(raw)
        key = message_key(inbound, source="aprs", received_at=T0, raw=raw)
        planned = [
            PlannedDelivery(s, "r", (raw,), "application/json", {}, MESSAGE_PRIORITY, None)
            for s in sinks
        ]
        return ledger.admit_message(
            message_record(inbound, key, raw),
            source="aprs",
            received_at=T0,
            plan=lambda _a: planned,
        )

    def test_admitted_once_and_delivered_from_the_outbox(self, tmp_path: Path) -> None:
        with SqliteLedger(tmp_path / "l.db") as ledger:
            raw = radio("Need water at shelter 3", number="42")
            first = self.admit(ledger, raw)
            again = self.admit(ledger, raw)
            assert first.decision is Decision.NEW
            assert again.decision is Decision.DUPLICATE
            due = ledger.due("eoc", T0 + timedelta(seconds=1), limit=10)
            assert [e.key for e in due] == [first.key]
            assert due[0].parts == (raw,)
            stored = ledger.get(first.key)
            assert stored is not None
            assert stored.msg_type == "RadioMessage"
            assert stored.headline == "Need water at shelter 3"
            assert ledger.active(T0) == []
            assert ledger.alerts() == []
            events = [j.event for j in ledger.journal(first.key)]
            assert events == ["enqueued", "admitted", "duplicate"]

    def test_an_urgent_incident_is_sent_before_earlier_traffic(self, tmp_path: Path) -> None:
        with SqliteLedger(tmp_path / "l.db") as ledger:
            chatter = self.admit(ledger, radio("Crews en route", number="7"))
            raw = incident_to_json(replace(INCIDENT, priority="urgent"))
            inbound = parse_inbound(raw)
            key = message_key(inbound, source="mqtt", received_at=T0, raw=raw)
            planned = [PlannedDelivery("eoc", "r", (raw,), "application/json", {}, 6, None)]
            first = ledger.admit_message(
                message_record(inbound, key, raw),
                source="mqtt",
                received_at=T0,
                plan=lambda _a: planned,
            )
            due = ledger.due("eoc", T0 + timedelta(seconds=1), limit=10)
            assert [e.key for e in due] == [first.key, chatter.key]

    def test_forgotten_after_the_dedup_floor(self, tmp_path: Path) -> None:
        with SqliteLedger(tmp_path / "l.db", dedup_floor=timedelta(days=7)) as ledger:
            admission = self.admit(ledger, radio("hello", number="1"), sinks=())
            assert admission.reason == "no delivery planned"
            assert ledger.prune(T0 + timedelta(days=6)) == 0
            assert ledger.prune(T0 + timedelta(days=8)) == 1
            assert ledger.get(admission.key) is None

    def test_queued_behind_every_alert(self) -> None:
        assert MESSAGE_PRIORITY > _LOWEST_PRIORITY


# ------------------------------------------------------------------------- through the daemon

INCIDENT_ROUTES = (
    '[[route]]\nname = "field-to-eoc"\ninput = "incident"\nsinks = ["eoc-json", "ca-radio"]\n\n'
    '[[route]]\nname = "incident-docs"\ninput = "incident"\nsinks = ["eoc-incidents"]\n'
    'translation = "incident"\n'
)
MQTT_SINKS = (
    '[[sink]]\nname = "eoc-json"\ntype = "mqtt"\ntopic = "eoc/messages/{source}"\n'
    "retry_initial = 0.05\nretry_max = 0.5\n\n"
    '[[sink]]\nname = "eoc-incidents"\ntype = "mqtt"\ntopic = "eoc/incidents/{key}"\n'
    "retry_initial = 0.05\nretry_max = 0.5\n\n"
)


class TestDaemonRoutesIncidents:
    """Through the running daemon and a real broker: routed, once, hostile input counted."""

    async def test_mqtt_incident_input(self, tmp_path: Path, mosquitto: Broker) -> None:
        extra = (
            '[[source]]\nname = "field"\ntype = "mqtt"\nkind = "incident"\n'
            'topics = ["field/in/#"]\n'
        )
        sinks = MQTT_SINKS + '[[sink]]\nname = "ca-radio"\ntype = "mqtt"\ntopic = "radio/ca"\n'
        path = daemon_toml(
            tmp_path, mosquitto.url, sinks=sinks, routes=INCIDENT_ROUTES, extra=extra
        )
        config = load(path)
        rejected = INPUT_REJECTED.value(component="daemon", reason="message")
        async with (
            subscriber(mosquitto, ["eoc/#", "radio/#"]) as seen,
            running_daemon(config) as daemon,
        ):
            field = daemon.sources["field"]
            await asyncio.wait_for(field.subscribed.wait(), 10)  # type: ignore[attr-defined]
            doc = incident_to_json(INCIDENT)
            await publish_all(
                mosquitto, [b"\xff\xfe not text", doc, doc, b"Crews en route"], topic="field/in/ca"
            )
            await seen.wait_for(
                lambda: len(seen.on("eoc/messages/")) == 2 and len(seen.on("eoc/incidents/")) == 1
            )
            await asyncio.sleep(0.5)  # a duplicate delivery would have arrived by now
            messages = [json.loads(m.payload) for m in seen.on("eoc/messages/field")]
            assert sorted(m["kind"] for m in messages) == ["Incident", "RadioMessage"]
            assert {m["channel"] for m in messages} == {"field/in/ca"}
            incidents = seen.on("eoc/incidents/")
            assert len(incidents) == 1
            assert incident_from_json(incidents[0].payload) == INCIDENT
            assert incidents[0].delivery_id  # the idempotency key a receiver dedups on
            assert len(seen.on("radio/ca")) == 2  # the radio is a sink here, not the origin
            assert INPUT_REJECTED.value(component="daemon", reason="message") == rejected + 1
            assert [r.reason for r in daemon.ledger.invalid_records()] == [
                "message: message is not UTF-8 (byte 0: b'\\xff')"
            ]

    async def test_radio_traffic_is_routed_and_never_returns(
        self, tmp_path: Path, mosquitto: Broker
    ) -> None:
        async with simulation(sim_options()) as sim:  # the radio tests' two border channels
            path, handheld = _ca_radio_daemon(tmp_path, mosquitto, sim, sim.url("gw-ca"))
            async with (
                subscriber(mosquitto, ["eoc/#"]) as seen,
                running_daemon(load(path)) as daemon,
            ):
                await poll_until(lambda: _true(daemon.supervisor.running.get("ca-radio", False)))
                handheld.type_text(incident_to_text(INCIDENT))
                handheld.type_text("Road closed at the Ambassador Bridge")
                await seen.wait_for(
                    lambda: (
                        len(seen.on("eoc/messages/ca-radio")) == 2
                        and len(seen.on("eoc/incidents/")) == 1
                    )
                )
                await asyncio.sleep(0.5)
                bodies = [json.loads(m.payload) for m in seen.on("eoc/messages/ca-radio")]
                assert {b["from"] for b in bodies} == {"2001"}
                assert {b["channel"] for b in bodies} == {"CA-EAST"}
                assert any(b["text"] == "Road closed at the Ambassador Bridge" for b in bodies)
                assert incident_from_json(seen.on("eoc/incidents/")[0].payload) == INCIDENT
                _ok, lines = daemon.health()
                radio = next(line for line in lines if line["source"] == "ca-radio")
                assert radio["running"]
                assert radio["healthy"]
                assert not radio["required"]
                # Nothing went back on the air to the talkgroup it came from.
                assert handheld.received == []
                entries = [
                    e for stored in _messages(daemon) for e in daemon.ledger.deliveries(stored)
                ]
                assert {e.sink for e in entries} == {"eoc-json", "eoc-incidents"}
                assert all(e.state is EntryState.DELIVERED for e in entries)


class TestRadioLinkLost:
    """A radio sink whose port drops is reopened without waiting for a delivery, and what it
    hears afterwards is routed."""

    async def test_inbound_resumes_after_the_link_returns(
        self, tmp_path: Path, mosquitto: Broker
    ) -> None:
        async with simulation(sim_options()) as sim:
            host, port = sim.url("gw-ca").removeprefix("socket://").rsplit(":", 1)
            proxy = Proxy(host, int(port))
            await proxy.open()
            url = f"socket://127.0.0.1:{proxy.port}"
            path, handheld = _ca_radio_daemon(tmp_path, mosquitto, sim, url)
            async with (
                subscriber(mosquitto, ["eoc/#"]) as seen,
                running_daemon(load(path)) as daemon,
            ):
                await poll_until(lambda: _true(daemon.supervisor.running.get("ca-radio", False)))
                handheld.type_text("before the outage")
                await seen.wait_for(lambda: len(seen.on("eoc/messages/ca-radio")) == 1)
                restarts = daemon.supervisor.failures.get("ca-radio", 0)
                await proxy.cut()
                await poll_until(
                    lambda: _true(daemon.supervisor.failures.get("ca-radio", 0) > restarts)
                )
                await proxy.open()
                await poll_until(lambda: _true(daemon.supervisor.running.get("ca-radio", False)))
                for _ in range(100):  # the radio reconnects on its own, no alert needed
                    handheld.type_text("after the outage")
                    with contextlib.suppress(AssertionError):
                        await seen.wait_for(
                            lambda: len(seen.on("eoc/messages/ca-radio")) >= 2, within=0.3
                        )
                        break
                texts = [json.loads(m.payload)["text"] for m in seen.on("eoc/messages/ca-radio")]
                assert texts[0] == "before the outage"
                assert texts[1] == "after the outage"
            await proxy.cut()


def _ca_radio_daemon(
    tmp_path: Path, mosquitto: Broker, sim: Any, port: str
) -> tuple[Path, RadioStation]:
    """A daemon configuration with the Canadian gateway radio on ``port`` as a sink (its
    traffic routed by INCIDENT_ROUTES), and the Canadian handheld that talks to it."""
    sinks = MQTT_SINKS + (
        f'[[sink]]\nname = "ca-radio"\ntype = "textmodem"\nport = "{port}"\n'
        'talkgroups = ["CA-EAST"]\nlisten = ["CA-EAST"]\nline_rate = 9600\n'
    )
    handheld = sim.stations["ca-handheld"]
    assert isinstance(handheld, RadioStation)
    return daemon_toml(tmp_path, mosquitto.url, sinks=sinks, routes=INCIDENT_ROUTES), handheld


async def _true(value: bool) -> bool:
    return value


def _messages(daemon: Any) -> list[Any]:
    with daemon.ledger._read() as conn:
        rows = conn.execute(
            "SELECT sender, identifier, sent FROM alerts WHERE kind = 'incident'"
        ).fetchall()
    return [AlertKey(*row) for row in rows]


class TestAprsThroughTheDaemon:
    """An APRS message to the gateway is acknowledged on the air only once it is stored."""

    async def test_directed_message_routed_once_and_acked_after_storage(
        self, tmp_path: Path, mosquitto: Broker
    ) -> None:
        aprs_channel = {
            "channels": [{"name": "aprs", "line_rate": 9600}],
            "stations": [
                {"name": "gw-tnc", "kind": "tnc", "channel": "aprs", "tcp": "127.0.0.1:0"},
                {"name": "field-tnc", "kind": "tnc", "channel": "aprs", "tcp": "127.0.0.1:0"},
            ],
        }
        async with simulation(aprs_channel) as sim:
            sinks = MQTT_SINKS + (
                f'[[sink]]\nname = "aprs"\ntype = "kiss"\nport = "{sim.url("gw-tnc")}"\n'
                'callsign = "VE3BDR-10"\n'
            )
            routes = (
                '[[route]]\nname = "aprs-in"\ninput = "incident"\nsinks = ["eoc-json"]\n'
                'channels = ["VE3BDR-10"]\n'
            )
            path = daemon_toml(tmp_path, mosquitto.url, sinks=sinks, routes=routes)
            field = build_adapter(
                "kiss",
                "field",
                port=sim.url("field-tnc"),
                callsign="VA3FLD-5",
                mode="message",
                addressees=["VE3BDR-10"],
                message_retry_initial=0.5,
            )
            async with (
                subscriber(mosquitto, ["eoc/#"]) as seen,
                running_daemon(load(path)) as daemon,
                field,
            ):
                await poll_until(lambda: _true(daemon.supervisor.running.get("aprs", False)))
                # send() returns when VE3BDR-10 acknowledged, i.e. after the daemon stored it.
                await asyncio.wait_for(field.send(outbound("Need sandbags at Pier 4")), 20)
                stored = _messages(daemon)
                assert len(stored) == 1
                assert stored[0].sender == "radio:aprs:VA3FLD-5"
                await seen.wait_for(lambda: bool(seen.on("eoc/messages/aprs")))
                await asyncio.sleep(0.5)  # a second delivery would have arrived by now
                bodies = [json.loads(m.payload) for m in seen.on("eoc/messages/aprs")]
                assert len(bodies) == 1
                assert bodies[0]["text"] == "Need sandbags at Pier 4"
                assert bodies[0]["from"] == "VA3FLD-5"
                assert bodies[0]["number"]


def outbound(text: str) -> Outbound:
    return Outbound(None, "field", (text.encode(),), "text/plain", {})
