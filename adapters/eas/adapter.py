"""The ENDEC adapter: an EAS encoder/decoder on a serial port, pty or ``socket://`` URL.

As a **source** it yields every header the ENDEC decodes off the air as a CAP alert
(``Received(kind="cap", channel="air")``) built by
:func:`cap_schemas.same_cap.same_to_alert`: unsigned, ``source`` "SAME broadcast
(unauthenticated)", parameter ``borderlink:authenticated=false``, identifier derived from
the header without the station, so one header heard from two stations is one alert. With
``output = "same"`` it yields the header text itself (``kind="same"``). Off-air SAME carries
no authentication at all: routes must treat this source as unauthenticated (hold
national-level codes for an operator, never relay it automatically to a live output).
End-of-message lines are logged, not forwarded; a header that cannot be read as SAME is
rejected and counted.

As a **sink** it takes deliveries rendered as SAME headers (the ``same`` translation: one
header text per part) and sends each to the ENDEC in its line framing; with ``audio_dir`` set
it also writes the complete transmission as a WAV file (header bursts, attention signal,
optional spoken message, EOM) for ENDECs and automation systems that play audio files.

Options (``[[source]]``/``[[sink]]`` tables, type ``"endec"``):

``port``            URL: ``/dev/ttyUSB0``, a pty path, ``socket://127.0.0.1:7355``
``baudrate``        serial line rate (default 9600)
``prefix``          text before each header on the line (backslash escapes; default none)
``terminator``      line terminator (default ``"\\r\\n"``)
``send_eom``        also send ``NNNN`` after each header (default false)
``audio_dir``       directory for WAV files of outgoing alerts (default none)
``rate``            WAV sample rate (default 22050)
``attention``       attention signal seconds in WAV files (default 8)
``attention_tone``  ``"eas"`` (853 + 960 Hz) or ``"nwr"`` (1050 Hz)
``speak``           speak the delivery's ``speech`` attribute with espeak-ng (default false)
``output``          ``"cap"`` (default) or ``"same"``: what the source yields
``country``         ``"US"`` or ``"CA"``: whose location names to use in derived alerts
``sender``          sender of derived alerts (default ``same-receiver@borderlink.invalid``)
"""

from __future__ import annotations

import asyncio
import hashlib
import os
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import TracebackType
from typing import Any, Literal, Self, cast

import structlog

from adapters.eas import audio, same_modem
from adapters.eas.endec import EndecCodec, EndecFrameError, EndecFraming
from adapters.modem.fsk import FloatArray
from adapters.ports import close_writer, open_port
from gateway.adapter import (
    AdapterContext,
    Clock,
    Outbound,
    Received,
    SourceHealth,
    SystemClock,
)
from gateway.errors import AdapterConnectionError, DeliveryError
from gateway.metrics import INPUT_REJECTED, count_rejections
from gateway.options import adapter_options

log = structlog.get_logger(__name__)



@dataclass(frozen=True, slots=True)
class EndecOptions:
    port: str
    baudrate: int = 9600
    framing: EndecFraming = field(default_factory=EndecFraming)
    send_eom: bool = False
    audio_dir: Path | None = None
    encoder: same_modem.EncoderOptions = field(default_factory=same_modem.EncoderOptions)
    speak: bool = False
    output: str = "cap"
    country: str = "US"
    sender: str = "same-receiver@borderlink.invalid"

    @classmethod
    def from_mapping(cls, name: str, options: Mapping[str, Any]) -> EndecOptions:
        r = adapter_options("sink", name, options)
        port = r.required_string("port")
        try:
            framing = EndecFraming.from_options(
                r.string("prefix", ""), r.string("terminator", "\\r\\n")
            )
        except (ValueError, UnicodeError) as exc:
            r.fail(str(exc), "prefix" if r.has("prefix") else "terminator")
        try:
            encoder = same_modem.EncoderOptions(
                rate=r.integer("rate", 22050),
                attention=r.number("attention", 8.0),
                attention_tone=cast(
                    "Literal['eas', 'nwr']",
                    r.string("attention_tone", "eas", choices=("eas", "nwr")),
                ),
            )
        except ValueError as exc:
            r.fail(str(exc))
        audio_dir = r.string("audio_dir", "")
        result = cls(
            port=port,
            baudrate=r.integer("baudrate", 9600, minimum=50, maximum=4_000_000),
            framing=framing,
            send_eom=r.boolean("send_eom", False),
            audio_dir=Path(audio_dir) if audio_dir else None,
            encoder=encoder,
            speak=r.boolean("speak", False),
            output=r.string("output", "cap", choices=("cap", "same")),
            country=r.string("country", "US", choices=("US", "CA")),
            sender=r.string("sender", "same-receiver@borderlink.invalid"),
        )
        r.finish()
        return result


def wav_name(header: str) -> str:
    """A file name for a header's WAV: event, issue time and a short digest of the text."""
    parts = header.split("-")
    event = parts[2] if len(parts) > 2 else "SAME"
    issued = parts[-3] if len(parts) > 3 else "0000000"
    digest = hashlib.sha256(header.encode("ascii")).hexdigest()[:10]
    return f"{issued}-{event}-{digest}.wav"


