"""End to end over a real Mosquitto: CAP in on borderlink/in/cap, deliveries out per sink."""

from __future__ import annotations

import asyncio
from pathlib import Path

from cap_schemas.model import AlertKey
from gateway.ledger import EntryState
from gateway.metrics import INPUT_REJECTED
from gateway.summary import topic_key
from tests.daemon.conftest import (
    CapFactory,
    daemon_toml,
    load,
    poll_until,
    publish_all,
    running_daemon,
    subscriber,
    summary_of,
)
from tests.helpers import Broker, free_port


class TestExactlyOncePerSink:
    """Distinct alerts come out once per matching sink; repeats, updates, cancels behave."""

    async def test_distinct_alerts_once_per_matching_sink(
        self, mosquitto: Broker, tmp_path: Path, cap: CapFactory
    ) -> None:
        config = load(daemon_toml(tmp_path, mosquitto.url))
        routine = [cap(severity="Moderate") for _ in range(12)]
        severe = [cap(severity="Severe", urgency="Immediate") for _ in range(8)]
        async with (
            subscriber(mosquitto, ["out/#"]) as out,
            running_daemon(config) as daemon,
        ):
            await publish_all(mosquitto, routine + severe)
            await out.wait_for(
                lambda: len(out.on("out/cap/")) >= 20 and len(out.on("out/json/")) >= 8
            )
            # The same documents again: admitted as duplicates, nothing new goes out.
            await publish_all(mosquitto, routine + severe)
            marker = cap(severity="Extreme")
            await publish_all(mosquitto, [marker])
            await out.wait_for(lambda: len(out.on("out/json/")) >= 9)
            ledger = daemon.ledger

        cap_keys = out.keys("out/cap/")
        json_keys = out.keys("out/json/")
        expected_all = {CapFactory.key_of(r) for r in [*routine, *severe, marker]}
        expected_severe = {CapFactory.key_of(r) for r in [*severe, marker]}
        assert set(cap_keys) == expected_all
        assert set(json_keys) == expected_severe
        assert all(len(v) == 1 for v in cap_keys.values())
        assert all(len(v) == 1 for v in json_keys.values())
        # The CAP sink carries the original bytes; the JSON sink a summary with the key.
        by_key = {CapFactory.key_of(r): r for r in severe}
        for key, raw in by_key.items():
            assert cap_keys[key][0].payload == raw
            body = summary_of(json_keys[key][0])
            assert body["alert_key"] == key
            assert body["delivery_id"] == json_keys[key][0].delivery_id
        # Topic placeholders were filled and made topic-safe.
        sample = cap_keys[CapFactory.key_of(routine[0])][0]
        assert sample.topic.startswith("out/cap/us/")
        assert "+" not in sample.topic
        del ledger

    async def test_update_supersedes_and_cancel_withdraws(
        self, mosquitto: Broker, tmp_path: Path, cap: CapFactory
    ) -> None:
        config = load(daemon_toml(tmp_path, mosquitto.url))
        original = cap(severity="Severe")
        key = CapFactory.key_of(original)
        update = cap(severity="Severe", msg_type="Update", references=[key])
        update_key = CapFactory.key_of(update)
        cancel = cap(severity="Minor", msg_type="Cancel", references=[update_key])
        async with (
            subscriber(mosquitto, ["out/#", "borderlink/active/#"]) as out,
            running_daemon(config) as daemon,
        ):
            await publish_all(mosquitto, [original])
            await out.wait_for(lambda: len(out.keys("out/json/")) == 1)
            await publish_all(mosquitto, [update])
            await out.wait_for(lambda: len(out.keys("out/json/")) == 2)
            # The cancel is Minor: the JSON route's filter would skip it, but that sink
            # carried the update, so the cancel goes there too.
            await publish_all(mosquitto, [cancel])
            await out.wait_for(lambda: len(out.keys("out/json/")) == 3)
            await out.wait_for(
                lambda: any(
                    m.payload == b"" and update_key.split(",")[1] in m.topic
                    for m in out.on("borderlink/active/")
                )
            )
            stored = await asyncio.to_thread(daemon.ledger.get, AlertKey.from_reference(update_key))
            assert stored is not None
            assert stored.status.value == "cancelled"
            first = await asyncio.to_thread(daemon.ledger.get, AlertKey.from_reference(key))
            assert first is not None
            assert first.status.value == "superseded"
            active = await asyncio.to_thread(daemon.ledger.active, daemon.clock.now())
            assert [str(a.key) for a in active] == []
        assert set(out.keys("out/cap/")) == {key, update_key, CapFactory.key_of(cancel)}
        active_msgs = out.on("borderlink/active/")
        # The original and the update were published retained, then cleared; the cancel
        # never was. (An admission made while the state publisher resynchronises at start
        # is published by both: the same retained summary twice, which changes nothing.)
        by_topic: dict[str, list[bytes]] = {}
        for m in active_msgs:
            by_topic.setdefault(m.topic.rsplit("/", 1)[1], []).append(m.payload)
        assert set(by_topic) == {topic_key(key), topic_key(update_key)}
        for payloads in by_topic.values():
            assert payloads[0] != b""
            assert payloads[-1] == b""

    async def test_update_before_delivery_withdraws_pending_entry(
        self, mosquitto: Broker, tmp_path: Path, cap: CapFactory
    ) -> None:
        """An update admitted while the original still waits in the outbox supersedes it."""
        config = load(daemon_toml(tmp_path, mosquitto.url, sink_url="mqtt://127.0.0.1:9"))
        original = cap(severity="Severe")
        update = cap(severity="Severe", msg_type="Update", references=[CapFactory.key_of(original)])
        async with running_daemon(config) as daemon:
            await publish_all(mosquitto, [original, update])
            update_key = AlertKey.from_reference(CapFactory.key_of(update))

            async def admitted() -> bool:
                return bool(await asyncio.to_thread(daemon.ledger.deliveries, update_key))

            await poll_until(admitted)
            entries = await asyncio.to_thread(daemon.ledger.deliveries, update_key)
            old = await asyncio.to_thread(
                daemon.ledger.deliveries, AlertKey.from_reference(CapFactory.key_of(original))
            )
        assert {e.state for e in old} == {EntryState.SUPERSEDED}
        assert {e.state for e in entries} == {EntryState.PENDING}


