"""Trust at the doors: an anonymous cancel cannot withdraw a signed alert, anonymous input
never reaches a live sink, and every admitted alert says where it came from."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import aiohttp
import pytest

from cap_schemas.model import AlertKey
from cap_schemas.signature import sign
from gateway.ledger import AlertStatus, Decision, EntryState
from tests.daemon.conftest import (
    CapFactory,
    daemon_toml,
    load,
    poll_until,
    publish_all,
    running_daemon,
)
from tests.helpers import Broker
from tests.signature.pki import Pki, build_pki, key_pem, pem

TOKEN = "test-token-0123456789abcdef"
AUTH = {"Authorization": f"Bearer {TOKEN}"}

SINKS = (
    '[[sink]]\nname = "feed"\ntype = "mqtt"\ntopic = "out/feed/{key}"\n'
    "retry_initial = 0.05\nretry_max = 0.5\n\n"
    '[[sink]]\nname = "transmitter"\ntype = "mqtt"\nlive = true\n'
    'topic = "out/air/{key}"\nretry_initial = 0.05\nretry_max = 0.5\n'
)
ROUTES = '[[route]]\nname = "all"\nsinks = ["feed", "transmitter"]\n'


@pytest.fixture(scope="module")
def pki() -> Pki:
    return build_pki()


def _config(tmp_path: Path, broker: Broker, pki: Pki) -> Path:
    ca = tmp_path / "ca.pem"
    ca.write_bytes(pem(pki.ca))
    path = daemon_toml(tmp_path, broker.url, sinks=SINKS, routes=ROUTES)
    text = path.read_text(encoding="utf-8").replace(
        'token_file = "token"\n',
        f'token_file = "token"\nrequire_signature = true\ntrust_anchors = ["{ca}"]\n',
    )
    path.write_text(text, encoding="utf-8")
    return path


class TestProvenanceAtTheDoors:
    """The finding: an anonymous MQTT Cancel of an alert admitted signed over HTTP used to
    cancel it and supersede its delivery to a live sink."""

    async def test_anonymous_cancel_of_signed_alert_waits_for_an_operator(
        self, mosquitto: Broker, tmp_path: Path, cap: CapFactory, pki: Pki
    ) -> None:
        config = load(_config(tmp_path, mosquitto, pki))
        raw = cap(severity="Extreme", urgency="Immediate")
        signed = sign(raw, key_pem=key_pem(pki.signer_key), cert_pem=pem(pki.signer))
        key = CapFactory.key_of(raw)
        async with running_daemon(config) as daemon, aiohttp.ClientSession() as http:
            base = f"http://127.0.0.1:{daemon.http_port}"
            async with http.post(f"{base}/api/v1/alerts", data=signed, headers=AUTH) as resp:
                assert resp.status == 202, await resp.text()
                body = await resp.json()
            assert body["signature"] == "valid"
            assert body["trust"]["level"] == "verified"
            # The anonymous cancel, published with QoS 1 and no credentials.
            cancel = cap(msg_type="Cancel", references=[key])
            cancel_key = CapFactory.key_of(cancel)
            await publish_all(mosquitto, [cancel])

            async def admitted() -> bool:
                return daemon.ledger.get(_key(cancel_key)) is not None

            await poll_until(admitted)
            stored_cancel = daemon.ledger.get(_key(cancel_key))
            assert stored_cancel is not None
            assert stored_cancel.decision is Decision.HELD
            assert stored_cancel.reason.startswith("provenance: ")
            original = daemon.ledger.get(_key(key))
            assert original is not None
            assert original.status is AlertStatus.ACTIVE

            # The transmitter gets the real alert, never a withdrawn one.
            async def aired() -> bool:
                entries = daemon.ledger.deliveries(_key(key))
                return any(
                    e.sink == "transmitter" and e.state is EntryState.DELIVERED for e in entries
                )

            await poll_until(aired)
            # The cancel never reaches the live sink (anonymous) and waits elsewhere.
            cancel_entries = {e.sink: e for e in daemon.ledger.deliveries(_key(cancel_key))}
            assert set(cancel_entries) == {"feed"}
            assert cancel_entries["feed"].state is EntryState.HELD

            # The API says where each came from.
            async with http.get(f"{base}/api/v1/alerts/{_quoted(key)}") as resp:
                detail = await resp.json()
            assert detail["trust"]["signature"] == "valid"
            assert detail["trust"]["door"] == "verified"
            async with http.get(f"{base}/api/v1/alerts/{_quoted(cancel_key)}") as resp:
                detail = await resp.json()
            assert detail["trust"]["level"] == "anonymous"
            assert detail["withdrawals_wait_for_approval"] is True

            # An operator who approves the cancel makes it take effect.
            entry = cancel_entries["feed"]
            async with http.post(
                f"{base}/api/v1/holds/{entry.id}/approve", headers=AUTH
            ) as resp:
                assert resp.status == 200
            original = daemon.ledger.get(_key(key))
            assert original is not None
            assert original.status is AlertStatus.CANCELLED


def _key(text: str) -> AlertKey:
    return AlertKey.from_reference(text)


def _quoted(text: str) -> str:
    return quote(text, safe="")
