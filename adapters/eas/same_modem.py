"""SAME (Specific Area Message Encoding) modem: header text to audio and audio to header text.

Signal facts (47 CFR 11.31(a); NWSI 10-1712):

* 520 5/6 bit/s (1.92 ms per bit); mark (1) = 2083 1/3 Hz, four cycles per bit; space (0) =
  1562.5 Hz, three cycles per bit; phase-continuous AFSK.
* Each burst is a preamble of 16 bytes 0xAB then the ASCII text, 8 bits per character, least
  significant bit first. A header is sent three times with a one-second pause after each burst,
  then the attention signal (853 + 960 Hz for EAS, 1050 Hz for NOAA Weather Radio, 8-25 s),
  the message audio, a pause of at least one second and the end of message ``NNNN`` three times.

The encoder is a generator of sample chunks (any length of message audio in bounded memory).
The decoder is a streaming, sans-IO state machine: :meth:`SameDecoder.feed` takes samples and
returns :class:`SameMessage` events as soon as they are complete. It demodulates with matched
filters and a tracking bit clock (:mod:`adapters.modem.fsk`), hunts for the 0xAB preamble,
collects each burst as *soft* bits, and combines the bursts of one transmission bit by bit,
each burst voting with the confidence of its own demodulator output. A header is only accepted
from at least two bursts, every character covered by two or more of them, when few bit errors
can be left after voting (or two of three bursts agree bit for bit on their own), and when the
result has the exact SAME header layout; anything else is rejected and reported in
``rejections`` (for its owner to count).
"""

from __future__ import annotations

import io
import itertools
import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Literal

import numpy as np
import numpy.typing as npt
import structlog

from adapters.eas.audio import write_wav
from adapters.modem.fsk import FloatArray, FskDemodulator, FskModulator, as_float_samples
from gateway.errors import Rejections

log = structlog.get_logger(__name__)

BAUD = Fraction(3125, 6)  # 520.8333... bit/s
MARK = 4 * BAUD  # 2083.333... Hz
SPACE = 3 * BAUD  # 1562.5 Hz
PREAMBLE_BYTE = 0xAB
PREAMBLE_LENGTH = 16
EOM = "NNNN"
MAX_LOCATIONS = 31
# "ZCZC-ORG-EEE-" + 31 x "PSSCCC-" (last one ends with "+") + "TTTT-JJJHHMM-LLLLLLLL-"
MAX_HEADER_LENGTH = 13 + MAX_LOCATIONS * 7 + 22
MIN_RATE = 8000
MAX_RATE = 48000

ATTENTION_EAS = (853.0, 960.0)
ATTENTION_NWR = (1050.0,)

HEADER_RE = re.compile(
    r"ZCZC-[A-Z]{3}-[A-Z0-9]{3}(?:-[0-9]{6}){1,31}\+[0-9]{4}-[0-9]{7}-[\x20-\x2a\x2c\x2e-\x7e]{8}-"
)

COMPONENT = "same_decoder"


class SameEncodeError(ValueError):
    """The text given to the encoder is not something a SAME burst may carry."""


def validate_header(text: str) -> str:
    """Return ``text`` if it is a SAME header (or ``NNNN``); raise SameEncodeError otherwise."""
    if text == EOM or HEADER_RE.fullmatch(text):
        return text
    msg = (
        f"not a SAME header: {text[:80]!r}; expected "
        "ZCZC-ORG-EEE-PSSCCC[-PSSCCC...]+TTTT-JJJHHMM-LLLLLLLL- with 1 to 31 locations"
    )
    raise SameEncodeError(msg)


def burst_bits(text: str) -> npt.NDArray[np.int8]:
    """The bits of one burst: preamble then ``text``, least significant bit first."""
    data = bytes([PREAMBLE_BYTE] * PREAMBLE_LENGTH) + text.encode("ascii")
    octets = np.frombuffer(data, dtype=np.uint8)
    bits: npt.NDArray[np.int8] = np.unpackbits(octets, bitorder="little").astype(np.int8)
    return bits


