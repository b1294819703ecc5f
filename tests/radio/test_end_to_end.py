"""End to end on the simulated channels: a CAP alert goes out as APRS bulletins, pages and
data-radio text on the right talkgroups; a message typed on a Canadian radio reaches the linked
US talkgroup and MQTT once and never loops back."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import Callable
from typing import Any

import aiomqtt

from adapters.kiss import aprs, ax25
from cap_schemas.parse import parse_alert
from gateway.adapter import Outbound
from gateway.links import LINK_DROPPED, LINK_RELAYS, LinkManager
from gateway.model import RadioMessage
from gateway.plaintext import clean
from gateway.translate.text import RADIO_PROFILES, render_radio_text
from hardware.rf_channel import RadioStation
from tests.helpers import Broker
from tests.radio.conftest import SimFactory, build_adapter

ALERT = b"""<?xml version="1.0" encoding="UTF-8"?>
<alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">
  <identifier>urn:oid:2.49.0.1.124.e2e.radio.1</identifier>
  <sender>cap-pac@canada.ca</sender>
  <sent>2026-04-12T14:00:00-00:00</sent>
  <status>Actual</status>
  <msgType>Alert</msgType>
  <scope>Public</scope>
  <info>
    <language>en-CA</language>
    <category>Met</category>
    <event>tornado</event>
    <urgency>Immediate</urgency>
    <severity>Extreme</severity>
    <certainty>Observed</certainty>
    <expires>2026-04-12T16:00:00-00:00</expires>
    <senderName>Environment Canada</senderName>
    <headline>tornado warning in effect</headline>
    <description>A tornado is on the ground near Windsor, moving northeast at 40 km/h.
      Take shelter now in a basement or an interior room on the lowest floor.</description>
    <area><areaDesc>Windsor - Essex - Chatham-Kent</areaDesc></area>
  </info>
