"""The APRS station shared by the KISS and sound-card adapters, and its durable message numbers."""

from __future__ import annotations

import asyncio
import json
import tomllib
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from adapters.kiss import aprs, ax25
from adapters.kiss.numbers import LARGEST, MessageNumberStore, advance, read_state, state_path
from adapters.kiss.station import (
    ACKS_DROPPED,
    MESSAGE_RETRIES,
    AprsStation,
    StationOptions,
)
from gateway.adapter import AdapterContext, Outbound, load_factory
from gateway.config import parse_config
from gateway.errors import ConfigError, DeliveryError
from gateway.metrics import INPUT_REJECTED
from gateway.model import RadioMessage
from tests.radio.conftest import Inbox, SimFactory


class FakeClock:
    """Monotonic time that only moves when someone sleeps."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> datetime:
        return datetime.fromtimestamp(1_800_000_000 + self.t, UTC)

    def monotonic(self) -> float:
        return self.t

    async def sleep(self, seconds: float) -> None:
        self.t += seconds
        for _ in range(20):  # let every ready task (an ack in flight) run first
            await asyncio.sleep(0)


class Ether:
    """An in-memory channel between stations; transmissions listed in ``drop`` are lost."""

    def __init__(self, drop: Sequence[int] = ()) -> None:
        self.stations: list[AprsStation] = []
        self.drop = set(drop)
        self.log: list[tuple[str, str, bytes]] = []
        self.transmitted = asyncio.Event()

    def transmit_for(self, name: str) -> Any:
        async def transmit(frames: Sequence[bytes], kind: str) -> None:
            for frame in frames:
                index = len(self.log)
                self.log.append((name, kind, frame))
                self.transmitted.set()
                if index in self.drop:
                    continue
                for station in self.stations:
                    if station.name != name:
                        station.on_frame(frame)
            await asyncio.sleep(0)

        return transmit

    def station(self, name: str, clock: FakeClock, **options: Any) -> AprsStation:
        station = AprsStation(
            name,
            StationOptions.from_mapping(name, options),
            transmit=self.transmit_for(name),
            component=f"test:{name}",
            clock=clock,
        )
        self.stations.append(station)
        return station


def outbound(*parts: str, **attributes: str) -> Outbound:
    return Outbound(None, "radio", tuple(p.encode() for p in parts), "text/plain", attributes)


def sent_numbers(ether: Ether, sender: str) -> list[str]:
    numbers = []
    for name, kind, frame in ether.log:
        if name == sender and kind == "message":
            packet = aprs.decode(ax25.Frame.from_bytes(frame).info)
            assert isinstance(packet, aprs.Message)
            assert packet.number is not None
            numbers.append(packet.number)
    return numbers


class TestMessageNumberStore:
    """Numbers are reserved on disk a block at a time; a restart never reuses one."""

    def test_restart_continues_after_the_reserved_block(self, tmp_path: Path) -> None:
        path = state_path(tmp_path, "aprs")
        first = MessageNumberStore(path, component="t", block=5, fallback=lambda: 100)
        used = [int(first.take()) for _ in range(7)]
        assert used == list(range(100, 107))
        assert first.writes == 2  # one write per block, not per message
        # The process dies here (no clean shutdown): a new one reads the file.
        second = MessageNumberStore(path, component="t", block=5, fallback=lambda: 1)
        after = [int(second.take()) for _ in range(3)]
        assert not set(after) & set(used)
        assert after[0] == 110  # the whole second block is skipped, nothing more
        assert read_state(path) == 115

    def test_numbers_wrap_from_99999_to_1(self, tmp_path: Path) -> None:
        store = MessageNumberStore(
            state_path(tmp_path, "w"), component="t", block=2, fallback=lambda: LARGEST - 1
        )
        assert [store.take() for _ in range(4)] == ["99998", "99999", "1", "2"]
        assert advance(LARGEST, 1) == 1

    def test_file_name_is_safe_for_any_adapter_name(self, tmp_path: Path) -> None:
        assert state_path(tmp_path, "../radio east").name == "aprs-numbers-.._radio_east.json"
        assert state_path(tmp_path, "../radio east").parent == tmp_path

    @pytest.mark.parametrize(
        "content",
        [
            b"not json at all",
            b"\xff\xfe\x00garbage",
            b'{"version": 2, "next": 5}',
            b'{"version": 1, "next": 0}',
            b'{"version": 1, "next": 100000}',
            b'{"version": 1, "next": true}',
            b"[1, 2, 3]",
            b"",
        ],
    )
    def test_corrupt_file_is_counted_kept_aside_and_replaced(
        self, tmp_path: Path, content: bytes
    ) -> None:
        path = state_path(tmp_path, "aprs")
        path.write_bytes(content)
        before = INPUT_REJECTED.value(component="kiss:aprs", reason="state_file")
        store = MessageNumberStore(path, component="kiss:aprs", block=10, fallback=lambda: 4242)
        with capture_logs() as logs:
            assert store.take() == "4242"
        assert INPUT_REJECTED.value(component="kiss:aprs", reason="state_file") == before + 1
        assert any(e["event"] == "aprs_numbers_state_rejected" for e in logs)
        assert path.with_name(path.name + ".corrupt").read_bytes() == content
        assert read_state(path) == 4252  # a fresh, valid file

    def test_unreadable_state_is_counted(self, tmp_path: Path) -> None:
        path = state_path(tmp_path, "aprs")
        path.mkdir(parents=True)  # a folder where the file should be: reading fails
        before = INPUT_REJECTED.value(component="t", reason="state_file")
        store = MessageNumberStore(path, component="t", fallback=lambda: 7)
        assert store.take() == "7"
        assert INPUT_REJECTED.value(component="t", reason="state_file") == before + 1

    def test_unwritable_folder_still_hands_out_unique_numbers(self, tmp_path: Path) -> None:
        blocker = tmp_path / "file"
        blocker.write_text("not a folder", encoding="utf-8")
        store = MessageNumberStore(
            blocker / "sub" / "n.json", component="t", block=3, fallback=lambda: 50
        )
        with capture_logs() as logs:
            numbers = [store.take() for _ in range(5)]
        assert numbers == ["50", "51", "52", "53", "54"]
        assert store.writes == 0
        assert any(e["event"] == "aprs_numbers_write_failed" for e in logs)

    @settings(max_examples=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
    @given(content=st.binary(max_size=64) | st.text(max_size=40).map(str.encode))
    def test_any_file_content_resumes_or_restarts_safely(
        self, tmp_path: Path, content: bytes
    ) -> None:
        path = tmp_path / "prop.json"
        path.write_bytes(content)
        store = MessageNumberStore(path, component="prop", block=4, fallback=lambda: 9)
        number = int(store.take())
        assert 1 <= number <= LARGEST
        assert read_state(path) == advance(number, 4)

    def test_unloaded_store_reserves_in_a_worker_thread(self, tmp_path: Path) -> None:
        store = MessageNumberStore(tmp_path / "n.json", component="t", fallback=lambda: 3)
        assert asyncio.run(store.next()) == "3"
        assert json.loads((tmp_path / "n.json").read_text("ascii")) == {"version": 1, "next": 103}


class TestStationMessaging:
    """Directed messages are retried until acked, delivered once, and numbered durably."""

    async def test_lost_message_and_lost_ack_deliver_exactly_once(self) -> None:
        clock = FakeClock()
        # 0: message (lost), 1: retry, 2: ack (lost), 3: second retry, 4: ack
        ether = Ether(drop=[0, 2])
        gw = ether.station("gw", clock, callsign="VE3BDR", mode="message", addressees="W2EOC")
        field = ether.station("field", clock, callsign="W2EOC")
        await gw.start()
        await field.start()
        try:
            inbound = Inbox(field.subscribe())
            before = MESSAGE_RETRIES.value(adapter="gw")
            await asyncio.wait_for(gw.send(outbound("Shelter open")), 5)
            assert MESSAGE_RETRIES.value(adapter="gw") == before + 2
            item = await inbound.next(1)
            assert RadioMessage.from_json(item.raw).text == "Shelter open"
            with pytest.raises(TimeoutError):
                await inbound.next(0.1)
            kinds = [kind for _, kind, _ in ether.log]
            assert kinds == ["message", "message", "ack", "message", "ack"]
        finally:
            await gw.stop()
            await field.stop()

    async def test_numbers_persist_across_a_restart(self, tmp_path: Path) -> None:
        clock = FakeClock()
        ether = Ether()
        options = {
            "callsign": "VE3BDR",
            "mode": "message",
            "addressees": "W2EOC",
            "state_dir": str(tmp_path),
        }
        field = ether.station("field", clock, callsign="W2EOC")
        await field.start()
        Inbox(field.subscribe())  # stores and confirms, so field acknowledges
        first_run = ether.station("gw", clock, **options)
        await first_run.start()
        await first_run.send(outbound("one", "two"))
        await first_run.stop()
        ether.stations.remove(first_run)
        second_run = ether.station("gw", clock, **options)
        await second_run.start()
        await second_run.send(outbound("three"))
        await second_run.stop()
        await field.stop()
        numbers = sent_numbers(ether, "gw")
        assert len(numbers) == 3
        assert len(set(numbers)) == 3
        assert int(numbers[2]) == int(numbers[0]) + 100  # the next reserved block
        assert (tmp_path / "aprs-numbers-gw.json").exists()

    async def test_transport_failure_fails_pending_message(self) -> None:
        clock = FakeClock()
        ether = Ether()
        gw = ether.station(
            "gw",
            clock,
            callsign="VE3BDR",
            mode="message",
            addressees="W2EOC",
            message_retry_initial=60,
        )
        await gw.start()
        sending = asyncio.create_task(gw.send(outbound("into the void")))
        await asyncio.wait_for(ether.transmitted.wait(), 5)
        gw.lost(ConnectionError("TNC unplugged"))
        with pytest.raises(DeliveryError, match="TNC unplugged"):
            await sending
        await gw.stop()

    async def test_ack_queue_is_bounded(self) -> None:
        clock = FakeClock()
        blocked = asyncio.Event()

        async def stuck(frames: Sequence[bytes], kind: str) -> None:
            await blocked.wait()

        station = AprsStation(
            "flood",
            StationOptions.from_mapping("flood", {"callsign": "VE3BDR"}),
            transmit=stuck,
            component="test:flood",
            clock=clock,
        )
        await station.start()
        inbound = Inbox(station.subscribe())
        before = ACKS_DROPPED.value(adapter="flood")
        for n in range(100):
            info = f":VE3BDR   :flood {n}{{{n}".encode()
            station.on_frame(
                ax25.Frame(ax25.Address("APRS"), ax25.Address("K1BAD"), (), info).to_bytes()
            )
        for _ in range(100):  # every message stored and confirmed: 100 acks wanted
            await inbound.next(5)
        assert ACKS_DROPPED.value(adapter="flood") == before + 100 - 64  # 64 queued
        await station.stop()

    async def test_failed_ack_transmission_is_counted_not_fatal(self) -> None:
        clock = FakeClock()
        calls: list[str] = []
        both = asyncio.Event()

        async def broken(frames: Sequence[bytes], kind: str) -> None:
            calls.append(kind)
            if len(calls) == 2:
                both.set()
            raise DeliveryError("port gone")

        station = AprsStation(
            "broken",
            StationOptions.from_mapping("broken", {"callsign": "VE3BDR"}),
            transmit=broken,
            component="test:broken",
            clock=clock,
        )
        await station.start()
        Inbox(station.subscribe())
        before = ACKS_DROPPED.value(adapter="broken")
        for n in (1, 2):
            info = f":VE3BDR   :hello{{{n}".encode()
            station.on_frame(
                ax25.Frame(ax25.Address("APRS"), ax25.Address("K1ABC"), (), info).to_bytes()
            )
        await asyncio.wait_for(both.wait(), 5)
        await asyncio.sleep(0)  # the second failure is counted after the transmit returns
        assert ACKS_DROPPED.value(adapter="broken") == before + 2
        await station.stop()


class TestHostileFrames:
    """Any bytes handed to the station as a frame are decoded or counted, never raised."""

    @settings(max_examples=200, deadline=None)
    @given(
        raw=st.binary(max_size=80)
        | st.binary(max_size=60).map(
            lambda info: ax25.Frame(
                ax25.Address("APRS"), ax25.Address("K1ABC"), (), b":VE3BDR   :" + info
            ).to_bytes()
        )
    )
    def test_random_frames_never_raise(self, raw: bytes) -> None:
        async def run() -> None:
            station = AprsStation(
                "fuzz",
                StationOptions.from_mapping("fuzz", {"callsign": "VE3BDR"}),
                transmit=Ether().transmit_for("fuzz"),
                component="test:fuzz",
                clock=FakeClock(),
            )
            station.on_frame(raw)

        asyncio.run(run())


class TestKissNumbersAcrossRestart:
    """A KISS adapter given a data directory does not reuse a number after a restart."""

    async def test_kiss_adapter_restart(self, rf: SimFactory, tmp_path: Path) -> None:
        sim_config = {
            "channels": [{"name": "aprs", "line_rate": 9600}],
            "stations": [
                {"name": "gw-tnc", "kind": "tnc", "tcp": "127.0.0.1:0"},
                {"name": "field-tnc", "kind": "tnc", "tcp": "127.0.0.1:0"},
            ],
        }
        async with rf(sim_config) as sim:
            field = load_factory("kiss")(
                AdapterContext("field", {"port": sim.url("field-tnc"), "callsign": "W2EOC"})
            )
            ctx = AdapterContext(
                "aprs",
                {
                    "port": sim.url("gw-tnc"),
                    "callsign": "VE3BDR",
                    "mode": "message",
                    "addressees": ["W2EOC"],
                },
                data_dir=str(tmp_path),
            )
            async with field:
                Inbox(field.messages())  # type: ignore[union-attr]
                for _ in range(2):
                    gw = load_factory("kiss")(ctx)
                    async with gw:
                        await asyncio.wait_for(gw.send(outbound("status check")), 10)  # type: ignore[union-attr]
            tnc = sim.stations["field-tnc"]
            numbers = []
            for tx in tnc.received:
                packet = aprs.decode(ax25.Frame.from_bytes(tx.payload).info)
                if isinstance(packet, aprs.Message):
                    numbers.append(packet.number)
        assert len(numbers) == 2
        assert numbers[0] != numbers[1]
        assert read_state(tmp_path / "aprs-numbers-aprs.json") is not None


class TestStationOptions:
    """Every station option error names the key."""

    @pytest.mark.parametrize(
        ("options", "message"),
        [
            ({}, r'^sink "x"\.callsign: is required'),
            ({"callsign": "TOOLONGCALL"}, r"\.callsign: "),
            ({"callsign": "N0CALL", "mode": "relay"}, r"\.mode: 'relay' is not allowed"),
            ({"callsign": "N0CALL", "retries": 0}, r"\.retries: must be at least 1, got 0"),
            (
                {"callsign": "N0CALL", "message_retry_initial": "soon"},
                r"\.message_retry_initial: must be a number",
            ),
            (
                {"callsign": "N0CALL", "message_retry_max": 1, "message_retry_initial": 5},
                r"\.message_retry_max: must be at least 5",
            ),
            ({"callsign": "N0CALL", "path": "WIDE1-99"}, r"\.path: "),
            ({"callsign": "N0CALL", "destination": "AP-ZZ"}, r"\.destination: "),
            ({"callsign": "N0CALL", "addressees": "TOOLONGNAME"}, r"\.addressees: "),
            ({"callsign": "N0CALL", "addressees": 5}, r"\.addressees: must be a list of strings"),
            ({"callsign": "N0CALL", "group": "TOOLONG"}, r"\.group: "),
            ({"callsign": "N0CALL", "state_dir": 3}, r"\.state_dir: must be a string"),
        ],
    )
    def test_errors(self, options: dict[str, Any], message: str) -> None:
        with pytest.raises(ConfigError, match=message):
            StationOptions.from_mapping("x", options)

    def test_state_dir_defaults_to_the_data_dir(self) -> None:
        opts = StationOptions.from_mapping("x", {"callsign": "N0CALL"}, data_dir="/srv/bl")
        assert opts.state_dir == "/srv/bl"
        override = {"callsign": "N0CALL", "state_dir": "elsewhere"}
        assert StationOptions.from_mapping("x", override, data_dir="d").state_dir == "elsewhere"


class TestRetryKeysOfASink:
    """A ``kiss`` sink's ``retry_initial``/``retry_max`` are the outbox's (between whole
    deliveries); the APRS message retries have their own keys and both reach their owner."""

    def test_outbox_and_message_retries_are_apart(self, tmp_path: Path) -> None:
        text = (
            '[gateway]\nname = "t"\n[ledger]\npath = "l.sqlite3"\n'
            '[[sink]]\nname = "aprs"\ntype = "kiss"\nport = "socket://127.0.0.1:9"\n'
            'callsign = "VE3BDR-10"\nmode = "message"\naddressees = ["VA3EOC"]\n'
            "retry_initial = 0.5\nretry_max = 10\n"
            "message_retry_initial = 2.5\nmessage_retry_max = 40\n"
            '[[route]]\nname = "r"\nsinks = ["aprs"]\n'
        )
        config = parse_config(tomllib.loads(text), path=tmp_path / "c.toml")
        sink = next(s for s in config.sinks if s.name == "aprs")
        assert (sink.retry_initial, sink.retry_max) == (0.5, 10.0)
        adapter = load_factory("kiss")(AdapterContext(name="aprs", options=sink.options))
        assert (adapter.station.options.retry_initial, adapter.station.options.retry_max) == (
            2.5,
            40.0,
        )
