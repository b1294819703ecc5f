"""``borderlink same encode|decode``: SAME/EAS header audio, compatible with multimon-ng output.

``encode`` writes a header (three bursts, attention signal, optional message audio or
speech, EOM) as a WAV file or raw 16-bit PCM; ``decode`` reads a WAV file, raw signed 16-bit
mono PCM or standard input and prints ``EAS: ZCZC-...`` for each header and ``EAS: NNNN``
for each end of message, as ``multimon-ng -a EAS`` does.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, TypeAlias

from gateway.commands import Subparsers, add_command, described

if TYPE_CHECKING:
    import numpy as np
    import numpy.typing as npt

    from adapters.eas.same_modem import SameMessage

    Chunk: TypeAlias = "npt.NDArray[np.float64] | bytes"

# What `borderlink --help` lists for this command (read there without importing it).
SUMMARY = "encode or decode SAME/EAS header audio"


SAME_CODES = {
    0: "the action was done (each ACTION's --help says what that means)",
    2: "no or an unknown ACTION, or the action failed (each ACTION's --help says how)",
}
ENCODE_CODES = {
    0: "the audio was written",
    2: "a bad header or option, message audio that cannot be read, or an output that cannot "
    "be written (what and where is said)",
}
DECODE_CODES = {
    0: "the input was read to its end (or Ctrl-C), whether or not it held a header",
    2: "the input could not be read or is not audio this reads (with --json, also the last "
    "line, of kind error)",
}
DECODE_DOC = """\
Prints one 'EAS: ' line per header and per end of message, like 'multimon-ng -a EAS', so
scripts that read multimon-ng's output can switch over.

