"""Bell 202 AFSK at 1200 bit/s (mark 1200 Hz, space 2200 Hz): the APRS / AX.25 packet modem.

:class:`Afsk1200Modulator` turns frames (raw AX.25 bytes, as :mod:`adapters.kiss.ax25` builds
them) into audio: TXDELAY flags, the HDLC frame (bit stuffing, FCS), NRZI, phase-continuous
AFSK. :class:`Afsk1200Demodulator` is the streaming receiver: band-pass and matched-filter
discriminator, feed-forward bit clock (:mod:`adapters.modem.fsk`), NRZI decoding, HDLC
deframing. The discriminator does not depend on the signal level and the clock has no loop to
lock, so level steps, gaps and a sound-card clock off by a percent or two do not cost the
first bits of a frame. Two bit clocks, each with two ways of deciding bits (see ``SLICERS``
and ``DECISIONS``), feed four deframers, like direwolf's multiple slicers; one way decides
each bit together with its neighbours from the phase-continuous signal (multiple-symbol
non-coherent detection), the other bit by bit from the discriminator. When a frame fails
its FCS, the receiver may try flipping its least certain bits one at a time (``repair``; the
equivalent of direwolf's ``-F 1``) and two at a time (``pairs``), only ever bits far less
certain than the frame's typical bit, and keeps a repaired frame only if its FCS checks and
its address field is well formed.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable
from fractions import Fraction

import numpy as np
import numpy.typing as npt
import structlog

from adapters.modem.fsk import (
    FloatArray,
    FskDemodulator,
    FskModulator,
    SoftBits,
    SpectralLineClock,
    as_float_samples,
)
from adapters.modem.hdlc import (
    COMPONENT as HDLC_COMPONENT,
)
from adapters.modem.hdlc import (
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
from gateway.errors import Rejections

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
# decision offset in bits); see :class:`adapters.modem.fsk.SpectralLineClock`. The long window
# hears the weakest signals; the short one follows a sound-card clock off by 2 to 3 %, where
# the long one's view of the bit-rate line smears.
Slicer = tuple[float, float]
SLICERS: tuple[Slicer, ...] = ((32.0, 0.0), (16.0, 0.0))
# How each clock's bits are decided, each way with its own deframer:
# "sequence": each bit decided with the two bits either side of it, over every tone sequence
# they could form, from the filters' complex outputs and the phase continuity of the signal
# (multiple-symbol detection, see :meth:`_Slicer._sequence`): 1 to 1.5 dB better than deciding
# bits one by one, and better with twist, up to a sender clock error of about 1 % (beyond,
# the tones drift in phase across the five bits; "level" carries on to 3 %);
# "level": the sign of d against a threshold that follows the mark and space levels;
# "tones": each filter's magnitude scaled between its own recent peak and valley, then mark
# minus space (direwolf's per-tone AGC): holds up when one tone is far louder (twist).
Decision = str
DECISIONS: tuple[Decision, ...] = ("sequence", "level")
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
# "sequence" decisions weigh every tone sequence of this many bits on either side of the bit
# decided (2: 32 sequences of 5 bits; 3 gained under 0.1 dB on the bench for half the speed).
_SPAN = 2
# Rows of the signals the bit clocks carry to the decisions: the two filters' complex outputs
# ("tones", "sequence") and the phasor exp(j (w_mark - w_space) n) ("sequence").
_MARK_RE, _MARK_IM, _SPACE_RE, _SPACE_IM, _TURN_RE, _TURN_IM = range(6)
# Two slicers' copies of one frame end within this many bits of each other.
_DUPLICATE_BITS = 64


class _Slicer:
    """One way of deciding a clock's bits, with its own NRZI decoder, deframer and repair."""

    def __init__(
        self,
        decision: Decision,
        *,
        rejections: Rejections,
        repair: int,
        pairs: int,
        primary: bool,
        boundary: float = 0.0,
    ) -> None:
        if decision not in ("level", "tones", "sequence"):
            msg = f"unknown bit decision {decision!r}; expected 'level', 'tones' or 'sequence'"
            raise ValueError(msg)
        self.decision = decision
        self.segments = FlagSegmenter(rejections=rejections if primary else None)
        self.primary = primary
        self.rejections = rejections
        self.prev = 1.0
        self.repair = repair
        self.pairs = pairs
        self.mark_level, self.space_level = 0.5, -0.5
        # Peak and valley of each filter's magnitude at the decisions (mark, space).
        self.peaks = [0.0, 0.0]
        self.valleys = [0.0, 0.0]
        self.repaired = 0
        # "sequence": the turn between the filters' phases over the time (``boundary``, in
        # radians) from a bit's decision sample back to its end, and the last bits' complex
        # filter outputs and turns, held for the bits still to come on either side.
        self._boundary = complex(np.exp(1j * boundary))
        self._held = np.zeros((3, _SPAN * 2), dtype=np.complex128)
        self._held[2] = 1.0
        self._held_positions = np.zeros(_SPAN * 2, dtype=np.int64)

    def feed(self, bits: SoftBits) -> list[tuple[HdlcFrame, int]]:
        """Frames completed by the clock's ``bits``, each with the sample where it ended."""
        if bits.values.size == 0:
            return []
        positions = bits.positions
        if self.decision == "tones":
            carried = bits.carried
            values_array = self._tones(
                np.hypot(carried[_MARK_RE], carried[_MARK_IM]),
                np.hypot(carried[_SPACE_RE], carried[_SPACE_IM]),
            )
        elif self.decision == "sequence":
            values_array, positions = self._sequence(bits)
            if values_array.size == 0:
                return []
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
                out.append((frame, int(positions[segment.end])))
        return out

    def _sequence(self, bits: SoftBits) -> tuple[FloatArray, npt.NDArray[np.int64]]:
        """Multiple-symbol non-coherent detection of continuous-phase FSK.

        The mark and space filters' complex outputs over consecutive bits belong to one
        signal whose phase runs on without a jump where the tone changes; how far the other
        filter's phase has turned at a bit's end is known from the time of that end. For
        each bit, every tone sequence over it and ``_SPAN`` bits either side is scored by the
        magnitude of the sum of its filters' outputs, each turned by the phase its tone
        changes imply: only the sequence sent adds up in phase. The bit's value is the best
        score with a mark there minus the best with a space, over the bits' total magnitude
        (level independent, as ``d``). Against deciding each bit on its own this gains 1 to
        1.5 dB of SNR, and it keeps each tone's own scale, so twist hurts it less. The
        decisions lag ``_SPAN`` bits behind the clock.
        """
        carried = bits.carried
        turn = (carried[_TURN_RE] + 1j * carried[_TURN_IM]) * self._boundary
        fresh = np.stack(
            (
                carried[_MARK_RE] + 1j * carried[_MARK_IM],
                carried[_SPACE_RE] + 1j * carried[_SPACE_IM],
                turn / np.maximum(np.abs(turn), 1e-12),
            )
        )
        span = _SPAN
        z = np.concatenate((self._held, fresh), axis=1)
        pos = np.concatenate((self._held_positions, bits.positions))
        self._held, self._held_positions = z[:, -2 * span :], pos[-2 * span :]
        count = z.shape[1] - 2 * span  # bits decided now
        if count <= 0:
            return np.zeros(0), pos[:0]
        # Every tone sequence over the window, built a bit at a time from shared prefixes:
        # (sum so far, phase turn so far, last tone, middle tone) per branch.
        branches: list[tuple[npt.NDArray[np.complex128], npt.NDArray[np.complex128], int, int]]
        branches = [
            (z[1 - tone, :count], np.ones(count, dtype=np.complex128), tone, tone)
            for tone in (0, 1)
        ]
        for i in range(1, 2 * span + 1):
            # At the end of bit i - 1 the space filter's phase lags the mark filter's by the
            # turn there: a change of tone carries the phase over with that turn.
            r = z[2, i - 1 : i - 1 + count]
            turns = (r, np.conj(r))  # from space to mark, from mark to space
            outputs = (z[1, i : i + count], z[0, i : i + count])
            grown = []
            for total, turn, last, middle in branches:
                for tone in (0, 1):
                    t = turn if tone == last else turn * turns[last]
                    mid = tone if i == span else middle
                    grown.append((total + outputs[tone] * t, t, tone, mid))
            branches = grown
        best = [np.zeros(count), np.zeros(count)]  # best metric with the middle bit space, mark
        for total, _, _, middle in branches:
            np.maximum(best[middle], total.real**2 + total.imag**2, out=best[middle])
        np.sqrt(best[0], out=best[0])
        np.sqrt(best[1], out=best[1])
        energy = np.zeros(count)
        for i in range(2 * span + 1):
            energy += np.abs(z[0, i : i + count]) + np.abs(z[1, i : i + count])
        values: FloatArray = (best[1] - best[0]) / np.maximum(energy, 1e-12)
        return values, pos[span : span + count]

    def _frame(self, segment: Segment) -> HdlcFrame | None:
        """The frame between two flags, if its FCS checks (after repair, if enabled)."""
        data = unstuff_octets(segment.bits)
        if data is not None and len(data) >= MIN_FRAME + 2:
            if check_fcs(data):
                return HdlcFrame(data[:-2])
            if self.primary:
                self.rejections.add(HDLC_COMPONENT, "bad_fcs")
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

    def _tones(self, mark: FloatArray, space: FloatArray) -> FloatArray:
        """Mark minus space, each filter's magnitude first scaled to [-0.5, 0.5] between its
        own peak (fast attack, slow decay) and valley."""
        (peak_m, peak_s), (valley_m, valley_s) = self.peaks, self.valleys
        attack, decay = _ATTACK, _DECAY
        out: list[float] = []
        for m, s in zip(mark.tolist(), space.tolist(), strict=True):
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
        self._sequence = "sequence" in decisions
        # exp(j (w_mark - w_space) n), with n the samples fed so far, repeats every ``period``
        # samples: one table of it, and n counted modulo its length.
        self._turn_rate = 2 * np.pi * (MARK - SPACE) / rate
        period = rate // math.gcd(rate, SPACE - MARK)
        turns = np.exp(1j * self._turn_rate * np.arange(period))
        self._turns = np.stack((turns.real, turns.imag))
        self._fed = 0
        count = len(decisions)
        # A bit ends where the filters' window, centred on the bit at the decision sample,
        # starts to reach past it: (window - 1 - samples per bit) / 2 samples before it.
        end = (self._demod.window - 1 - rate / BAUD) / 2
        # What the primary slicer refuses and bad samples: for the adapter to count.
        self.rejections = Rejections()
        self._slicers = [
            _Slicer(
                decision,
                rejections=self.rejections,
                repair=repair,
                pairs=pairs,
                primary=i == 0,
                boundary=-self._turn_rate * end,
            )
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
            self.rejections.add(COMPONENT, "non_finite_samples")
            log.warning("afsk_samples_rejected", reason="non_finite", count=bad)
            x = np.where(np.isfinite(x), x, 0.0)
        z_m, z_s = self._demod.correlations(np.clip(x, -_CLIP, _CLIP))
        if z_m.size == 0:
            return []
        mag_m, mag_s = np.abs(z_m), np.abs(z_s)
        d = self._demod.normalise(mag_m, mag_s)
        carry: FloatArray | None = None
        if self._sequence:
            period = self._turns.shape[1]
            turn = self._turns[:, (np.arange(z_m.size) + self._fed) % period]
            carry = np.concatenate((np.stack((z_m.real, z_m.imag, z_s.real, z_s.imag)), turn))
            self._fed = (self._fed + z_m.size) % period
        elif self._tones:
            carry = np.stack((z_m.real, z_m.imag, z_s.real, z_s.imag))
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