def tone(rate: int, seconds: float, freqs: Iterable[float], amplitude: float) -> FloatArray:
    """Sum of sine tones sharing ``amplitude``; 5 ms raised-cosine ramps avoid clicks."""
    freqs = tuple(freqs)
    count = max(round(seconds * rate), 0)
    t = np.arange(count) / rate
    out: FloatArray = np.zeros(count)
    for f in freqs:
        out += np.sin(2.0 * math.pi * f * t)
    out *= amplitude / max(len(freqs), 1)
    ramp = min(count // 2, round(0.005 * rate))
    if ramp > 0:
        shape = 0.5 - 0.5 * np.cos(np.linspace(0.0, math.pi, ramp))
        out[:ramp] *= shape
        out[-ramp:] *= shape[::-1]
    return out


@dataclass(frozen=True, slots=True)
class EncoderOptions:
    """How a SAME transmission is built.

    ``attention`` is the attention-signal length in seconds (0 for none; 8-25 s on air);
    ``attention_tone`` "eas" (853 + 960 Hz) or "nwr" (1050 Hz); ``eom`` adds the three
    ``NNNN`` bursts; ``amplitude`` is the peak level of the data tones (full scale = 1).
    """

    rate: int = 22050
    attention: float = 8.0
    attention_tone: Literal["eas", "nwr"] = "eas"
    eom: bool = True
    amplitude: float = 0.5
    gap: float = 1.0

    def __post_init__(self) -> None:
        if not MIN_RATE <= self.rate <= MAX_RATE:
            msg = f"sample rate {self.rate} Hz is outside {MIN_RATE}-{MAX_RATE} Hz"
            raise SameEncodeError(msg)
        if not 0 <= self.attention <= 25:
            msg = f"attention signal of {self.attention} s is outside 0-25 s"
            raise SameEncodeError(msg)
        if self.attention_tone not in {"eas", "nwr"}:
            msg = f"attention tone {self.attention_tone!r}; allowed: eas, nwr"
            raise SameEncodeError(msg)
        if not 0 < self.amplitude <= 1:
            msg = f"amplitude {self.amplitude} is outside (0, 1]"
            raise SameEncodeError(msg)


def encode_bursts(text: str, rate: int, *, amplitude: float = 0.5, gap: float = 1.0) -> FloatArray:
    """Three bursts of ``text``, each followed by ``gap`` seconds of silence."""
    modem = FskModulator(rate, mark=MARK, space=SPACE, baud=BAUD, amplitude=amplitude)
    bits = burst_bits(text)
    pieces: list[FloatArray] = []
    for _ in range(3):
        pieces.append(modem.modulate(bits))
        pieces.append(modem.silence(gap))
    return np.concatenate(pieces)


def encode(
    header: str,
    options: EncoderOptions | None = None,
    *,
    message: Iterable[FloatArray] = (),
) -> Iterator[FloatArray]:
    """Yield the samples of a whole SAME transmission in chunks.

    Header bursts, attention signal, ``message`` (chunks of float samples at the same rate,
    consumed lazily), then the EOM bursts when ``options.eom``.
    """
    opts = options or EncoderOptions()
    validate_header(header)
    if header == EOM:
        msg = "the header must be a ZCZC header; the EOM is added by the encoder"
        raise SameEncodeError(msg)
    yield encode_bursts(header, opts.rate, amplitude=opts.amplitude, gap=opts.gap)
    if opts.attention > 0:
        freqs = ATTENTION_EAS if opts.attention_tone == "eas" else ATTENTION_NWR
        yield tone(opts.rate, opts.attention, freqs, opts.amplitude)
        yield np.zeros(round(0.5 * opts.rate))
    any_message = False
    for chunk in message:
        any_message = True
        yield np.asarray(chunk, dtype=np.float64)
    if any_message:
        yield np.zeros(round(opts.gap * opts.rate))
    if opts.eom:
        yield encode_bursts(EOM, opts.rate, amplitude=opts.amplitude, gap=opts.gap)


# --------------------------------------------------------------------------- decoder


@dataclass(frozen=True, slots=True)
class SameMessage:
    """A header or end-of-message decoded from audio.

    ``bursts`` is how many bursts were combined; ``corrected`` counts the bits where a burst
    disagreed with the combined result; ``start``/``end`` are input sample indexes.
    """

    kind: Literal["header", "eom"]
    text: str
    bursts: int
    corrected: int
    start: int
    end: int

    @property
    def line(self) -> str:
        """The multimon-ng style line: ``EAS: ZCZC-...`` or ``EAS: NNNN``."""
        return f"EAS: {self.text}"


@dataclass(slots=True)
class _Burst:
    soft: FloatArray  # shape (characters, 8)
    start: int
    end: int

    @property
    def hard(self) -> bytes:
        return _pack(self.soft)


@dataclass(slots=True)
class _Group:
    bursts: list[_Burst] = field(default_factory=list)


def _pack(soft: FloatArray) -> bytes:
    if soft.size == 0:
        return b""
    return np.packbits(soft > 0, axis=1, bitorder="little").ravel().tobytes()


def _distance(a: bytes, b: bytes) -> int:
    return sum((x ^ y).bit_count() for x, y in zip(a, b, strict=False))


def _kind_of(prefix: bytes) -> str:
    return "eom" if _distance(prefix, b"NNNN") < _distance(prefix, b"ZCZC") else "header"


_PATTERN = 0xABABABAB
_HUNT, _PREAMBLE, _TEXT = 0, 1, 2


class SameDecoder:
    """Streaming SAME decoder for audio at any sample rate from 8 to 48 kHz.

    ``feed(samples)`` accepts float samples in [-1, 1], an int16 array, or signed 16-bit
    little-endian PCM bytes (split anywhere); it returns the messages completed by these
    samples. A transmission whose third burst never comes is decided ``hold`` seconds after
    its last burst; :meth:`flush` decides whatever is pending at the end of a stream.
    """

    def __init__(
        self,
        rate: int = 22050,
        *,
        hold: float = 3.5,
        preamble_errors: int = 2,
        max_residual: float = 0.1,
        min_quality: float = 0.6,
    ) -> None:
        if not MIN_RATE <= rate <= MAX_RATE:
            msg = f"sample rate {rate} Hz is outside {MIN_RATE}-{MAX_RATE} Hz"
            raise ValueError(msg)
        self.rate = rate
        self._demod = FskDemodulator(
            rate, mark=float(MARK), space=float(SPACE), baud=float(BAUD), band=(1450, 2200)
        )
        self._hold = round(hold * rate)
        self._preamble_errors = preamble_errors
        self._max_residual = max_residual
        self._min_quality = min_quality
        self._odd = b""
        self._state = _HUNT
        self._reg = 0
        self._bit = 0
        self._byte = 0
        self._byte_soft: list[float] = []
        self._chars: list[list[float]] = []
        self._text = bytearray()
        self._bad_run = 0
        self._ab_count = 0
        self._burst_start = 0
        self._group: _Group | None = None
        self.rejected = 0
        self.rejections = Rejections()

    # ----------------------------------------------------------------- input

    def feed(self, samples: npt.ArrayLike | bytes) -> list[SameMessage]:
        """Demodulate ``samples`` and return the messages they complete."""
        if isinstance(samples, bytes | bytearray | memoryview):
            raw = self._odd + bytes(samples)
            cut = len(raw) - (len(raw) % 2)
            self._odd = raw[cut:]
            x = as_float_samples(raw[:cut])
        else:
            x = as_float_samples(samples)
        bits = self._demod.feed(x)
        events: list[SameMessage] = []
        for value, position in zip(bits.values.tolist(), bits.positions.tolist(), strict=True):
            self._on_bit(value, position, events)
        self._check_hold(self._demod.samples_in, events)
        return events

    def flush(self) -> list[SameMessage]:
        """End of stream: finish a burst in progress and decide the pending transmission."""
        events: list[SameMessage] = []
        if self._state == _TEXT:
            self._end_burst(self._demod.samples_in, events)
        self._reset_hunt()
        self._close_group(events)
        return events

    # ----------------------------------------------------------------- bits to bursts

    def _reset_hunt(self) -> None:
        self._state = _HUNT
        self._reg = 0
        self._demod.relax()

    def _on_bit(self, value: float, position: int, events: list[SameMessage]) -> None:
        bit = 1 if value > 0 else 0
        if self._state == _HUNT:
            self._reg = (self._reg >> 1) | (bit << 31)
            if (self._reg ^ _PATTERN).bit_count() <= self._preamble_errors:
                self._state = _PREAMBLE
                self._bit = 0
                self._byte = 0
                self._byte_soft = []
                self._ab_count = 4
                self._burst_start = position
            return
        self._byte |= bit << self._bit
        self._byte_soft.append(value)
        self._bit += 1
        if self._bit < 8:
            return
        byte, soft = self._byte, self._byte_soft
        self._bit, self._byte, self._byte_soft = 0, 0, []
        if self._state == _PREAMBLE:
            if (byte ^ PREAMBLE_BYTE).bit_count() <= 2:
                self._ab_count += 1
                if self._ab_count > 4 * PREAMBLE_LENGTH:
                    self._reset_hunt()  # a stuck tone pattern, not a transmission
                return
            self._state = _TEXT
            self._chars = []
            self._text = bytearray()
            self._bad_run = 0
        self._chars.append(soft)
        self._text.append(byte)
        self._bad_run = 0 if 0x20 <= byte <= 0x7E else self._bad_run + 1
        text = bytes(self._text)
        plus = text.find(b"+")
        if (
            self._bad_run >= 3
            or (len(text) == 4 and text == b"NNNN")
            or (plus >= 0 and len(text) >= plus + 23)
            or len(text) >= MAX_HEADER_LENGTH + 4
        ):
            self._end_burst(position, events)

    def _end_burst(self, position: int, events: list[SameMessage]) -> None:
        chars = self._chars[: len(self._chars) - self._bad_run] if self._bad_run else self._chars
        self._reset_hunt()
        if not chars:
            return
        burst = _Burst(np.asarray(chars, dtype=np.float64), self._burst_start, position)
        group = self._group
        if group is not None:
            last = group.bursts[-1]
            if (
                burst.start - last.end > self._hold
                or len(group.bursts) >= 3
                or _kind_of(burst.hard[:4]) != _kind_of(group.bursts[0].hard[:4])
            ):
                self._close_group(events)
                group = None
        if group is None:
            group = self._group = _Group()
        group.bursts.append(burst)
        if len(group.bursts) == 3:
            self._close_group(events)

    def _check_hold(self, now: int, events: list[SameMessage]) -> None:
        group = self._group
        if group is None or self._state != _HUNT:
            return
        if now - group.bursts[-1].end > self._hold:
            self._close_group(events)

    # ----------------------------------------------------------------- bursts to messages

    def _close_group(self, events: list[SameMessage]) -> None:
        group, self._group = self._group, None
        if group is None:
            return
        message = self._combine(group.bursts)
        if message is not None:
            log.info(
                "same_message_decoded",
                kind=message.kind,
                text=message.text,
                bursts=message.bursts,
                corrected=message.corrected,
            )
            events.append(message)

    def _reject(self, reason: str, **data: object) -> None:
        self.rejected += 1
        self.rejections.add(COMPONENT, reason)
        log.warning("same_burst_rejected", reason=reason, **data)

    def _combine(self, bursts: list[_Burst]) -> SameMessage | None:
        decided = self._decide(bursts)
        if isinstance(decided, SameMessage):
            return decided
        reason, text = decided
        if len(bursts) == 3 and reason in {"uncertain", "invalid_header", "incomplete_bursts"}:
            # One burst may be wrecked (a static crash, a fade): two clean bursts that agree
            # bit for bit are enough, as when only two are received.
            for pair in itertools.combinations(bursts, 2):
                fallback = self._decide(list(pair))
                if isinstance(fallback, SameMessage) and fallback.kind == "header":
                    return fallback
        self._reject(reason, text=text, bursts=len(bursts))
        return None

    def _decide(self, bursts: list[_Burst]) -> SameMessage | tuple[str, str]:
        """The message the bursts carry, or (reason, text) when they do not support one."""
        length = max(b.soft.shape[0] for b in bursts)
        total = np.zeros((length, 8))
        coverage = np.zeros(length, dtype=np.int64)
        for b in bursts:
            total[: b.soft.shape[0]] += b.soft
            coverage[: b.soft.shape[0]] += 1
        text_bytes = _pack(total)
        corrected = 0
        for b in bursts:
            corrected += _distance(b.hard, text_bytes[: b.soft.shape[0]])
        start, end = bursts[0].start, bursts[-1].end
        count = len(bursts)
        if _kind_of(text_bytes[:4]) == "eom":
            if text_bytes[:4] != b"NNNN":
                return "garbled_eom", text_bytes[:4].decode("latin-1")
            return SameMessage("eom", EOM, count, corrected, start, end)
        plus = text_bytes.find(b"+")
        cut = plus + 23 if plus >= 0 else length
        text = text_bytes[:cut].decode("latin-1")
        if count < 2:
            return "single_burst", text
        if cut > length or int(coverage[:cut].min()) < 2:
            return "incomplete_bursts", text
        if not HEADER_RE.fullmatch(text):
            return "invalid_header", text
        if self._residual_errors(bursts, total[:cut]) is None:
            return "uncertain", text
        return SameMessage("header", text, count, corrected, start, end)

    def _residual_errors(self, bursts: list[_Burst], total: FloatArray) -> float | None:
        """Expected number of wrong bits left in the combined header, or None when the
        bursts do not support it well enough.

        With three bursts each burst's bit error rate is estimated from its disagreements with
        the combined result; a bit is wrong after voting when two bursts are wrong at it, so
        ``bits * (p1 p2 + p1 p3 + p2 p3)`` errors are expected. Every bit must also have at
        least two bursts behind it. Two bursts must agree bit for bit, and both be clean
        (mean demodulator confidence at least ``min_quality``).
        """
        length = total.shape[0]
        hard = total > 0
        rates: list[float] = []
        agree = np.zeros(hard.shape, dtype=np.int64)
        for b in bursts:
            own = b.soft[:length] > 0
            n = own.shape[0]
            same = own == hard[:n]
            agree[:n] += same
            rates.append(float(np.count_nonzero(~same)) / max(n * 8, 1))
        if len(bursts) == 2:
            quality = min(float(np.mean(np.abs(b.soft[:length]))) for b in bursts)
            if rates[0] or rates[1] or quality < self._min_quality:
                return None
            return 0.0
        if int(agree.min()) < 2:
            return None
        p1, p2, p3 = rates[:3]
        expected = hard.size * (p1 * p2 + p1 * p3 + p2 * p3)
        return expected if expected <= self._max_residual else None


def decode(samples: npt.ArrayLike | bytes, rate: int = 22050) -> list[SameMessage]:
    """Decode a whole recording at once (a convenience over :class:`SameDecoder`)."""
    decoder = SameDecoder(rate)
    return decoder.feed(samples) + decoder.flush()


def header_wav(header: str, *, rate: int = 11025, attention: float = 2.0) -> bytes:
    """A short listening copy of a header's transmission as WAV bytes: the three bursts, a
    ``attention``-second attention signal and the EOM (the console's play button)."""
    out = io.BytesIO()
    options = EncoderOptions(rate=rate, attention=attention)
    write_wav(out, encode(header, options), rate)
    return out.getvalue()
