"""Bell 202 AFSK at 1200 bit/s (mark 1200 Hz, space 2200 Hz): the APRS / AX.25 packet modem.

:class:`Afsk1200Modulator` turns frames (raw AX.25 bytes, as :mod:`adapters.kiss.ax25` builds
them) into audio: TXDELAY flags, the HDLC frame (bit stuffing, FCS), NRZI, phase-continuous
AFSK. :class:`Afsk1200Demodulator` is the streaming receiver: band-pass and matched-filter
discriminator, feed-forward bit clock (:mod:`adapters.afsk.fsk`), NRZI decoding, HDLC
deframing. The discriminator does not depend on the signal level and the clock has no loop to
lock, so level steps, gaps and a sound-card clock off by a percent or two do not cost the
first bits of a frame. Two bit clocks, each with two ways of deciding bits (see ``SLICERS``
and ``DECISIONS``), feed four deframers, like direwolf's multiple slicers. When a frame fails
its FCS, the receiver may try flipping its least certain bits one at a time (``repair``; the
equivalent of direwolf's ``-F 1``) and two at a time (``pairs``), only ever bits far less
certain than the frame's typical bit, and keeps a repaired frame only if its FCS checks and
its address field is well formed.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from fractions import Fraction

import numpy as np
import numpy.typing as npt
import structlog

from adapters.afsk.fsk import (
    FloatArray,
    FskDemodulator,
    FskModulator,
    SoftBits,
    SpectralLineClock,
    as_float_samples,
)
from adapters.afsk.hdlc import (
    COMPONENT as HDLC_COMPONENT,
)
from adapters.afsk.hdlc import (
    FLAG,
    MAX_FRAME,
    MIN_FRAME,
    FlagSegmenter,
    HdlcFrame,
    Segment,
    check_fcs,
    frame_bits,
    nrzi_encode,
    unstuff_octets,
)
from gateway.metrics import INPUT_REJECTED

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


# Front end of the receiver, chosen on the noise ladder of bench/bench_audio.py: a band-pass
# whose -6 dB edges sit 300 Hz outside the tones (900 and 2500 Hz) and matched filters 1.1 bit
# long. Both are narrower than a textbook one-bit matched filter and gain about 1 dB of SNR
# in white noise by keeping more noise out than the inter-symbol interference they let in.
BAND = (1300.0, 2100.0)
WINDOW = 1.1
# The bit clocks run side by side on the one discriminator, each as (clock window in bits,
# decision offset in bits); see :class:`adapters.afsk.fsk.SpectralLineClock`. The long window
# hears the weakest signals; the short one follows a sound-card clock off by 2 to 3 %, where
# the long one's view of the bit-rate line smears.
Slicer = tuple[float, float]
SLICERS: tuple[Slicer, ...] = ((32.0, 0.0), (16.0, 0.0))
# How each clock's bits are decided, each way with its own deframer:
# "level": the sign of d against a threshold that follows the mark and space levels;
# "tones": each filter's magnitude scaled between its own recent peak and valley, then mark
# minus space (direwolf's per-tone AGC): holds up when one tone is far louder (twist).
Decision = str
DECISIONS: tuple[Decision, ...] = ("level", "tones")
# Per bit: how fast the "level" threshold follows the mark and space levels, and how fast the
# "tones" peak and valley trackers attack and decay. Slow enough not to follow noise, fast
# enough to settle within a 0.3 s preamble.
_BALANCE_RATE = 0.005
_ATTACK = 0.5
_DECAY = 0.003
# A bit may be flipped in repair only if its certainty is below this share of the frame's
# median: on the bench, the bits a correct repair flipped stayed below 0.33 of it, those of
# the chance FCS matches that invented frames from frames with certain wrong bits above 0.5.
_DOUBTFUL = 0.4
# Samples beyond this magnitude (float input far out of [-1, 1]) are clipped to it.
_CLIP = 1e6
COMPONENT = "afsk1200"
# Two slicers' copies of one frame end within this many bits of each other.
_DUPLICATE_BITS = 64


class _Slicer:
    """One way of deciding a clock's bits, with its own NRZI decoder, deframer and repair."""

    def __init__(self, decision: Decision, *, repair: int, pairs: int, primary: bool) -> None:
        if decision not in ("level", "tones"):
            msg = f"unknown bit decision {decision!r}; expected 'level' or 'tones'"
            raise ValueError(msg)
        self.decision = decision
        self.segments = FlagSegmenter(count=primary)
        self.primary = primary
        self.prev = 1.0
        self.repair = repair
        self.pairs = pairs
        self.mark_level, self.space_level = 0.5, -0.5
        # Peak and valley of each filter's magnitude at the decisions (mark, space).
        self.peaks = [0.0, 0.0]
        self.valleys = [0.0, 0.0]
        self.repaired = 0

    def feed(self, bits: SoftBits) -> list[tuple[HdlcFrame, int]]:
        """Frames completed by the clock's ``bits``, each with the sample where it ended."""
        if bits.values.size == 0:
            return []
        if self.decision == "tones":
            values_array = self._tones(bits.carried)
        else:
            values_array = self._balance(bits.values)
        signs = values_array > 0
        levels = np.concatenate(([self.prev > 0], signs))
        decoded = (levels[1:] == levels[:-1]).astype(np.int8)
        self.prev = float(values_array[-1])
        out: list[tuple[HdlcFrame, int]] = []
        for segment in self.segments.feed(decoded, values_array):
            frame = self._frame(segment)
            if frame is not None:
                out.append((frame, int(bits.positions[segment.end])))
        return out

    def _frame(self, segment: Segment) -> HdlcFrame | None:
        """The frame between two flags, if its FCS checks (after repair, if enabled)."""
        data = unstuff_octets(segment.bits)
        if data is not None and len(data) >= MIN_FRAME + 2:
            if check_fcs(data):
                return HdlcFrame(data[:-2])
            if self.primary:
                INPUT_REJECTED.inc(component=HDLC_COMPONENT, reason="bad_fcs")
                log.debug("hdlc_frame_rejected", reason="bad_fcs")
        if self.repair or self.pairs:
            return self._try_repair(segment)
        return None

    def _balance(self, values: FloatArray) -> FloatArray:
        """Move the decision threshold to halfway between the recent mark and space levels:
        with twist (one tone louder, as after de-emphasis) the quieter tone's bits sit
        nearer 0 in ``d`` and a fixed threshold at 0 would favour the louder one."""
        mark, space, rate = self.mark_level, self.space_level, _BALANCE_RATE
        out: list[float] = []
        for v in values.tolist():
            threshold = 0.5 * (mark + space)
            if v > threshold:
                mark += rate * (v - mark)
            else:
                space += rate * (v - space)
            out.append(v - threshold)
        self.mark_level, self.space_level = mark, space
        return np.asarray(out)

    def _tones(self, carried: FloatArray) -> FloatArray:
        """Mark minus space, each filter's magnitude first scaled to [-0.5, 0.5] between its
        own peak (fast attack, slow decay) and valley."""
        (peak_m, peak_s), (valley_m, valley_s) = self.peaks, self.valleys
        attack, decay = _ATTACK, _DECAY
        out: list[float] = []
        for m, s in zip(carried[0].tolist(), carried[1].tolist(), strict=True):
            peak_m += (attack if m > peak_m else decay) * (m - peak_m)
            valley_m += (attack if m < valley_m else decay) * (m - valley_m)
            peak_s += (attack if s > peak_s else decay) * (s - peak_s)
            valley_s += (attack if s < valley_s else decay) * (s - valley_s)
            swing_m, swing_s = peak_m - valley_m, peak_s - valley_s
            if swing_m > 0 and swing_s > 0:
                out.append(
                    (m - 0.5 * (peak_m + valley_m)) / swing_m
                    - (s - 0.5 * (peak_s + valley_s)) / swing_s
                )
            else:
                out.append(0.0)
        self.peaks, self.valleys = [peak_m, peak_s], [valley_m, valley_s]
        return np.asarray(out)

    def _try_repair(self, segment: Segment) -> HdlcFrame | None:
        """Flip the least certain line bits, one at a time then (``pairs``) two at a time;
        keep the first result whose FCS checks and whose addresses look like AX.25."""
        count = segment.bits.size
        certainty = np.abs(segment.soft)
        order = np.argsort(certainty)[: max(self.repair, self.pairs)]
        # Only a doubtful bit may be flipped: one far less certain than the frame's typical
        # bit. Noise leaves its wrong bits doubtful; a frame whose wrong bits look certain
        # (interference, a collision) is beyond repair, and flipping its merely
        # less-than-perfect bits would only find a chance FCS match: an invented frame.
        limit = _DOUBTFUL * float(np.median(certainty))
        order = order[certainty[order] < limit].tolist()
        tries: list[tuple[int, ...]] = [(i,) for i in order[: self.repair]]
        tries += list(itertools.combinations(order[: self.pairs], 2))
        for flips in tries:
            bits = segment.bits.copy()
            for index in flips:
                # A line bit that changes tone changes the NRZI bit it ends and the next one.
                bits[index] ^= 1
                if index + 1 < count:
                    bits[index + 1] ^= 1
            data = unstuff_octets(bits)
            if data is None or len(data) < MIN_FRAME + 2 or data[0] == FLAG:
                continue
            if check_fcs(data) and _plausible_ax25(data[:-2]):
                self.repaired += 1
                log.debug("afsk_frame_repaired", bits=flips, length=len(data) - 2)
                return HdlcFrame(data[:-2], repaired=len(flips))
        return None