'--json' prints one JSON object a line instead, each with the same keys: 'kind' (header,
eom, or error when the input fails), 'raw' (the 'ZCZC-...' header or 'NNNN' as heard),
'originator', 'event', 'locations' (PSSCCC codes), 'duration_minutes', 'issued' and
'expires' (CAP times; SAME gives no year: the latest such time not after now),
'station' (without padding), 'seconds' (where in the input it starts), 'bursts' (how many
were combined) and 'error' (why a header heard is not a valid one, or why the input
failed). What does not apply is null.
"""


def _out(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


def _err(line: str) -> None:
    sys.stderr.write(line + "\n")


def register(subparsers: Subparsers) -> None:
    parser = add_command(
        subparsers,
        "same",
        summary=SUMMARY,
        description=described(__doc__),
        codes=SAME_CODES,
    )
    actions = parser.add_subparsers(dest="same_action", metavar="ACTION", required=True)

    enc = add_command(
        actions,
        "encode",
        summary="write the audio of a SAME header",
        description="Writes the complete transmission of a header: three bursts, the "
        "attention signal, the message (a WAV file or speech), then the end of message.",
        codes=ENCODE_CODES,
    )
    enc.add_argument("header", help="ZCZC-ORG-EEE-PSSCCC...+TTTT-JJJHHMM-LLLLLLLL-")
    enc.add_argument("-o", "--output", required=True, help="output WAV file, or - for stdout")
    enc.add_argument("--rate", type=int, default=22050, help="sample rate in Hz (8000-48000)")
    enc.add_argument(
        "--attention", type=float, default=8.0, help="attention signal in seconds (0 = none)"
    )
    enc.add_argument(
        "--tone",
        choices=("eas", "nwr"),
        default="eas",
        help="attention signal: eas = 853 + 960 Hz, nwr = 1050 Hz",
    )
    enc.add_argument("--no-eom", action="store_true", help="leave out the NNNN bursts")
    enc.add_argument("--message-audio", type=Path, help="WAV file played after the attention")
    enc.add_argument("--speak", metavar="TEXT", help="message spoken with espeak-ng")
    enc.add_argument("--raw", action="store_true", help="raw signed 16-bit PCM instead of WAV")
    enc.set_defaults(handler=_encode)

    dec = add_command(
        actions,
        "decode",
        summary="print the SAME headers found in audio (or --json lines)",
        description=DECODE_DOC,
        codes=DECODE_CODES,
    )
    dec.add_argument(
        "input", help="WAV file, or a raw PCM file with --raw, or - for raw PCM on stdin"
    )
    dec.add_argument("--rate", type=int, default=22050, help="sample rate of raw input in Hz")
    dec.add_argument("--raw", action="store_true", help="input is raw PCM even if it looks WAV")
    dec.add_argument("--json", action="store_true", help="one JSON object a line")
    # What it decodes is its output: the codec's own info lines would say it twice.
    dec.set_defaults(handler=_decode, log_level_default="warning")


def _encode(args: argparse.Namespace) -> int:
    from adapters.eas import audio, same_modem  # noqa: PLC0415 - keeps `same --help` light

    try:
        options = same_modem.EncoderOptions(
            rate=args.rate,
            attention=args.attention,
            attention_tone=args.tone,
            eom=not args.no_eom,
        )
        same_modem.validate_header(args.header)
    except same_modem.SameEncodeError as exc:
        _err(f"borderlink same encode: {exc}")
        return 2
    message: Iterable[np.ndarray[Any, np.dtype[np.float64]]] = ()
    try:
        if args.message_audio is not None:
            message = list(audio.load_message_audio(args.message_audio, args.rate))
        elif args.speak:
            message = [audio.text_to_speech(args.speak, args.rate)]
    except (OSError, audio.AudioFormatError) as exc:
        _err(f"borderlink same encode: message audio: {exc}")
        return 2
    try:
        chunks = same_modem.encode(args.header, options, message=message)
        if args.output == "-":
            sink = sys.stdout.buffer
            if args.raw:
                audio.write_raw(sink, chunks)
            else:
                audio.write_wav(sink, chunks, args.rate)
            sink.flush()
        elif args.raw:
            with Path(args.output).open("wb") as out:
                audio.write_raw(out, chunks)
        else:
            audio.write_wav(Path(args.output), chunks, args.rate)
    except same_modem.SameEncodeError as exc:
        _err(f"borderlink same encode: {exc}")
        return 2
    except OSError as exc:
        _err(f"borderlink same encode: cannot write {args.output}: {exc}")
        return 2
    return 0


def _chunks_of(stream: BinaryIO, *, raw: bool, rate: int) -> tuple[int, Iterator[Chunk]]:
    from adapters.eas import audio  # noqa: PLC0415

    if raw:
        return rate, iter(audio.iter_raw(stream))
    head = stream.peek(12)[:12] if hasattr(stream, "peek") else b""
    if head[:4] == b"RIFF":
        wav_rate, chunks = audio.open_wav(stream)
        return wav_rate, iter(chunks)
    kind = next((name for magic, name in _CONTAINERS if head.startswith(magic)), None)
    if kind is not None:
        msg = (
            f"{kind} audio is not read here; convert it to WAV"
            " (sox IN.ogg -b 16 OUT.wav) or pipe raw 16-bit PCM with --raw"
        )
        raise ValueError(msg)
    if not head:
        msg = "the file is empty"
        raise ValueError(msg)
    msg = "not a WAV file; give --raw (and --rate) for raw signed 16-bit PCM"
    raise ValueError(msg)


# Containers recognised by their first bytes, to say what a refused file is.
_CONTAINERS = (
    (b"OggS", "Ogg"),
    (b"fLaC", "FLAC"),
    (b"ID3", "MP3"),
    (b"\xff\xfb", "MP3"),
    (b"\xff\xf3", "MP3"),
    (b"FORM", "AIFF"),
)


# The keys of every --json line of 'same decode' (see DECODE_DOC), null unless they apply.
DECODED_KEYS = (
    "kind",
    "raw",
    "originator",
    "event",
    "locations",
    "duration_minutes",
    "issued",
    "expires",
    "station",
    "seconds",
    "bursts",
    "error",
)


def header_facts(text: str) -> dict[str, Any]:
    """The fields of a header heard, or ``error`` saying why it is not a valid one (SAME has
    no checksum: the decoder's layout check passes a header whose values make no sense)."""
    from cap_schemas.errors import CapParseError  # noqa: PLC0415 - only for --json
    from cap_schemas.model import format_cap_datetime  # noqa: PLC0415
    from cap_schemas.same import SameHeader  # noqa: PLC0415

    try:
        header = SameHeader.parse(text)
    except CapParseError as exc:
        return {"error": str(exc)}
    return {
        "originator": header.originator,
        "event": header.event,
        "locations": list(header.locations),
        "duration_minutes": int(header.duration.total_seconds() // 60),
        "issued": format_cap_datetime(header.issued),
        "expires": format_cap_datetime(header.expires),
        "station": header.station.strip(),
    }


def decoded(message: SameMessage, rate: int) -> dict[str, Any]:
    """One ``--json`` line: a header with its fields, or an end of message."""
    facts = dict.fromkeys(DECODED_KEYS) | {
        "kind": message.kind,
        "raw": message.text,
        "seconds": round(message.start / rate, 3),
        "bursts": message.bursts,
    }
    return facts | (header_facts(message.text) if message.kind == "header" else {})


def _printer(as_json: bool) -> Callable[[SameMessage, int], None]:
    if as_json:
        return lambda message, rate: _out(json.dumps(decoded(message, rate)))
    return lambda message, _: _out(message.line)


def _decode_failed(args: argparse.Namespace, exc: Exception) -> int:
    text = f"{args.input}: {exc}"
    _err(f"borderlink same decode: {text}")
    if args.json:
        _out(json.dumps(dict.fromkeys(DECODED_KEYS) | {"kind": "error", "error": text}))
    return 2


def _decode(args: argparse.Namespace) -> int:
    from adapters.eas import same_modem  # noqa: PLC0415 - keeps `same --help` light

    show = _printer(args.json)
    try:
        stream: BinaryIO = (
            sys.stdin.buffer if args.input == "-" else Path(args.input).open("rb")  # noqa: SIM115 - closed in the finally below
        )
    except OSError as exc:
        return _decode_failed(args, exc)
    try:
        rate, chunks = _chunks_of(stream, raw=args.raw or args.input == "-", rate=args.rate)
        decoder = same_modem.SameDecoder(rate)
        for chunk in chunks:
            for message in decoder.feed(chunk):
                show(message, rate)
        for message in decoder.flush():
            show(message, rate)
    except (OSError, ValueError) as exc:
        return _decode_failed(args, exc)
    except KeyboardInterrupt:
        return 0
    finally:
        if stream is not sys.stdin.buffer:
            stream.close()
    return 0