class TestHostileInput:
    """Broken and hostile payloads on the MQTT input are counted and change nothing else."""

    async def test_hostile_payloads_counted_and_ignored(
        self, mosquitto: Broker, tmp_path: Path, cap: CapFactory
    ) -> None:
        config = load(daemon_toml(tmp_path, mosquitto.url))
        hostile = [
            b"",
            b"not xml at all",
            b"\x00\x01\x02\xff" * 50,
            b'<?xml version="1.0"?><!DOCTYPE a [<!ENTITY x "y">]><a>&x;</a>',
            b'<?xml version="1.0"?><!DOCTYPE a SYSTEM "file:///etc/passwd"><a/>',
            b"<a>" * 300 + b"</a>" * 300,
            b"<alert xmlns='urn:oasis:names:tc:emergency:cap:1.2'>"
            b"<identifier>x</identifier></alert>",
            cap().replace(b"<status>Actual</status>", b"<status>Bogus</status>"),
            b'<?xml version="1.0"?><root/>',
            cap()[:-40],
        ]
        good = cap(severity="Severe")
        before = sum(INPUT_REJECTED.value(component="daemon", reason=r) for r in _REASONS)
        async with (
            subscriber(mosquitto, ["out/#"]) as out,
            running_daemon(config) as daemon,
        ):
            await publish_all(mosquitto, [*hostile, good])
            await out.wait_for(lambda: len(out.on("out/json/")) == 1)
            invalid = await asyncio.to_thread(daemon.ledger.invalid_records, limit=100)
            alerts = await asyncio.to_thread(daemon.ledger.alerts, limit=100)
        after = sum(INPUT_REJECTED.value(component="daemon", reason=r) for r in _REASONS)
        assert after - before == len(hostile)
        assert len({r.digest for r in invalid}) == len(set(hostile))
        assert [str(a.key) for a in alerts] == [CapFactory.key_of(good)]
        assert set(out.keys("out/cap/")) == {CapFactory.key_of(good)}


_REASONS = (
    "parse_syntax",
    "parse_encoding",
    "parse_nul",
    "parse_not_cap",
    "parse_bad_value",
    "parse_doctype",
    "parse_entity",
    "parse_xinclude",
    "parse_too_large",
    "parse_too_deep",
    "parse_missing",
    "invalid",
)


class TestRetainedState:
    """Late subscribers find the status and every active alert retained."""

    async def test_status_and_active_are_retained(
        self, mosquitto: Broker, tmp_path: Path, cap: CapFactory
    ) -> None:
        config = load(daemon_toml(tmp_path, mosquitto.url))
        alert = cap(severity="Severe")
        async with running_daemon(config):
            async with subscriber(mosquitto, ["out/json/#"]) as out:
                await publish_all(mosquitto, [alert])
                await out.wait_for(lambda: len(out.messages) == 1)
            async with subscriber(mosquitto, ["borderlink/status", "borderlink/active/#"]) as late:
                await late.wait_for(lambda: len(late.messages) >= 2)
            assert any(m.payload == b"online" and m.retain for m in late.messages)
            active = [m for m in late.messages if m.topic.startswith("borderlink/active/")]
            assert [summary_of(m)["alert_key"] for m in active] == [CapFactory.key_of(alert)]
        async with subscriber(mosquitto, ["borderlink/status"]) as after:
            await after.wait_for(lambda: len(after.messages) == 1)
        assert after.messages[0].payload == b"offline"