def write_alert_wav(
    directory: Path,
    header: str,
    options: same_modem.EncoderOptions,
    speech: str | None = None,
) -> Path:
    """Write the transmission of ``header`` as a WAV in ``directory`` (atomically)."""
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / wav_name(header)
    partial = target.with_suffix(".wav.part")
    message: list[FloatArray] = []
    if speech:
        try:
            message = [audio.text_to_speech(speech, options.rate)]
        except FileNotFoundError:
            log.warning("endec_speech_unavailable", header=header)
    chunks = same_modem.encode(header, options, message=message)
    with partial.open("wb") as out:
        audio.write_wav(out, chunks, options.rate)
        out.flush()
        os.fsync(out.fileno())
    partial.replace(target)
    return target


class EndecAdapter:
    """Source and sink for one ENDEC (see the module docstring)."""

    def __init__(self, name: str, options: EndecOptions, clock: Clock | None = None) -> None:
        self.name = name
        self.options = options
        self._clock = clock or SystemClock()
        self._codec = EndecCodec(options.framing)
        self._reader: asyncio.StreamReader | None = None
        self._writer: asyncio.StreamWriter | None = None
        self._write_lock = asyncio.Lock()
        self._last_message_at: datetime | None = None
        self._connected = False

    async def __aenter__(self) -> Self:
        self._reader, self._writer = await open_port(
            self.options.port, baudrate=self.options.baudrate
        )
        self._connected = True
        log.info("endec_connected", adapter=self.name, port=self.options.port)
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self._connected = False
        if self._writer is not None:
            await close_writer(self._writer)
        self._reader = self._writer = None

    def health(self) -> list[SourceHealth]:
        return [
            SourceHealth(
                self.name,
                healthy=self._connected,
                last_message_at=self._last_message_at,
                detail="" if self._connected else "port closed",
            )
        ]

    async def messages(self) -> AsyncIterator[Received]:
        """Headers decoded off the air by the ENDEC, as they arrive."""
        if self._reader is None:
            raise AdapterConnectionError(f"endec {self.name}: not open")
        while True:
            try:
                data = await self._reader.read(4096)
            except (OSError, ConnectionError) as exc:
                self._connected = False
                raise AdapterConnectionError(f"endec {self.name}: read failed: {exc}") from exc
            if not data:
                self._connected = False
                raise AdapterConnectionError(f"endec {self.name}: port closed by the device")
            lines = self._codec.feed(data)
            count_rejections(self._codec.rejections)
            for line in lines:
                if line.kind == "eom":
                    log.info("endec_eom_received", adapter=self.name)
                    continue
                self._last_message_at = now = self._clock.now()
                log.info("endec_header_received", adapter=self.name, header=line.text)
                if self.options.output == "same":
                    raw, kind = line.text.encode("ascii"), "same"
                else:
                    converted = self._to_cap(line.text, now)
                    if converted is None:
                        continue
                    raw, kind = converted, "cap"
                yield Received(raw=raw, source=self.name, received_at=now, channel="air", kind=kind)

    def _to_cap(self, text: str, now: datetime) -> bytes | None:
        """SAME header -> CAP XML; None (counted) when the header cannot be read."""
        from cap_schemas.same import SameHeader  # noqa: PLC0415 - loaded with the source side
        from cap_schemas.same_cap import same_to_alert  # noqa: PLC0415
        from cap_schemas.serialize import to_xml  # noqa: PLC0415

        try:
            header = SameHeader.parse(text, now=now)
            alert = same_to_alert(header, sender=self.options.sender, country=self.options.country)
        except ValueError as exc:  # SameHeaderError is a CapError (ValueError)
            INPUT_REJECTED.inc(component="endec", reason="same_header")
            log.warning("endec_header_rejected", adapter=self.name, header=text, error=str(exc))
            return None
        return to_xml(alert)

    def _headers(self, item: Outbound) -> list[str]:
        headers = []
        for index, part in enumerate(item.parts):
            try:
                text = part.decode("ascii").strip()
                line = self._codec.parse_text(text.encode("ascii"))
            except (UnicodeDecodeError, EndecFrameError) as exc:
                raise DeliveryError(
                    f"endec {self.name}: part {index} is not a SAME header "
                    f"(route it through the 'same' translation): {exc}",
                    retryable=False,
                ) from None
            if line.kind == "header":
                headers.append(line.text)
        if not headers:
            raise DeliveryError(f"endec {self.name}: delivery has no SAME header", retryable=False)
        return headers

    async def send(self, item: Outbound) -> None:
        """Send the delivery's header(s) to the ENDEC, and write WAV files if configured."""
        headers = self._headers(item)
        if self._writer is None:
            raise DeliveryError(f"endec {self.name}: port is not open")
        payload = b"".join(self._codec.to_bytes(h) for h in headers)
        if self.options.send_eom:
            payload += self._codec.to_bytes(same_modem.EOM)
        async with self._write_lock:
            try:
                self._writer.write(payload)
                await self._writer.drain()
            except (OSError, ConnectionError) as exc:
                self._connected = False
                raise DeliveryError(f"endec {self.name}: write failed: {exc}") from exc
        log.info("endec_header_sent", adapter=self.name, headers=headers, key=str(item.key))
        if self.options.audio_dir is not None:
            speech = item.attributes.get("speech") if self.options.speak else None
            for header in headers:
                path = await asyncio.to_thread(
                    write_alert_wav, self.options.audio_dir, header, self.options.encoder, speech
                )
                log.info("endec_audio_written", adapter=self.name, path=str(path))


def from_context(ctx: AdapterContext) -> EndecAdapter:
    """Registry entry ``"endec"``."""
    return EndecAdapter(ctx.name, EndecOptions.from_mapping(ctx.name, ctx.options), ctx.clock)
