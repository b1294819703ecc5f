"""Two gateways linked by feeds alone: one's partner Atom feed read by the other's ``atom``
source, signatures checked against the partner's pinned CA; and the feed reader's parser
against hostile and odd feeds."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest

from adapters.atom.codec import parse_feed
from adapters.feeds.base import FeedError
from cap_schemas.model import AlertKey
from cap_schemas.signature import sign
from tests.daemon.conftest import CapFactory, daemon_toml, load, poll_until, running_daemon
from tests.helpers import Broker, free_port
from tests.signature.conftest import pki
from tests.signature.pki import Pki, key_pem, pem

__all__ = ["pki"]  # the signature suite's fixture, used here

MACHINE = "test-token-0123456789abcdef"
PARTNER = "partner-token-0123456789abcdef"


class TestLinkedByFeeds:
    async def test_the_partner_admits_our_signed_alert_verified(
        self, mosquitto: Broker, pki: Pki, tmp_path: Path
    ) -> None:
        ours, theirs = tmp_path / "ours", tmp_path / "theirs"
        ours.mkdir()
        theirs.mkdir()
        (ours / "partner").write_text(PARTNER + "\n", encoding="utf-8")
        port = free_port()
        sinks = '[[sink]]\nname = "out"\ntype = "file"\npath = "out"\n'
        routes = '[[route]]\nname = "all"\nsinks = ["out"]\n'
        a = daemon_toml(ours, mosquitto.url, sinks=sinks, routes=routes, http_port=port,
                        extra='[[partner]]\nname = "them"\ntoken_file = "partner"\n')  # fmt: skip
        (theirs / "ca.pem").write_bytes(pem(pki.ca))
        (theirs / "partner").write_text(PARTNER + "\n", encoding="utf-8")
        source = (
            '[[source]]\nname = "partner"\ntype = "atom"\n'
            f'url = "http://127.0.0.1:{port}/feeds/alerts.atom"\ntoken_file = "partner"\n'
            f'interval = 5\nrequire_signature = true\ntrust_anchors = ["{theirs / "ca.pem"}"]\n'
        )
        b = daemon_toml(theirs, mosquitto.url, sinks=sinks, routes=routes, extra=source)
        signed = sign(
            CapFactory(sender="eoc@windsor.example.ca")(event="Hazmat", severity="Severe"),
            key_pem=key_pem(pki.signer_key), cert_pem=pem(pki.signer),
        )  # fmt: skip
        unsigned = CapFactory(sender="eoc@windsor.example.ca")(event="Unsigned", severity="Minor")
        async with running_daemon(load(a)) as us, aiohttp.ClientSession() as http:
            keys = []
            for body in (signed, unsigned):
                async with http.post(
                    f"http://127.0.0.1:{port}/api/v1/alerts", data=body,
                    headers={"Authorization": f"Bearer {MACHINE}"},
                ) as resp:  # fmt: skip
                    assert resp.status == 202
                    keys.append(AlertKey.from_reference((await resp.json())["key"]))
            async with running_daemon(load(b), wait_input=False) as them:

                async def admitted() -> bool:
                    return await asyncio.to_thread(them.ledger.get, keys[0]) is not None

                await poll_until(admitted, within=20)
                stored = await asyncio.to_thread(them.ledger.get, keys[0])
                assert stored is not None
                assert stored.raw == signed  # byte for byte across the link
                assert stored.provenance is not None
                assert stored.provenance.signature == "valid"
                assert stored.provenance.level == "verified"
                # The unsigned one is refused there: the source requires a signature.
                assert await asyncio.to_thread(them.ledger.get, keys[1]) is None
                # We cancel it: the Cancel (never in force itself) is in our feed, and the
                # partner, linked by the feed alone, sees the alert cancelled.
                cancel = sign(
                    CapFactory(sender="eoc@windsor.example.ca")(
                        event="Hazmat", severity="Severe", msg_type="Cancel",
                        references=[str(keys[0])],
                    ),
                    key_pem=key_pem(pki.signer_key), cert_pem=pem(pki.signer),
                )  # fmt: skip
                async with http.post(
                    f"http://127.0.0.1:{port}/api/v1/alerts", data=cancel,
                    headers={"Authorization": f"Bearer {MACHINE}"},
                ) as resp:  # fmt: skip
                    assert resp.status == 202

                async def cancelled() -> bool:
                    stored = await asyncio.to_thread(them.ledger.get, keys[0])
                    return stored is not None and stored.status.value == "cancelled"

                await poll_until(cancelled, within=30)
            assert us.ledger.get(keys[0]) is not None


FEED = b"""<?xml version="1.0" encoding="UTF-8"?>
<feed xmlns="http://www.w3.org/2005/Atom">
  <id>urn:x</id><title>t</title><updated>2026-12-04T00:00:00Z</updated>
  <entry><id>urn:a</id><updated>2026-12-04T00:00:00Z</updated><title>a</title>
    <link rel="enclosure" type="application/common-alerting-protocol+xml" href="alerts/a.cap"/>
  </entry>
  <entry><id>urn:b</id><updated>2026-12-04T00:00:00Z</updated><title>b</title>
    <content type="application/cap+xml">INLINE</content>
  </entry>
  <entry><id>urn:c</id><updated>2026-12-04T00:00:00Z</updated><title>no cap</title>
    <link rel="alternate" type="text/html" href="/c.html"/>
  </entry>
</feed>"""


class TestFeedParser:
    def test_enclosures_inline_alerts_and_skips(self) -> None:
        inline = CapFactory()(sent=datetime.now(UTC) - timedelta(minutes=1))
        body = inline.split(b"?>", 1)[1]
        feed = FEED.replace(b"INLINE", body)
        entries, skipped = parse_feed(feed, base_url="http://partner:8080/feeds/alerts.atom")
        assert skipped == 1
        assert [e.id for e in entries] == ["urn:a", "urn:b"]
        assert entries[0].cap_url == "http://partner:8080/feeds/alerts/a.cap"
        assert entries[1].inline is not None
        assert b"<identifier>" in entries[1].inline

    @pytest.mark.parametrize(
        ("doc", "reason"),
        [
            (b'<!DOCTYPE feed [<!ENTITY x "y">]><feed xmlns="http://www.w3.org/2005/Atom"/>',
             "hostile"),
            (b"<rss><channel/></rss>", "not_atom"),
            (b"<feed", "malformed"),
        ],
    )  # fmt: skip
    def test_hostile_and_wrong_feeds_are_refused(self, doc: bytes, reason: str) -> None:
        with pytest.raises(FeedError) as caught:
            parse_feed(doc, base_url="http://x/")
        assert caught.value.reason == reason