class TestMqttAckAfterCommit:
    """The daemon acknowledges an input message only after the ledger committed it."""

    async def test_unacknowledged_message_is_redelivered_to_the_next_session(
        self, mosquitto: Broker, tmp_path: Path, cap: CapFactory
    ) -> None:
        config = load(daemon_toml(tmp_path, mosquitto.url))
        alert = cap(severity="Severe")
        # A first daemon whose ledger refuses to commit: the message stays unacknowledged.
        async with running_daemon(config) as daemon:
            daemon.ledger.close()
            await publish_all(mosquitto, [alert])

            async def failed_twice() -> bool:
                return daemon.supervisor.failures.get("mqtt", 0) >= 2

            await poll_until(failed_twice)
        (tmp_path / "ledger.sqlite3").unlink()
        async with (
            subscriber(mosquitto, ["out/json/#"]) as out,
            running_daemon(config),
        ):
            await out.wait_for(lambda: len(out.messages) == 1)
        assert out.messages[0].alert_key == CapFactory.key_of(alert)


class TestProtocolsAndBrokers:
    """MQTT 3.1.1 works end to end; the embedded broker serves the demo set-up."""

    async def test_mqtt_311(self, mosquitto: Broker, tmp_path: Path, cap: CapFactory) -> None:
        path = daemon_toml(tmp_path, mosquitto.url)
        path.write_text(path.read_text().replace("[mqtt]\n", '[mqtt]\nprotocol = "3.1.1"\n'))
        config = load(path)
        alert = cap(severity="Extreme")
        async with (
            subscriber(mosquitto, ["out/#"]) as out,
            running_daemon(config),
        ):
            await publish_all(mosquitto, [alert])
            await out.wait_for(lambda: len(out.messages) == 2)
        json_msg = out.on("out/json/")[0]
        assert json_msg.delivery_id is None  # no user properties in 3.1.1 ...
        assert summary_of(json_msg)["delivery_id"]  # ... the JSON payload carries the id
        assert out.on("out/cap/")[0].payload == alert

    async def test_embedded_broker(self, tmp_path: Path, cap: CapFactory) -> None:
        """Anonymous on loopback when asked (tests/mqtt/test_broker.py: with accounts)."""
        port = free_port()
        path = daemon_toml(tmp_path, "mqtt://unused:1")
        text = path.read_text().replace(
            'broker = "mqtt://unused:1"',
            f'broker = "embedded"\nembedded_port = {port}\nembedded_auth = false',
        )
        path.write_text(text)
        config = load(path)
        embedded = Broker("127.0.0.1", port, None, path)  # type: ignore[arg-type]
        alert = cap(severity="Severe")
        async with running_daemon(config), subscriber(embedded, ["out/#"], v5=False) as out:
            await publish_all(embedded, [alert])
            await out.wait_for(lambda: len(out.messages) == 2)
        assert {m.topic.split("/")[1] for m in out.messages} == {"cap", "json"}


class TestValidationModes:
    """Alerts with validation errors: refused, held for an operator, or passed, per source."""

    async def test_reject_hold_and_warn(
        self, mosquitto: Broker, tmp_path: Path, cap: CapFactory
    ) -> None:
        outcomes = {}
        for mode in ("reject", "hold", "warn"):
            workdir = tmp_path / mode
            workdir.mkdir()
            path = daemon_toml(workdir, mosquitto.url)
            path.write_text(
                path.read_text().replace('validation = "reject"', f'validation = "{mode}"')
            )
            broken = cap(identifier=f"has space {mode}", severity="Severe")
            async with (
                subscriber(mosquitto, ["out/#"]) as out,
                running_daemon(load(path)) as daemon,
            ):
                await publish_all(mosquitto, [broken, cap(severity="Severe")])
                expected = 2 if mode == "warn" else 1
                await out.wait_for(lambda: len(out.on("out/json/")) >= expected)  # noqa: B023 - awaited in this iteration
                alerts = await asyncio.to_thread(daemon.ledger.alerts)
                holds = await asyncio.to_thread(daemon.ledger.holds)
            outcomes[mode] = (
                sorted(a.decision.value for a in alerts),
                len(holds),
                CapFactory.key_of(broken) in set(out.keys("out/")),
            )
            if mode == "hold":  # each held delivery says why, as /holds and the API show it
                assert {h.reason for h in holds} == {
                    "1 validation error(s), first cap.identifier at /alert/identifier:"
                    " <identifier> contains a space (spaces, commas, < and & are not allowed)"
                }
        assert outcomes["reject"] == (["new"], 0, False)
        assert outcomes["hold"] == (["held", "new"], 2, False)
        assert outcomes["warn"] == (["new", "new"], 0, True)
