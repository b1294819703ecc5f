"""The decoders that read bytes from outside, each with the errors its documentation allows.

A decoder's contract ("parse it or raise the remote error, never anything else"): for any
input it returns, or raises one of the listed errors. The property tests and ``make fuzz`` run
every target here; a new decoder is added as a target.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from adapters.ipaws.codec import extract_alerts
from adapters.kiss import aprs, ax25, kiss
from adapters.modem.hdlc import HdlcDecoder
from adapters.nws.codec import parse_active
from adapters.pager.tap import ReplyDecoder, RequestDecoder
from adapters.textmodem.codec import LineDecoder
from cap_schemas.edxl import unwrap
from cap_schemas.errors import CapParseError
from cap_schemas.parse import parse_alert
from cap_schemas.same import SameHeader
from cap_schemas.stream import CapStreamSplitter
from gateway.errors import FrameError
from gateway.messages import parse_inbound
from gateway.model import RadioMessage
from gateway.translate.incident import incident_from_edxl, incident_from_json


@dataclass(frozen=True)
class Target:
    name: str
    run: Callable[[bytes], object]
    allowed: tuple[type[BaseException], ...]
    stream: bool = False  # fed in pieces: the same frames whatever the chunking


def _same(data: bytes) -> object:
    return SameHeader.parse(data.decode("latin-1"))


def _kiss(data: bytes) -> object:
    return kiss.KissDecoder().feed(data)


def _hdlc(data: bytes) -> object:
    bits = [(byte >> i) & 1 for byte in data for i in range(8)]
    return HdlcDecoder().feed(bits)


def _tap_replies(data: bytes) -> object:
    return ReplyDecoder().feed(data)


def _tap_requests(data: bytes) -> object:
    return RequestDecoder().feed(data)


def _lines(data: bytes) -> object:
    return LineDecoder().feed(data)


def _naad(data: bytes) -> object:
    return CapStreamSplitter().feed(data)


TARGETS: tuple[Target, ...] = (
    Target("cap", parse_alert, (CapParseError,)),
    Target("edxl", unwrap, (CapParseError,)),
    Target("same-header", _same, (CapParseError,)),
    Target("naad-stream", _naad, (), stream=True),
    Target("ipaws-envelope", lambda d: extract_alerts(d, max_bytes=1 << 20), (FrameError,)),
    Target("nws-index", parse_active, (FrameError,)),
    Target("kiss", _kiss, (), stream=True),
    Target("ax25", ax25.Frame.from_bytes, (FrameError,)),
    Target("aprs", aprs.decode, (FrameError,)),
    Target("hdlc", _hdlc, ()),
    Target("tap-replies", _tap_replies, (FrameError,), stream=True),
    Target("tap-requests", _tap_requests, (FrameError,), stream=True),
    Target("textmodem-lines", _lines, (FrameError,), stream=True),
    Target("radio-message", RadioMessage.from_json, (FrameError,)),
    Target("incident-json", incident_from_json, (FrameError,)),
    Target("incident-edxl", incident_from_edxl, (FrameError,)),
    Target("inbound-message", parse_inbound, (FrameError,)),
)
