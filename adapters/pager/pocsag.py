"""POCSAG paging code (ITU-R M.584-2): encoder to bits and baseband audio, and a decoder.

Facts used (ITU-R Recommendation M.584-2, "Codes and formats for radio paging"):

* A transmission is a preamble of at least 576 bits of alternating 1/0, then batches. A batch
  is the synchronisation codeword 0x7CD215D8 followed by 8 frames of 2 codewords each.
* Every codeword is 32 bits sent most significant bit first: a flag bit (0 = address,
  1 = message), 20 information bits, 10 check bits of the BCH(31,21) code with generator
  x^10 + x^9 + x^8 + x^6 + x^5 + x^3 + 1, and an even parity bit over all 32.
* An address codeword carries the top 18 bits of the 21-bit pager address (the low 3 bits
  choose the frame it is sent in) and 2 function bits. Message codewords follow it directly,
  crossing frame and batch boundaries; unused codewords carry the idle word 0x7A89C197.
* Numeric messages use 4-bit characters (0-9, spare, U, space, hyphen, ']' and '[', as
  multimon-ng prints 0xA-0xF), alphanumeric messages 7-bit ASCII; both put each character's
  least significant bit first.
* 512, 1200 and 2400 bit/s. On the baseband (the modulation input of an FSK transmitter, the
  discriminator output of a receiver) a 1 is the low level and a 0 the high level, the
  polarity multimon-ng decodes without ``-i``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import IntEnum
from typing import Literal

import numpy as np
import numpy.typing as npt
import structlog

from adapters.modem.fsk import BitClock, FloatArray, as_float_samples
from gateway.errors import FrameError, Rejections

log = structlog.get_logger(__name__)

SYNC = 0x7CD215D8
IDLE = 0x7A89C197
PREAMBLE_BITS = 576
BAUD_RATES = (512, 1200, 2400)
MAX_ADDRESS = (1 << 21) - 1
_GENERATOR = 0b11101101001  # x^10 + x^9 + x^8 + x^6 + x^5 + x^3 + 1
NUMERIC_CHARS = "0123456789*U -]["
# Pagers show 0xE/0xF as brackets or parentheses; both are accepted when encoding.
_NUMERIC_ALIASES = {"(": "[", ")": "]"}
COMPONENT = "pocsag"
# Longest message the decoder assembles (about 570 alphanumeric characters).
MAX_MESSAGE_CODEWORDS = 200


class PocsagError(FrameError):
    """A page cannot be encoded, or a codeword cannot be decoded."""


class Function(IntEnum):
    """The two function bits of an address codeword (conventional use)."""

    NUMERIC = 0
    TONE_1 = 1
    TONE_2 = 2
    ALPHA = 3


def bch_check(data21: int) -> int:
    """The 10 check bits for 21 information bits (flag + 20)."""
    value = data21 << 10
    for shift in range(30, 9, -1):
        if value & (1 << shift):
            value ^= _GENERATOR << (shift - 10)
    return value


def codeword(data21: int) -> int:
    """A full 32-bit codeword: information, BCH check bits and even parity."""
    word = (data21 << 11) | (bch_check(data21) << 1)
    return word | (word.bit_count() & 1)


def syndrome(word: int) -> int:
    """Zero for a valid BCH(31,21) codeword (ignoring the parity bit)."""
    value = word >> 1
    for shift in range(30, 9, -1):
        if value & (1 << shift):
            value ^= _GENERATOR << (shift - 10)
    return value


def _make_single_error_table() -> dict[int, int]:
    table = {}
    for bit in range(1, 32):
        table[syndrome(1 << bit)] = 1 << bit
    return table


_SINGLE = _make_single_error_table()


def correct(word: int) -> tuple[int, int] | None:
    """The codeword with up to one bit error (and a parity error) corrected, and the number
    of bits changed; None when it is not correctable."""
    s = syndrome(word)
    if s == 0:
        fixed, changed = word, 0
    elif s in _SINGLE:
        fixed, changed = word ^ _SINGLE[s], 1
    else:
        return None
    if fixed.bit_count() & 1:
        fixed ^= 1
        changed += 1
    return fixed, changed


@dataclass(frozen=True, slots=True)
class Page:
    """One page: a 21-bit pager address (RIC), function bits and a message."""

    address: int
    message: str
    kind: Literal["numeric", "alpha", "tone"] = "alpha"
    function: int | None = None

    def __post_init__(self) -> None:
        if not 0 <= self.address <= MAX_ADDRESS:
            raise PocsagError(f"pager address {self.address} is outside 0-{MAX_ADDRESS}")
        if self.function is not None and not 0 <= self.function <= 3:
            raise PocsagError(f"function bits {self.function} are outside 0-3")
        if self.kind == "numeric":
            bad = [c for c in self.message if c not in NUMERIC_CHARS + "()"]
            if bad:
                raise PocsagError(
                    f"numeric page has character {bad[0]!r}; allowed: {NUMERIC_CHARS!r}"
                )
        elif self.kind == "alpha":
            for i, c in enumerate(self.message):
                if ord(c) > 0x7F:
                    raise PocsagError(f"alphanumeric page has non-ASCII {c!r} at {i}")
        elif self.kind == "tone":
            if self.message:
                raise PocsagError("a tone-only page carries no message")
        else:
            raise PocsagError(f"page kind {self.kind!r}; allowed: numeric, alpha, tone")

    @property
    def function_bits(self) -> int:
        if self.function is not None:
            return self.function
        return {"numeric": Function.NUMERIC, "alpha": Function.ALPHA}.get(
            self.kind, Function.TONE_1
        )

    def message_chunks(self) -> list[int]:
        """The 20-bit information fields of the message codewords."""
        bits: list[int] = []
        if self.kind == "numeric":
            for c in self.message:
                value = NUMERIC_CHARS.index(_NUMERIC_ALIASES.get(c, c))
                bits.extend((value >> i) & 1 for i in range(4))
            while len(bits) % 20:  # pad with spaces
                value = NUMERIC_CHARS.index(" ")
                bits.extend((value >> i) & 1 for i in range(4))
        elif self.kind == "alpha":
            for c in self.message:
                bits.extend((ord(c) >> i) & 1 for i in range(7))
            if len(bits) % 20:  # end of text, then zero padding
                bits.extend((0x04 >> i) & 1 for i in range(7))
            bits.extend([0] * (-len(bits) % 20))
        chunks = []
        for i in range(0, len(bits), 20):
            value = 0
            for bit in bits[i : i + 20]:
                value = (value << 1) | bit
            chunks.append(value)
        return chunks


def encode_codewords(pages: Iterable[Page]) -> list[int]:
    """Batches (without preamble) carrying ``pages``: each batch is SYNC + 16 codewords."""
    slots: list[int] = []  # codewords after the batch syncs are removed
    for page in pages:
        frame = page.address & 7
        # Move to the page's frame: the next slot in that frame, here or in a later batch.
        while len(slots) % 16 != frame * 2 and len(slots) % 16 != frame * 2 + 1:
            slots.append(IDLE)
        slots.append(codeword(((page.address >> 3) << 2) | page.function_bits))
        slots.extend(codeword((1 << 20) | chunk) for chunk in page.message_chunks())
    slots.append(IDLE)  # at least one idle word ends the last message
    while len(slots) % 16:
        slots.append(IDLE)
    words: list[int] = []
    for i in range(0, len(slots), 16):
        words.append(SYNC)
        words.extend(slots[i : i + 16])
    return words


def encode_bits(pages: Iterable[Page], *, preamble: int = PREAMBLE_BITS) -> npt.NDArray[np.int8]:
    """The whole transmission as bits: preamble then batches."""
    words = encode_codewords(pages)
    head = [(i + 1) % 2 for i in range(preamble)]  # 1, 0, 1, 0 ...
    body = np.array(words, dtype=">u4").view(np.uint8)
    bits = np.unpackbits(body)
    out: npt.NDArray[np.int8] = np.concatenate((np.array(head, dtype=np.uint8), bits)).astype(
        np.int8
    )
    return out


def modulate(
    bits: npt.ArrayLike,
    *,
    baud: int,
    rate: int = 22050,
    amplitude: float = 0.5,
    invert: bool = False,
) -> FloatArray:
    """NRZ baseband for an FSK transmitter's modulation input: 1 low, 0 high (or inverted)."""
    if baud not in BAUD_RATES:
        raise PocsagError(f"POCSAG rate {baud} bit/s; allowed: 512, 1200, 2400")
    data = np.asarray(bits, dtype=np.int8)
    n = np.arange((data.size * rate + baud - 1) // baud, dtype=np.int64)
    index = np.minimum((n * baud) // rate, data.size - 1)
    level = np.where(data[index] != 0, -amplitude, amplitude)
    if invert:
        level = -level
    out: FloatArray = level.astype(np.float64)
    return out


def encode_audio(
    pages: Iterable[Page], *, baud: int = 1200, rate: int = 22050, amplitude: float = 0.5
) -> FloatArray:
    """Pages to baseband audio ready for a paging transmitter (or multimon-ng)."""
    return modulate(encode_bits(pages), baud=baud, rate=rate, amplitude=amplitude)


# --------------------------------------------------------------------------- decoder


@dataclass(frozen=True, slots=True)
class DecodedPage:
    address: int
    function: int
    numeric: str
    alpha: str
    corrected: int


class PocsagDecoder:
    """Bits to pages: hunts the sync word, checks and corrects codewords (one bit each),
    assembles address + message codewords. ``feed(bits)`` returns pages completed."""

    def __init__(self) -> None:
        self.rejections = Rejections()
        self._reg = 0
        self._in_batch = False
        self._count = 0
        self._word = 0
        self._wbits = 0
        self._current: tuple[int, int] | None = None
        self._chunks: list[int] = []
        self._corrected = 0
        self._frame_index = 0

    def feed(self, bits: Iterable[int]) -> list[DecodedPage]:
        pages: list[DecodedPage] = []
        for bit in bits:
            if not self._in_batch:
                self._reg = ((self._reg << 1) | (bit & 1)) & 0xFFFFFFFF
                if (self._reg ^ SYNC).bit_count() <= 2:
                    self._in_batch = True
                    self._count = 0
                    self._word = 0
                    self._wbits = 0
                continue
            self._word = (self._word << 1) | (bit & 1)
            self._wbits += 1
            if self._wbits < 32:
                continue
            word, self._word, self._wbits = self._word, 0, 0
            self._on_codeword(self._count, word, pages)
            self._count += 1
            if self._count == 16:
                self._in_batch = False
                self._reg = 0
        return pages

    def flush(self) -> list[DecodedPage]:
        pages: list[DecodedPage] = []
        self._end_message(pages)
        return pages

    def _on_codeword(self, slot: int, word: int, pages: list[DecodedPage]) -> None:
        fixed = correct(word)
        if fixed is None:
            self.rejections.add(COMPONENT, "uncorrectable_codeword")
            self._end_message(pages)
            return
        word, changed = fixed
        if word == IDLE:
            self._end_message(pages)
            return
        if word >> 31 == 0:
            self._end_message(pages)
            address = (((word >> 13) & 0x3FFFF) << 3) | (slot // 2)
            self._current = (address, (word >> 11) & 3)
            self._corrected = changed
            return
        if self._current is not None:
            self._chunks.append((word >> 11) & 0xFFFFF)
            self._corrected += changed
            if len(self._chunks) >= MAX_MESSAGE_CODEWORDS:
                self._end_message(pages)  # a runaway message: deliver what we have

    def _end_message(self, pages: list[DecodedPage]) -> None:
        if self._current is None:
            return
        address, function = self._current
        bits: list[int] = []
        for chunk in self._chunks:
            bits.extend((chunk >> (19 - i)) & 1 for i in range(20))
        numeric = "".join(
            NUMERIC_CHARS[sum(bits[i + k] << k for k in range(4))]
            for i in range(0, len(bits) - 3, 4)
        ).rstrip(" ")
        alpha_chars = []
        for i in range(0, len(bits) - 6, 7):
            value = sum(bits[i + k] << k for k in range(7))
            if value in (0x00, 0x04):
                break
            alpha_chars.append(chr(value))
        pages.append(DecodedPage(address, function, numeric, "".join(alpha_chars), self._corrected))
        self._current = None
        self._chunks = []
        self._corrected = 0


class PocsagReceiver:
    """Baseband audio to pages (for loopback tests of a paging chain)."""

    def __init__(self, *, baud: int = 1200, rate: int = 22050, invert: bool = False) -> None:
        if baud not in BAUD_RATES:
            raise PocsagError(f"POCSAG rate {baud} bit/s; allowed: 512, 1200, 2400")
        self._spb = rate / baud
        self._window = max(1, round(self._spb))
        self._clock = BitClock(self._spb)
        self._tail = np.zeros(self._window)
        self._sign = 1.0 if invert else -1.0  # 1 is the low level
        self._decoder = PocsagDecoder()
        self.rejections = self._decoder.rejections

    def feed(self, samples: npt.ArrayLike | bytes) -> list[DecodedPage]:
        x = as_float_samples(samples)
        if x.size == 0:
            return []
        w = self._window
        sums = np.concatenate(([0.0], np.cumsum(np.concatenate((self._tail, x)))))
        window = sums[w + 1 : w + x.size + 1] - sums[1 : x.size + 1]
        abs_sums = np.concatenate(([0.0], np.cumsum(np.abs(np.concatenate((self._tail, x))))))
        level = abs_sums[w + 1 : w + x.size + 1] - abs_sums[1 : x.size + 1]
        self._tail = x[-w:] if x.size >= w else np.concatenate((self._tail, x))[-w:]
        d = self._sign * window / np.maximum(level, 1e-9)
        soft = self._clock.feed(d)
        return self._decoder.feed(int(v > 0) for v in soft.values.tolist())

    def flush(self) -> list[DecodedPage]:
        return self._decoder.flush()


def chunked(samples: FloatArray, size: int) -> Iterator[FloatArray]:
    for i in range(0, samples.size, size):
        yield samples[i : i + size]
