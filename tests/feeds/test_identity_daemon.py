"""One identity across feeds, through the daemon: the IPAWS-OPEN and api.weather.gov pollers
bring the same NWS warnings (each path's identifiers); each sink gets each warning once, and a
later copy signed by a trusted signer goes out as an update."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote

import aiohttp

from cap_schemas.model import AlertKey
from cap_schemas.parse import parse_alert
from cap_schemas.signature import sign
from gateway.ledger import AlertStatus, Decision
from hardware.feed_alerts import FEED_ALERTS, make_live
from hardware.sim_feeds import IpawsSimulator, NwsSimulator
from tests.daemon.conftest import daemon_toml, load, poll_until, running_daemon, subscriber
from tests.helpers import Broker
from tests.identity_pairs import api_weather_gov_form, ipaws_form
from tests.signature.pki import build_pki, key_pem, pem

TOKEN = "test-token-0123456789abcdef"
ROUTES = '[[route]]\nname = "all-cap"\nsinks = ["out-cap"]\n'


def _sources(ipaws: IpawsSimulator, nws: NwsSimulator, state_dir: Path) -> str:
    return (
        '[[source]]\nname = "ipaws"\ntype = "ipaws"\n'
        f'base_url = "{ipaws.rest_url}"\nfeeds = ["public"]\nstate_dir = "{state_dir}"\n\n'
        '[[source]]\nname = "nws"\ntype = "nws"\n'
        f'base_url = "{nws.base_url}"\nareas = ["ME", "VT"]\n'
        'contact = "test@borderlink.invalid"\n'
    )


def _key(raw: bytes) -> AlertKey:
    return parse_alert(raw).key


class TestTwoFeedsOneWarning:
    """The finding of issue #13 through the daemon's own routes and sinks."""

    async def test_pair_delivered_once_and_better_signed_copy_as_update(
        self, mosquitto: Broker, tmp_path: Path
    ) -> None:
        now = datetime.now(UTC)
        # A: a tornado warning by both feeds, identifiers as each path writes them.
        tornado = (FEED_ALERTS / "ipaws" / "nws-tornado-warning-me.xml").read_bytes()
        a_ipaws = make_live(tornado, now=now).raw
        a_api = api_weather_gov_form(a_ipaws)
        # B: a winter storm warning by api.weather.gov; later its IPAWS copy, signed.
        storm = (FEED_ALERTS / "nws" / "nws-winter-storm-warning-vt.xml").read_bytes()
        b_api = make_live(storm, now=now).raw
        pki = build_pki()
        b_signed = sign(
            ipaws_form(b_api), key_pem=key_pem(pki.signer_key), cert_pem=pem(pki.signer)
        )
        ca = tmp_path / "ca.pem"
        ca.write_bytes(pem(pki.ca))
        keys = {
            name: _key(raw)
            for name, raw in (
                ("a_ipaws", a_ipaws),
                ("a_api", a_api),
                ("b_api", b_api),
                ("b_ipaws", b_signed),
            )
        }
        async with (
            IpawsSimulator([a_ipaws], live=False) as ipaws,
            NwsSimulator([a_api, b_api], live=False) as nws,
            subscriber(mosquitto, ["out/cap/#"]) as out,
        ):
            path = daemon_toml(
                tmp_path, mosquitto.url, routes=ROUTES, extra=_sources(ipaws, nws, tmp_path)
            )
            text = path.read_text(encoding="utf-8").replace(
                'token_file = "token"\n', f'token_file = "token"\ntrust_anchors = ["{ca}"]\n'
            )
            path.write_text(text, encoding="utf-8")
            async with running_daemon(load(path)) as daemon, aiohttp.ClientSession() as http:
                ledger = daemon.ledger

                async def admitted() -> bool:
                    return all(
                        ledger.get(keys[n]) is not None for n in ("a_ipaws", "a_api", "b_api")
                    )

                await poll_until(admitted)
                a = [ledger.get(keys["a_ipaws"]), ledger.get(keys["a_api"])]
                assert all(s is not None for s in a)
                first, copy = sorted(
                    (s for s in a if s is not None), key=lambda s: s.decision is Decision.COPY
                )
                assert copy.decision is Decision.COPY
                assert copy.event_rule == "vtec"
                assert copy.event_key == str(first.key)
                assert ledger.deliveries(copy.key) == []  # never queued for any sink
                await out.wait_for(
                    lambda: {str(first.key), str(keys["b_api"])} <= set(out.keys("out/cap/"))
                )
                got = out.keys("out/cap/")
                assert len(got[str(first.key)]) == 1
                assert str(copy.key) not in got

                # The signed IPAWS copy of B, later, by the HTTP door that verifies signatures.
                async with http.post(
                    f"http://127.0.0.1:{daemon.http_port}/api/v1/alerts",
                    data=b_signed,
                    headers={"Authorization": f"Bearer {TOKEN}"},
                ) as resp:
                    assert resp.status == 202, await resp.text()
                    body = await resp.json()
                assert body["decision"] == "update"
                assert body["trust"]["level"] == "verified"
                assert body["superseded"] == [str(keys["b_api"])]
                assert body["identity"] == {"event": str(keys["b_api"]), "rule": "vtec"}
                await out.wait_for(lambda: str(keys["b_ipaws"]) in out.keys("out/cap/"))
                got = out.keys("out/cap/")
                assert len(got[str(keys["b_api"])]) == 1
                assert len(got[str(keys["b_ipaws"])]) == 1
                replaced = ledger.get(keys["b_api"])
                assert replaced is not None
                assert replaced.status is AlertStatus.SUPERSEDED

                # The API shows each alert's event and rule, and the metrics count them.
                url = f"http://127.0.0.1:{daemon.http_port}/api/v1/alerts/"
                async with http.get(url + quote(str(copy.key), safe="")) as resp:
                    shown = await resp.json()
                assert shown["decision"] == "copy"
                assert shown["identity"]["event"] == str(first.key)
                assert shown["identity"]["rule"] == "vtec"
                assert [c["key"] for c in shown["identity"]["copies"]] == [str(first.key)]
                async with http.get(f"http://127.0.0.1:{daemon.http_port}/metrics") as resp:
                    metrics = await resp.text()
                assert 'borderlink_identity_matches_total{rule="vtec",decision="copy"}' in metrics
                assert 'borderlink_identity_matches_total{rule="vtec",decision="update"}' in metrics
