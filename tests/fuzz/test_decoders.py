"""Every decoder that reads bytes from outside either decodes them or raises its documented
error, whatever the bytes (arbitrary, mutated from real inputs, split anywhere)."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.errors import StopTest

from tests.fuzz.conftest import FUZZ_SECONDS
from tests.fuzz.targets import TARGETS, Target

# Seeds that look like each family's input, so that mutations reach deep into the decoders.
SEEDS = [
    b'<?xml version="1.0"?><alert xmlns="urn:oasis:names:tc:emergency:cap:1.2">'
    b"<identifier>x</identifier><sender>s</sender><sent>2026-01-01T00:00:00-00:00</sent>"
    b"<status>Actual</status><msgType>Alert</msgType><scope>Public</scope></alert>",
    b"ZCZC-WXR-TOR-026163+0030-3381200-KDTX/NWS-",
    b"\xc0\x00\x82\xa0\xa4\xa6@@`\x96\x8a\x86\xa8@@a\x03\xf0:BLN1     :hello\xc0",
    b'{"text": "INC1 fire at 8 Ave", "from": "VE7ABC", "channel": "CA-EAST", "number": "42"}',
    b'{"$schema": "borderlink:incident:1", "incidentTrackingIdentifier": "X-1"}',
    b"\x1b\x02ID=\r\x02PG1\r\x03123\r",
    b'{"features": [{"properties": {"id": "urn:oid:2.49.0.1.840.0.1"}}]}',
]


def _bytes() -> st.SearchStrategy[bytes]:
    mutated = st.builds(
        lambda seed, cut, junk: seed[:cut] + junk + seed[cut:],
        st.sampled_from(SEEDS),
        st.integers(0, 400),
        st.binary(max_size=64),
    )
    return st.one_of(st.binary(max_size=2048), mutated)


RUNS: dict[str, int] = {}


def _check(target: Target, data: bytes) -> None:
    RUNS[target.name] = RUNS.get(target.name, 0) + 1
    with contextlib.suppress(*target.allowed):
        target.run(data)


def _property(target: Target) -> Callable[..., None]:
    @given(data=_bytes(), cuts=st.lists(st.integers(1, 64), max_size=8))
    def prop(data: bytes, cuts: list[int]) -> None:
        _check(target, data)
        if target.stream:  # the same input in pieces decodes the same
            whole = target.run(data)
            pieces: list[object] = []
            decoder_feed = _streaming(target)
            rest = data
            for cut in cuts:
                pieces.extend(decoder_feed(rest[:cut]))
                rest = rest[cut:]
            pieces.extend(decoder_feed(rest))
            assert repr(pieces) == repr(whole)

    return prop


def _streaming(target: Target) -> Callable[[bytes], list[object]]:
    """A fresh decoder of a stream target, fed piece by piece."""
    from tests.fuzz import targets  # noqa: PLC0415 - the factories live beside the targets

    decoders = {
        "naad-stream": targets.CapStreamSplitter,
        "kiss": targets.kiss.KissDecoder,
        "tap-replies": targets.ReplyDecoder,
        "tap-requests": targets.RequestDecoder,
        "textmodem-lines": targets.LineDecoder,
    }
    decoder = decoders[target.name]()
    return decoder.feed  # type: ignore[no-any-return]


@pytest.mark.parametrize("target", TARGETS, ids=[t.name for t in TARGETS])
def test_decoder_contract(target: Target) -> None:
    if FUZZ_SECONDS <= 0:
        settings(settings.get_profile("decoders"))(_property(target))()
        return
    # make fuzz: run rounds of examples until the time is up
    started = time.monotonic()
    while time.monotonic() < started + FUZZ_SECONDS:
        try:
            settings(settings.get_profile("fuzz"), max_examples=2000)(_property(target))()
        except StopTest:
            break
    print(  # the figures make fuzz reports
        f"fuzz {target.name}: {RUNS.get(target.name, 0)} inputs in"
        f" {time.monotonic() - started:.0f} s, no contract broken"
    )
