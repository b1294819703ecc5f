"""Binary FSK modulation and demodulation shared by the SAME and Bell 202 modems (numpy, sans-IO).

The modulator is phase-continuous and keeps its bit clock exact over any length of signal: the
first sample of bit ``k`` is ``ceil(k * rate / baud)``, computed with rational arithmetic, so a
SAME burst at 520 5/6 bit/s does not drift whatever the sample rate.

The demodulator is a non-coherent matched filter: for every input sample it correlates the last
bit period of signal with the mark and the space tone (I and Q, so the carrier phase does not
matter) and forms the discriminator ``d = (|M| - |S|) / (|M| + |S|)`` in [-1, 1]. ``d`` does not
depend on the signal level, ramps linearly across a bit transition and is largest in magnitude
at the end of each bit window. A Gardner timing-error detector in a second-order loop samples
``d`` once per bit at that peak and tracks a bit clock off by a few percent. The output is one
*soft bit* per bit period (positive = mark, larger = more certain) with the sample index where it
was taken. Work is done per chunk with numpy; only the loop over bits runs in Python.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]

# Loop gains of the bit-clock tracker (proportional and integral, per sample of timing error).
_KP = 0.25
_KI = 0.01
# How far the tracked bit period may stray from nominal (covers a +-2 % clock error and more).
_MAX_CLOCK_ERROR = 0.04


def as_float_samples(samples: npt.ArrayLike | bytes) -> FloatArray:
    """Samples as float64 in [-1, 1]: bytes are signed 16-bit little-endian PCM."""
    if isinstance(samples, bytes | bytearray | memoryview):
        raw = bytes(samples)
        if len(raw) % 2:
            msg = f"PCM data has an odd number of bytes ({len(raw)}); expected 16-bit samples"
            raise ValueError(msg)
        return np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    array = np.asarray(samples)
    if array.ndim != 1:
        msg = f"expected mono samples (a 1-D array), got shape {array.shape}"
        raise ValueError(msg)
    if array.dtype == np.int16:
        return array.astype(np.float64) / 32768.0
    if np.issubdtype(array.dtype, np.integer):
        msg = f"integer samples must be int16, got {array.dtype}"
        raise ValueError(msg)
    return array.astype(np.float64, copy=False)


def to_pcm16(samples: FloatArray) -> bytes:
    """Float samples in [-1, 1] as signed 16-bit little-endian PCM (clipped)."""
    scaled = np.clip(np.rint(samples * 32767.0), -32768, 32767).astype("<i2")
    return scaled.tobytes()


class FskModulator:
    """Phase-continuous binary FSK: ``modulate(bits)`` returns the next stretch of signal.

    Successive calls continue the same waveform (phase and bit clock carry over), so a frame
    can be produced piecewise. ``silence(seconds)`` inserts a gap and resets nothing but time.
    """

    def __init__(
        self,
        rate: int,
        *,
        mark: Fraction,
        space: Fraction,
        baud: Fraction,
        amplitude: float = 0.5,
    ) -> None:
        if rate <= 0:
            msg = f"sample rate must be positive, got {rate}"
            raise ValueError(msg)
        if max(mark, space) * 2 >= rate:
            msg = f"sample rate {rate} Hz is too low for a {float(max(mark, space)):.1f} Hz tone"
            raise ValueError(msg)
        self.rate = rate
        self.mark = mark
        self.space = space
        self.baud = baud
        self.amplitude = amplitude
        self._samples_per_bit = Fraction(rate) / baud
        self._bits = 0  # bits sent since the clock was (re)started
        self._emitted = 0  # samples emitted since then
        self._phase = 0.0

    def _boundary(self, bit: int) -> int:
        value = bit * self._samples_per_bit
        return -((-value.numerator) // value.denominator)  # ceil

    def modulate(self, bits: npt.ArrayLike) -> FloatArray:
        """The samples carrying ``bits`` (1 = mark, 0 = space), continuing the waveform."""
        data = np.asarray(bits, dtype=np.int8).ravel()
        if data.size == 0:
            return np.zeros(0)
        end = self._boundary(self._bits + data.size)
        n = np.arange(self._emitted, end, dtype=np.int64)
        # Bit index of each sample, exactly: floor(n * baud / rate).
        num, den = (self.baud / self.rate).numerator, (self.baud / self.rate).denominator
        index = (n * num) // den - self._bits
        freq = np.where(data[index] != 0, float(self.mark), float(self.space))
        step = 2.0 * math.pi * freq / self.rate
        phase = self._phase + np.cumsum(step) - step
        self._phase = float((phase[-1] + step[-1]) % (2.0 * math.pi))
        self._bits += data.size
        self._emitted = end
        out: FloatArray = self.amplitude * np.sin(phase)
        return out

    def silence(self, seconds: float) -> FloatArray:
        """``seconds`` of silence; the next bit starts a fresh clock after it."""
        count = round(seconds * self.rate)
        self.restart()
        return np.zeros(max(count, 0))

    def restart(self) -> None:
        """Start the bit clock afresh (after a gap), keeping the phase continuous."""
        self._bits = 0
        self._emitted = 0


@dataclass(frozen=True, slots=True)
class SoftBits:
    """Bits out of the demodulator: ``values[i] > 0`` is a mark, ``|values[i]|`` its confidence
    (at most 1); ``positions[i]`` is the input sample index where the bit was sampled.
    ``carried[:, i]`` are other signals sampled at the same instant (see
    :meth:`SpectralLineClock.feed`); empty unless asked for."""

    values: FloatArray
    positions: npt.NDArray[np.int64]
    carried: FloatArray = field(default_factory=lambda: np.zeros((0, 0)))


class BitClock:
    """Bit-clock recovery over a discriminator signal ``d`` in [-1, 1] (sign = bit value).

    A Gardner timing-error detector in a second-order loop: it samples ``d`` once per bit,
    where the matched filter peaks, and follows a clock off by up to a few percent. Only
    about one bit period of history is kept between calls.
    """

    def __init__(self, samples_per_bit: float, *, kp: float = _KP, ki: float = _KI) -> None:
        self.spb = samples_per_bit
        self._kp = kp
        self._ki = ki
        self._period = samples_per_bit
        self._history = math.ceil(samples_per_bit) + 4
        self._d_tail: list[float] = [0.0] * self._history
        self._d_base = -self._history  # sample index of _d_tail[0]
        self._next = samples_per_bit  # sample index (fractional) of the next bit decision
        self._prev = 0.0
        self._wander = 0.0
        self.samples_in = 0

    @property
    def clock_error(self) -> float:
        """Current estimate of the bit-clock error, as a fraction (0.01 = 1 % slow)."""
        return self._period / self.spb - 1.0

    def relax(self) -> None:
        """Pull the bit-clock estimate back to nominal (call between transmissions)."""
        self._period = self.spb

    def feed(self, d: FloatArray) -> SoftBits:
        """Take the next stretch of ``d``; return the bits whose decision point it reached."""
        self.samples_in += d.size
        buf = self._d_tail + d.tolist()
        base = self._d_base
        end = base + len(buf)  # one past the last sample index available
        half = self.spb / 2.0
        nominal = self.spb
        low, high = nominal * (1 - _MAX_CLOCK_ERROR), nominal * (1 + _MAX_CLOCK_ERROR)
        t = self._next
        period = self._period
        prev = self._prev
        kp, ki = self._kp, self._ki
        scale = nominal / 4.0
        wander = self._wander
        lock_scale = 8.0 / nominal
        values: list[float] = []
        positions: list[int] = []
        while True:
            at = int(t + 0.5)
            if at >= end:
                break
            y = buf[at - base]
            mid = buf[int(t - half + 0.5) - base]
            # Gardner detector, in samples, > 0 when the decision is late: for a full swing
            # d ramps by 2 over one bit, so (y - prev) * mid * spb / 4 is the offset. Clipped
            # so that one noisy bit cannot throw the clock.
            err = (y - prev) * mid * scale
            err = max(-half, min(half, err))
            # Gear shift: while the timing error is large (acquiring, or a clock far off) the
            # loop runs up to twice as fast; once locked it settles to the base gains.
            wander += 0.05 * (abs(err) - wander)
            gear = 1.0 + 1.0 * min(1.0, wander * lock_scale)
            period = max(low, min(high, period - ki * gear * err))
            t += period - kp * gear * err
            values.append(y)
            positions.append(at)
            prev = y
        self._next = t
        self._period = period
        self._prev = prev
        self._wander = wander
        self._d_tail = buf[-self._history :]
        self._d_base = end - len(self._d_tail)
        return SoftBits(np.asarray(values, dtype=np.float64), np.asarray(positions, dtype=np.int64))


class SpectralLineClock:
    """Feed-forward bit-clock recovery over a discriminator ``d`` in [-1, 1].

    ``d`` ramps across each bit transition and peaks in magnitude at the end of each bit, so
    ``d**2`` carries a spectral line at the bit rate whose phase marks the decision points
    (square-law timing recovery, Oerder and Meyr). The line is measured over a window of
    ``window_bits`` bits *centred* on each decision, which costs that half window of latency
    but needs no loop to acquire: there is nothing to pull in or to lose lock on in a long flag
    preamble, after a level step or a gap, and a clock error of a few percent only turns the
    measured phase slowly, which the centred window follows. ``offset`` (in bits) shifts every
    decision, for running several slicers side by side. All the work is numpy per chunk; only
    about one window of history is kept between calls.
    """

    def __init__(
        self, rate: int, baud: int, *, window_bits: float = 32.0, offset: float = 0.0
    ) -> None:
        if rate <= 0 or baud <= 0 or rate < 4 * baud:
            msg = f"need a sample rate of at least 4 samples per bit, got {rate} Hz at {baud} bit/s"
            raise ValueError(msg)
        self.spb = rate / baud
        self._rate = rate
        self._baud = baud
        self._half = max(2, round(window_bits * self.spb / 2))
        self._offset = offset
        self._d = np.zeros(0)  # pending samples, the first one at index _base
        self._carry = np.zeros((0, 0))  # the carried signals over the same samples
        self._base = 0
        self._theta = 0.0  # unwrapped line phase (cycles) at the last decided sample
        self._next_k: int | None = None  # index of the next bit to decide
        self._drift: list[tuple[int, float]] = []  # (sample, theta), recent
        # exp(-2 pi j n / spb) repeats every rate / gcd(rate, baud) samples: one table of it.
        self._cycle = rate // math.gcd(rate, baud)
        k = np.arange(self._cycle, dtype=np.int64)
        self._phasors = np.exp(-2j * np.pi * ((k * baud % rate) / rate))
        self.samples_in = 0

    @property
    def latency(self) -> int:
        """Samples of input the clock holds back before deciding a bit."""
        return 2 * self._half + 1

    @property
    def clock_error(self) -> float:
        """Current estimate of the bit-clock error, as a fraction (0.01 = 1 % slow)."""
        if len(self._drift) < 2:
            return 0.0
        (n0, theta0), (n1, theta1) = self._drift[0], self._drift[-1]
        bits = (n1 - n0) / self.spb
        return -(theta1 - theta0) / bits if bits else 0.0

    def feed(self, d: FloatArray, carry: FloatArray | None = None) -> SoftBits:
        """Take the next stretch of ``d``; return the bits whose decision point it reached.

        ``carry`` (shape ``(k, d.size)``, the same ``k`` on every call) are other signals
        aligned with ``d``, sampled at the same instants into ``SoftBits.carried``.
        """
        self.samples_in += d.size
        buf = np.concatenate((self._d, d))
        if carry is not None:
            if self._carry.shape[0] != carry.shape[0]:
                self._carry = np.zeros((carry.shape[0], self._d.size))
            carried_buf = np.concatenate((self._carry, carry), axis=1)
        else:
            carried_buf = np.zeros((0, buf.size))
        base = self._base
        half = self._half
        ready = buf.size - 2 * half - 1  # samples whose centred window is complete
        if ready <= 0:
            self._d, self._carry = buf, carried_buf
            return SoftBits(np.zeros(0), np.zeros(0, dtype=np.int64), np.zeros((0, 0)))
        index = np.arange(base, base + buf.size, dtype=np.int64)
        line = (buf * buf) * self._phasors[index % self._cycle]
        sums = np.cumsum(line)
        window = sums[2 * half : 2 * half + ready].copy()
        window[1:] -= sums[: ready - 1]
        # Line phase in cycles at samples base + half ... + ready - 1, unwrapped.
        theta = np.angle(window) * (1 / (2 * np.pi))
        jumps = np.diff(theta, prepend=self._theta)
        theta -= np.cumsum(np.rint(jumps))
        self._theta = float(theta[-1])
        centre = index[half : half + ready]
        # The line's phase is -n0 / spb for peaks of d**2 at n0 + k * spb: decision k falls
        # where n / spb + theta(n) - offset reaches k.
        u = centre / self.spb + theta - self._offset
        u = np.maximum.accumulate(u)
        first = math.floor(u[0]) + 1 if self._next_k is None else self._next_k
        last = math.floor(u[-1])
        values: FloatArray = np.zeros(0)
        positions = np.zeros(0, dtype=np.int64)
        carried: FloatArray = np.zeros((carried_buf.shape[0], 0))
        if last >= first:
            ks = np.arange(first, last + 1, dtype=np.float64)
            at = np.searchsorted(u, ks, side="left")  # first sample with u >= k
            at = np.clip(at, 1, ready - 1)
            u0, u1 = u[at - 1], u[at]
            step = np.where(u1 > u0, u1 - u0, 1.0)
            f = np.clip((ks - u0) / step, 0.0, 1.0)
            d0, d1 = buf[half + at - 1], buf[half + at]
            values = d0 + f * (d1 - d0)
            c0, c1 = carried_buf[:, half + at - 1], carried_buf[:, half + at]
            carried = c0 + f * (c1 - c0)
            positions = centre[at]
            self._next_k = last + 1
        elif self._next_k is None:
            self._next_k = first
        # Line phase every half window over the last few windows, for ``clock_error``.
        picks = range(ready - 1, -1, -half)
        points = [(int(centre[i]), float(theta[i])) for i in reversed(picks)]
        self._drift = [*self._drift, *points][-8:]
        keep = 2 * half + 1
        self._d = buf[buf.size - keep :]
        self._carry = carried_buf[:, buf.size - keep :]
        self._base = base + buf.size - keep
        return SoftBits(values, positions, carried)


def bandpass_taps(low: float, high: float, rate: int, *, transition: float = 800.0) -> FloatArray:
    """A linear-phase FIR band-pass (windowed sinc, Blackman window): flat between ``low``
    and ``high``, rolling off over about ``transition`` Hz outside them."""
    count = math.ceil(5.5 * rate / transition) | 1  # Blackman: ~5.5/N transition width
    n = np.arange(count) - (count - 1) / 2
    lo, hi = (low - transition / 2) / rate, (high + transition / 2) / rate
    taps = 2 * hi * np.sinc(2 * hi * n) - 2 * lo * np.sinc(2 * lo * n)
    out: FloatArray = taps * np.blackman(count)
    return out


class StreamingFir:
    """An FIR filter applied chunk by chunk (the last ``len(taps) - 1`` samples carried)."""

    def __init__(self, taps: FloatArray) -> None:
        self.taps = taps
        self._tail = np.zeros(taps.size - 1)
        self._spectra: dict[int, npt.NDArray[np.complex128]] = {}

    def __call__(self, x: FloatArray) -> FloatArray:
        buf = np.concatenate((self._tail, x))
        taps = self.taps.size
        self._tail = buf[buf.size - (taps - 1) :]
        if x.size < 4 * taps:
            direct: FloatArray = np.convolve(buf, self.taps, mode="valid")
            return direct
        size = 1 << (buf.size + taps - 2).bit_length()
        kernel = self._spectra.get(size)
        if kernel is None:
            kernel = self._spectra[size] = np.fft.rfft(self.taps, size)
        spectrum = np.fft.rfft(buf, size) * kernel
        full = np.fft.irfft(spectrum, size)
        out: FloatArray = full[taps - 1 : buf.size]
        return out


class FskDemodulator:
    """Streaming non-coherent FSK demodulator with bit-clock recovery.

    ``feed(samples)`` takes any number of samples (float in [-1, 1], int16, or 16-bit PCM
    bytes) and returns the soft bits completed so far. Memory stays bounded: only about two
    bit periods of history are kept between calls. ``band`` (low, high) in Hz puts a
    linear-phase band-pass in front of the matched filters: their sinc-shaped response lets
    through too much broadband noise on its own. ``window`` is the length of the matched
    filters in bits (1.0: one bit period).
    """

    def __init__(
        self,
        rate: int,
        *,
        mark: float,
        space: float,
        baud: float,
        kp: float = _KP,
        ki: float = _KI,
        band: tuple[float, float] | None = None,
        window: float = 1.0,
    ) -> None:
        if rate <= 0:
            msg = f"sample rate must be positive, got {rate}"
            raise ValueError(msg)
        if max(mark, space) * 2 >= rate:
            msg = f"sample rate {rate} Hz is too low for a {max(mark, space):.1f} Hz tone"
            raise ValueError(msg)
        self.rate = rate
        self._filter = StreamingFir(bandpass_taps(*band, rate)) if band is not None else None
        self.spb = rate / baud
        self.window = max(2, round(self.spb * window))
        self._w_mark = 2.0 * math.pi * mark / rate
        self._w_space = 2.0 * math.pi * space / rate
        self._ph_mark = 0.0
        self._ph_space = 0.0
        # exp(-j w k) for k = 0..n-1, computed once and rotated to each chunk's start phase.
        self._base_mark = np.zeros(0, dtype=np.complex128)
        self._base_space = np.zeros(0, dtype=np.complex128)
        self._tail_mark = np.zeros(self.window, dtype=np.complex128)
        self._tail_space = np.zeros(self.window, dtype=np.complex128)
        self.clock = BitClock(self.spb, kp=kp, ki=ki)

    @property
    def samples_in(self) -> int:
        return self.clock.samples_in

    @property
    def delay(self) -> int:
        """Samples from a tone's end to the end of its matched-filter response."""
        taps = self._filter.taps.size if self._filter is not None else 1
        return taps + self.window

    @property
    def clock_error(self) -> float:
        return self.clock.clock_error

    def relax(self) -> None:
        self.clock.relax()

    def magnitudes(self, samples: npt.ArrayLike | bytes) -> tuple[FloatArray, FloatArray]:
        """Update the matched filters with ``samples``; return the mark and the space filter's
        output magnitude (over the last window) for each of them."""
        mark, space = self.correlations(samples)
        return np.abs(mark), np.abs(space)

    def correlations(
        self, samples: npt.ArrayLike | bytes
    ) -> tuple[npt.NDArray[np.complex128], npt.NDArray[np.complex128]]:
        """Update the matched filters with ``samples``; return the mark and the space filter's
        complex output (the last window against ``exp(-j w n)``, ``n`` counted from the first
        sample ever fed) for each of them: its phase is the tone's phase at sample 0."""
        x = as_float_samples(samples)
        n = x.size
        if n == 0:
            return np.zeros(0, dtype=np.complex128), np.zeros(0, dtype=np.complex128)
        if self._filter is not None:
            x = self._filter(x)
        if self._base_mark.size < n:
            k = np.arange(n, dtype=np.float64)
            self._base_mark = np.exp(-1j * self._w_mark * k)
            self._base_space = np.exp(-1j * self._w_space * k)
        osc_m = self._base_mark[:n] * complex(math.cos(self._ph_mark), -math.sin(self._ph_mark))
        osc_s = self._base_space[:n] * complex(math.cos(self._ph_space), -math.sin(self._ph_space))
        self._ph_mark = (self._ph_mark + self._w_mark * n) % (2.0 * math.pi)
        self._ph_space = (self._ph_space + self._w_space * n) % (2.0 * math.pi)
        return self._window_sums(x * osc_m, mark=True), self._window_sums(x * osc_s, mark=False)

    def discriminator(self, samples: npt.ArrayLike | bytes) -> FloatArray:
        """Update the matched filters with ``samples`` and return ``d`` for each of them."""
        mag_m, mag_s = self.magnitudes(samples)
        return self.normalise(mag_m, mag_s)

    def normalise(self, mag_m: FloatArray, mag_s: FloatArray) -> FloatArray:
        """``d = (|M| - |S|) / (|M| + |S|)`` from the two filters' magnitudes."""
        total = mag_m + mag_s
        out: FloatArray = (mag_m - mag_s) / np.maximum(total, 1e-9 * self.window)
        return out

    def _window_sums(
        self, products: npt.NDArray[np.complex128], *, mark: bool
    ) -> npt.NDArray[np.complex128]:
        tail = self._tail_mark if mark else self._tail_space
        w = self.window
        buf = np.concatenate((tail, products))
        sums = np.concatenate(([0j], np.cumsum(buf)))
        n = products.size
        window_sums = sums[w + 1 : w + n + 1] - sums[1 : n + 1]
        new_tail = buf[-w:].copy()
        if mark:
            self._tail_mark = new_tail
        else:
            self._tail_space = new_tail
        out: npt.NDArray[np.complex128] = window_sums
        return out

    def feed(self, samples: npt.ArrayLike | bytes) -> SoftBits:
        """Demodulate ``samples``; return the bits whose decision point they reached."""
        return self.clock.feed(self.discriminator(samples))