</alert>
"""


async def eventually(predicate: Callable[[], bool], within: float = 10.0) -> None:
    for _ in range(int(within / 0.05)):
        if predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition not met in time")


def sim_options() -> dict[str, Any]:
    return {
        "channels": [
            {"name": "ca", "line_rate": 9600},
            {"name": "us", "line_rate": 9600},
            {"name": "aprs", "line_rate": 9600},
            {"name": "paging", "line_rate": 9600},
        ],
        "stations": [
            {
                "name": "gw-ca",
                "kind": "radio",
                "channel": "ca",
                "tcp": "127.0.0.1:0",
                "unit": "9001",
                "talkgroups": ["CA-EAST"],
            },
            {
                "name": "ca-handheld",
                "kind": "console",
                "channel": "ca",
                "unit": "2001",
                "talkgroups": ["CA-EAST"],
            },
            {
                "name": "ca-west",
                "kind": "radio",
                "channel": "ca",
                "unit": "2002",
                "talkgroups": ["CA-WEST"],
            },
            {
                "name": "gw-us",
                "kind": "radio",
                "channel": "us",
                "tcp": "127.0.0.1:0",
                "unit": "9101",
                "talkgroups": ["US-NORTH"],
            },
            {
                "name": "us-handheld",
                "kind": "console",
                "channel": "us",
                "unit": "3001",
                "talkgroups": ["US-NORTH"],
            },
            {"name": "gw-tnc", "kind": "tnc", "channel": "aprs", "tcp": "127.0.0.1:0"},
            {"name": "igate", "kind": "tnc", "channel": "aprs"},
            {"name": "terminal", "kind": "tap", "channel": "paging", "tcp": "127.0.0.1:0"},
            {"name": "pager-eoc", "kind": "pager", "channel": "paging", "pager_ids": ["5551"]},
        ],
    }


def texts(station: Any) -> list[str]:
    return [t.payload.decode() for t in station.received]


class TestAlertToRadios:
    """One CAP alert, rendered per radio, reaches APRS, pagers and the right talkgroup only."""

    async def test_cap_alert_on_every_radio(self, rf: SimFactory) -> None:
        alert = parse_alert(ALERT)
        bulletin = render_radio_text(alert, budget=67, ascii_only=True, forbidden="|~")
        page = render_radio_text(alert, budget=RADIO_PROFILES["pager"].budget, ascii_only=True)
        dmr = render_radio_text(alert, budget=140)
        async with rf(sim_options()) as sim:
            kiss = build_adapter(
                "kiss",
                "aprs",
                port=sim.url("gw-tnc"),
                callsign="VE3BDR-10",
                group="WXCA",
                bulletin_id="1",
            )
            pager = build_adapter("tap", "pager", port=sim.url("terminal"), pager_ids=["5551"])
            ca = build_adapter(
                "textmodem", "ca-radio", port=sim.url("gw-ca"), talkgroups=["CA-EAST"]
            )
            async with kiss, pager, ca:
                for sink, rendered in ((kiss, bulletin), (pager, page), (ca, dmr)):
                    parts = tuple(p.encode() for p in rendered.parts)
                    await sink.send(Outbound(None, sink.name, parts, "text/plain"))
                igate, eoc, hh = (sim.stations[n] for n in ("igate", "pager-eoc", "ca-handheld"))
                await igate.wait_until(lambda: len(igate.received) == len(bulletin.parts))
                await eoc.wait_until(lambda: len(eoc.received) == len(page.parts))
                await hh.wait_until(lambda: len(hh.received) == len(dmr.parts))
            packets = [aprs.decode(ax25.Frame.from_bytes(t.payload).info) for t in igate.received]
            assert packets == [
                aprs.Bulletin(str(i + 1), part, "WXCA") for i, part in enumerate(bulletin.parts)
            ]
            assert bulletin.parts[0].startswith("EMERG")
            assert texts(eoc) == list(page.parts)
            assert texts(hh) == [clean(p) for p in dmr.parts]
            # Other talkgroups and the US side heard nothing of it.
            assert sim.stations["ca-west"].received == []
            assert sim.stations["us-handheld"].received == []


class TestLinkedTalkgroups:
    """A message typed in Canada appears on the linked US talkgroup and on MQTT, once."""

    async def test_ca_to_us_and_mqtt_once_without_loops(
        self, rf: SimFactory, mosquitto: Broker
    ) -> None:
        topic = "borderlink/links/border-east"
        async with rf(sim_options()) as sim:
            ca = build_adapter(
                "textmodem",
                "ca-radio",
                port=sim.url("gw-ca"),
                talkgroups=["CA-EAST"],
                listen=["CA-EAST"],
                line_rate=9600,
            )
            us = build_adapter(
                "textmodem",
                "us-radio",
                port=sim.url("gw-us"),
                talkgroups=["US-NORTH"],
                listen=["US-NORTH"],
                line_rate=9600,
            )
            mqtt = build_adapter(
                "mqtt",
                "mqtt-links",
                url=mosquitto.url,
                client_id="links",
                topics=[topic],
                topic=topic,
            )
            links = [
                {
                    "name": "border-east",
                    "endpoints": [
                        "ca-radio#CA-EAST",
                        "us-radio#US-NORTH",
                        {"adapter": "mqtt-links", "channel": topic, "format": "json"},
                    ],
                }
            ]
            seen: list[bytes] = []
            async with (
                ca,
                us,
                mqtt,
                aiomqtt.Client("127.0.0.1", mosquitto.port, identifier="observer") as observer,
            ):
                await observer.subscribe(topic, qos=1)

                async def collect() -> None:
                    async for message in observer.messages:
                        assert isinstance(message.payload, bytes)
                        seen.append(message.payload)

                manager = LinkManager.from_config(
                    links, adapters={"ca-radio": ca, "us-radio": us, "mqtt-links": mqtt}
                )
                async with asyncio.TaskGroup() as tg:
                    run = tg.create_task(manager.run())
                    watcher = tg.create_task(collect())
                    ca_hh, us_hh = sim.stations["ca-handheld"], sim.stations["us-handheld"]
                    assert isinstance(ca_hh, RadioStation)

                    # 1. Someone on MQTT writes plain text (repeated until the link's
                    #    subscription is up; a repeat of the same text is not relayed twice).
                    for _ in range(40):
                        await observer.publish(topic, b"Crews en route to km 12", qos=1)
                        with contextlib.suppress(AssertionError):
                            await eventually(lambda: bool(us_hh.received), within=0.5)
                            break
                    await eventually(lambda: len(ca_hh.received) == 1)
                    assert texts(us_hh) == ["Crews en route to km 12"]

                    # 2. A Canadian types a message on CA-EAST.
                    echoes = LINK_DROPPED.value(link="border-east", reason="already_relayed")
                    relays = LINK_RELAYS.value(
                        link="border-east", source="ca-radio#CA-EAST", target="us-radio#US-NORTH"
                    )
                    ca_hh.type_text("Road closed at the Ambassador Bridge")
                    await eventually(lambda: len(us_hh.received) == 2)
                    await eventually(lambda: any(b"Ambassador" in p for p in seen))
                    # Our own MQTT copy comes back on the subscription and is dropped.
                    await eventually(
                        lambda: (
                            LINK_DROPPED.value(link="border-east", reason="already_relayed")
                            == echoes + 1
                        )
                    )
                    await asyncio.sleep(0.5)  # anything looping would have arrived by now
                    run.cancel()
                    watcher.cancel()

            assert texts(us_hh)[1] == "2001: Road closed at the Ambassador Bridge"
            assert len(us_hh.received) == 2
            # Nothing returned to Canada: the handheld heard only the MQTT-originated message.
            assert texts(ca_hh) == ["Crews en route to km 12"]
            assert (
                LINK_RELAYS.value(
                    link="border-east", source="ca-radio#CA-EAST", target="us-radio#US-NORTH"
                )
                == relays + 1
            )
            relayed = [json.loads(p) for p in seen if b"relay_id" in p]
            assert [(m["text"], m["from"], m["channel"]) for m in relayed] == [
                ("Road closed at the Ambassador Bridge", "2001", "ca-radio#CA-EAST")
            ]
            assert RadioMessage.from_json(seen[-1]).link == "border-east"