class Afsk1200Demodulator:
    """Streaming Bell 202 receiver: ``feed(samples)`` returns the frames (raw AX.25 bytes,
    no FCS) completed by those samples; memory stays bounded whatever the stream length.

    One matched-filter discriminator feeds one or more feed-forward bit clocks (``slicers``),
    whose bits are decided in one or more ways (``decisions``), each with its own deframer; a
    frame that more than one of them recovers is passed on once. ``repair`` is the number of
    least certain bits of a failed frame to try flipping one at a time, ``pairs`` the number
    among which every pair is tried (0: off). ``flush()`` at the end of a recording.
    """

    def __init__(
        self,
        rate: int = 44100,
        *,
        repair: int = 0,
        pairs: int = 0,
        slicers: tuple[Slicer, ...] = SLICERS,
        decisions: tuple[Decision, ...] = DECISIONS,
    ) -> None:
        if not slicers or not decisions:
            raise ValueError("at least one slicer and one bit decision are needed")
        if repair < 0 or pairs < 0:
            msg = f"repair and pairs must be 0 (off) or a number of bits, got {repair}, {pairs}"
            raise ValueError(msg)
        self.rate = rate
        self._demod = FskDemodulator(
            rate, mark=MARK, space=SPACE, baud=BAUD, band=BAND, window=WINDOW
        )
        self._clocks = [
            SpectralLineClock(rate, BAUD, window_bits=window, offset=offset)
            for window, offset in slicers
        ]
        self._tones = "tones" in decisions
        count = len(decisions)
        self._slicers = [
            _Slicer(decision, repair=repair, pairs=pairs, primary=i == 0)
            for i, decision in enumerate(decisions * len(slicers))
        ]
        self._per_clock = count
        self._repair = repair
        self._recent: list[tuple[bytes, int]] = []  # (frame, end sample) lately passed on
        self._window = round(_DUPLICATE_BITS * rate / BAUD)
        self.frames = 0  # frames passed on
        self.repaired = 0  # of which recovered by flipping bits

    @property
    def held_bits(self) -> int:
        """Line bits held since the last flag (bounded by the longest frame, whatever the
        input)."""
        return max(s.segments.held for s in self._slicers)

    def flush(self) -> list[HdlcFrame]:
        """At the end of a recording: the frames still inside the receiver's latency (the
        filters and half a clock window, some 20 ms), by feeding that much silence."""
        latency = self._demod.delay + max(c.latency for c in self._clocks)
        return self.feed(np.zeros(latency + round(16 * self.rate / BAUD)))

    def feed(self, samples: npt.ArrayLike | bytes) -> list[HdlcFrame]:
        x = as_float_samples(samples)
        if x.size and not np.isfinite(x).all():
            # Float input can carry NaN or infinity (a broken source): they would poison the
            # filters' state for good. Treat them as silence and say so.
            bad = int(np.count_nonzero(~np.isfinite(x)))
            INPUT_REJECTED.inc(component=COMPONENT, reason="non_finite_samples")
            log.warning("afsk_samples_rejected", reason="non_finite", count=bad)
            x = np.where(np.isfinite(x), x, 0.0)
        mag_m, mag_s = self._demod.magnitudes(np.clip(x, -_CLIP, _CLIP))
        if mag_m.size == 0:
            return []
        d = self._demod.normalise(mag_m, mag_s)
        carry = np.stack((mag_m, mag_s)) if self._tones else None
        found: list[tuple[HdlcFrame, int]] = []
        for i, clock in enumerate(self._clocks):
            bits = clock.feed(d, carry)
            for slicer in self._slicers[i * self._per_clock : (i + 1) * self._per_clock]:
                found += slicer.feed(bits)
        if not found:
            return []
        # Sort by end, unrepaired first, so each frame is passed on once, in order.
        found.sort(key=lambda item: (item[1], item[0].repaired))
        out: list[HdlcFrame] = []
        recent = self._recent
        for frame, end in found:
            if any(data == frame.data and abs(end - at) <= self._window for data, at in recent):
                continue
            recent.append((frame.data, end))
            out.append(frame)
        horizon = found[-1][1] - 2 * self._window
        self._recent = [(data, at) for data, at in recent if at >= horizon]
        self.frames += len(out)
        self.repaired += sum(1 for f in out if f.repaired)
        return out
