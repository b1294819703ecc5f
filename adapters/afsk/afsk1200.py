"""Bell 202 AFSK at 1200 bit/s (mark 1200 Hz, space 2200 Hz): the APRS / AX.25 packet modem.

:class:`Afsk1200Modulator` turns frames (raw AX.25 bytes, as :mod:`adapters.kiss.ax25` builds
them) into audio: TXDELAY flags, the HDLC frame (bit stuffing, FCS), NRZI, phase-continuous
AFSK. :class:`Afsk1200Demodulator` is the streaming receiver: matched-filter discriminator and
tracking bit clock (:mod:`adapters.afsk.fsk`), NRZI decoding, HDLC deframing. When a frame
fails its FCS, the receiver may try flipping its least certain bits one at a time (``repair``;
the equivalent of direwolf's ``-F 1``) and keeps a repaired frame only if its FCS checks and
its address field is well formed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from fractions import Fraction

import numpy as np
import numpy.typing as npt
import structlog

from adapters.afsk.fsk import FloatArray, FskDemodulator, FskModulator, as_float_samples
from adapters.afsk.hdlc import (
    FLAG,
    MAX_FRAME,
    MIN_FRAME,
    HdlcDecoder,
    HdlcFrame,
    check_fcs,
    frame_bits,
    nrzi_encode,
)

log = structlog.get_logger(__name__)

BAUD = 1200
MARK = 1200
SPACE = 2200
# Longest stretch of line bits kept for repair: the longest frame with worst-case stuffing.
_MAX_CANDIDATE_BITS = 8 * (MAX_FRAME + 2) * 6 // 5 + 16


class Afsk1200Modulator:
    """Frames to Bell 202 audio.

    ``txdelay`` is the time of flags sent before the first frame (keying up the transmitter
    and letting the receiver's squelch open), ``txtail`` the flags after the last one.
    """

    def __init__(
        self,
        rate: int = 44100,
        *,
        amplitude: float = 0.5,
        txdelay: float = 0.3,
        txtail: float = 0.03,
    ) -> None:
        self.rate = rate
        self._modem = FskModulator(
            rate,
            mark=Fraction(MARK),
            space=Fraction(SPACE),
            baud=Fraction(BAUD),
            amplitude=amplitude,
        )
        self._lead = max(1, round(txdelay * BAUD / 8))
        self._tail = max(1, round(txtail * BAUD / 8))
        self._level = 1

    def modulate(self, frames: Iterable[bytes]) -> FloatArray:
        """One transmission carrying ``frames`` back to back (flags between them)."""
        chunks: list[npt.NDArray[np.int8]] = []
        frames = list(frames)
        for i, data in enumerate(frames):
            lead = self._lead if i == 0 else 1
            tail = self._tail if i == len(frames) - 1 else 0
            chunks.append(frame_bits(data, leading_flags=lead, trailing_flags=max(tail, 1)))
        if not chunks:
            return np.zeros(0)
        levels, self._level = nrzi_encode(np.concatenate(chunks), self._level)
        return self._modem.modulate(levels)


def modulate(frames: Iterable[bytes], rate: int = 44100, **options: float) -> FloatArray:
    """Audio of one transmission of ``frames`` (see :class:`Afsk1200Modulator`)."""
    return Afsk1200Modulator(rate, **options).modulate(frames)


def _plausible_ax25(data: bytes) -> bool:
    """A repaired frame must at least look like AX.25: address bytes are shifted ASCII."""
    if len(data) < MIN_FRAME:
        return False
    end = -1
    for i in range(0, min(len(data), 70), 7):
        if data[i + 6] & 1 if i + 6 < len(data) else True:
            end = i + 7
            break
    if end < 14:
        return False
    for i in range(end):
        if i % 7 == 6:
            continue
        if data[i] & 1:
            return False
        char = data[i] >> 1
        if not (0x30 <= char <= 0x39 or 0x41 <= char <= 0x5A or char == 0x20):
            return False
    return True


class Afsk1200Demodulator:
    """Streaming Bell 202 receiver: ``feed(samples)`` returns the frames (raw AX.25 bytes,
    no FCS) completed by those samples; memory stays bounded whatever the stream length."""

    def __init__(self, rate: int = 44100, *, repair: int = 0) -> None:
        self.rate = rate
        self._demod = FskDemodulator(rate, mark=MARK, space=SPACE, baud=BAUD, band=(1000, 2400))
        self._hdlc = HdlcDecoder()
        self._prev = 1.0
        self._repair = repair
        # Raw (pre-NRZI) soft values since the last flag, for repair.
        self._soft: list[float] = []
        self._reference = 1.0
        self._ones = 0
        self.frames = 0
        self.repaired = 0

    def feed(self, samples: npt.ArrayLike | bytes) -> list[HdlcFrame]:
        bits = self._demod.feed(as_float_samples(samples))
        values = bits.values.tolist()
        if not values:
            return []
        out: list[HdlcFrame] = []
        prev = self._prev
        decoded: list[int] = []
        for v in values:
            decoded.append(1 if (v > 0) == (prev > 0) else 0)
            if self._repair:
                self._track_for_repair(v, prev, decoded[-1], out)
            prev = v
        self._prev = prev
        frames = self._hdlc.feed(decoded)
        seen = {f.data for f in out}
        out = [f for f in out if f.data not in seen or f.repaired] + [
            f for f in frames if f.data not in seen
        ]
        self.frames += len(out)
        return out

    def _track_for_repair(self, v: float, prev: float, bit: int, out: list[HdlcFrame]) -> None:
        """Keep the raw soft values of the bits since the last flag; on a flag, if the frame in
        between fails its FCS, try flipping its least certain line bits one at a time."""
        self._soft.append(v)
        if len(self._soft) > _MAX_CANDIDATE_BITS:
            del self._soft[: len(self._soft) - _MAX_CANDIDATE_BITS]  # no flag for too long
        if bit:
            self._ones += 1
            return
        if self._ones == 6:
            candidate = self._soft[:-8]
            reference = self._reference
            self._reference = v
            self._soft = []
            self._ones = 0
            if 8 * (MIN_FRAME + 2) <= len(candidate) <= 8 * (MAX_FRAME + 2) * 6 // 5:
                frame = self._try_repair(reference, candidate)
                if frame is not None:
                    out.append(frame)
            return
        _ = prev
        self._ones = 0

    def _try_repair(self, reference: float, raw: list[float]) -> HdlcFrame | None:
        levels = [reference > 0] + [r > 0 for r in raw]
        data = _unstuff_octets(_nrzi(levels))
        if data is not None and check_fcs(data):
            return None  # the plain decoder has it
        order = np.argsort(np.abs(np.asarray(raw)))[: self._repair]
        for index in order.tolist():
            flipped = levels.copy()
            flipped[index + 1] = not flipped[index + 1]
            data = _unstuff_octets(_nrzi(flipped))
            if data is not None and check_fcs(data) and _plausible_ax25(data[:-2]):
                self.repaired += 1
                log.debug("afsk_frame_repaired", bit=index, length=len(data) - 2)
                return HdlcFrame(data[:-2], repaired=1)
        return None


def _nrzi(levels: list[bool]) -> list[int]:
    return [1 if a == b else 0 for a, b in itertools.pairwise(levels)]


def _unstuff_octets(bits: list[int]) -> bytes | None:
    """Remove stuffed zeros and pack octets; None if the bits do not make whole octets."""
    out: list[int] = []
    ones = 0
    for bit in bits:
        if bit:
            ones += 1
            if ones > 5:
                return None
            out.append(1)
        else:
            if ones == 5:
                ones = 0
                continue
            ones = 0
            out.append(0)
    if len(out) % 8 or not out:
        return None
    packed = np.packbits(np.asarray(out, dtype=np.uint8), bitorder="little").tobytes()
    if len(packed) > 2 and packed[0] == FLAG:
        return None
    return packed
