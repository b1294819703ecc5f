"""Baseband audio decoders on a noise ladder, side by side with multimon-ng and direwolf.

For each SNR step the same seeded audio goes to our decoder and to the referees; the table
gives the share of messages decoded exactly. SNR is the power of the signal over the power of
white Gaussian noise across the whole band at the sample rate (22050 Hz), so in-band SNR is
higher. Two channel conditions: clean (noise only) and impaired (noise, a per-message
sound-card clock error of up to +-1 % shifting tones and bit rate together, and a level change
of up to -10 dB between the bursts or frames of one transmission). Speed is decoder CPU time
on one core against the duration of the audio (the referees' is wall time of their process).

AFSK1200 runs our receiver plain, with one-bit repair and with two-bit repair, beside
multimon-ng, direwolf's atest and atest -F 1, and counts the wrong frames each of ours emits.
A last table counts frames emitted where there is none to find: ten minutes of white noise,
and AX.25 frames each with three wrong line bits (beyond any repair) at 12 and 4 dB.

Run: ``python -m bench audio`` (about two to three minutes).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tempfile
import time
import wave
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path

import numpy as np
import structlog

from adapters.afsk import afsk1200
from adapters.eas import same_modem as sm
from adapters.kiss.ax25 import Frame
from adapters.modem import hdlc
from adapters.modem.fsk import FskModulator, to_pcm16
from gateway.errors import FrameError

RATE = 22050
SEED = 20261129
SAME_STEPS = (-7, -6, -5, -4, -3, -2, -1, 0, 1, 2, 3, 4)
SAME_IMPAIRED_STEPS = (-3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10)
AFSK_STEPS = (-3, -2, -1, 0, 1, 2, 3, 4, 5, 6, 8, 10)
AFSK_IMPAIRED_STEPS = (0, 2, 4, 6, 8, 10, 12, 14, 16, 18)
SAME_TRIALS = 25
AFSK_TRIALS = 100
# Our receiver as it runs plain, with one-bit repair (as direwolf -F 1), and with two-bit
# repair too; each is compared with the referee run the same way.
OURS: dict[str, dict[str, int]] = {
    "borderlink": {},
    "borderlink -F1": {"repair": 12},
    "borderlink -F2": {"repair": 12, "pairs": 8},
}
AFSK_PAIRS = (
    ("borderlink", "multimon-ng"),
    ("borderlink", "direwolf atest"),
    ("borderlink -F1", "atest -F 1"),
    ("borderlink -F2", "atest -F 1"),
)
NOISE_SECONDS = 600
CORRUPTED_FRAMES = 2000
CORRUPTED_SNRS = (12.0, 4.0)
LEVEL_CHANGE_DB = 10.0


@dataclass
class Ladder:
    name: str
    steps: Sequence[int]
    rates: dict[str, list[float]]
    speeds: dict[str, list[float]]
    wrong: dict[str, int] = field(default_factory=dict)
    pairs: Sequence[tuple[str, str]] = (("borderlink", "multimon-ng"),)


def _noise(x: np.ndarray, snr_db: float, power: float, rng: np.random.Generator) -> np.ndarray:
    return x + rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), size=x.size)


def _scale(x: np.ndarray) -> np.ndarray:
    peak = float(np.abs(x).max()) or 1.0
    return x * (0.9 / peak)


# ----------------------------------------------------------------------------- SAME


def _same_header(rng: np.random.Generator, i: int) -> str:
    count = int(rng.integers(1, 7))
    places = "-".join(
        f"{int(rng.integers(0, 10))}{int(rng.integers(1, 100000)):05d}" for _ in range(count)
    )
    event = ("TOR", "SVR", "FFW", "RWT", "CEM", "EVI")[i % 6]
    return f"ZCZC-WXR-{event}-{places}+0045-{i % 366 + 1:03d}{i % 24:02d}{i % 60:02d}-KBOX/NWS-"


def _same_audio(
    headers: list[str], snr: float, rng: np.random.Generator, *, impaired: bool
) -> np.ndarray:
    pieces = []
    for header in headers:
        error = float(rng.uniform(-0.01, 0.01)) if impaired else 0.0
        gen_rate = round(RATE * (1 + error))
        modem = FskModulator(gen_rate, mark=sm.MARK, space=sm.SPACE, baud=sm.BAUD, amplitude=1.0)
        bits = sm.burst_bits(header)
        transmission = [np.zeros(RATE)]
        for _ in range(3):
            gain = 10 ** (float(rng.uniform(-LEVEL_CHANGE_DB, 0)) / 20) if impaired else 1.0
            transmission += [gain * modem.modulate(bits), modem.silence(1.0)]
        pieces.append(np.concatenate([*transmission, np.zeros(2 * RATE)]))
    # Noise is set against the unit-amplitude tone (power 0.5): with level changes the weaker
    # bursts sit that much lower in the noise.
    x = np.concatenate(pieces)
    return _noise(x, snr, 0.5, rng)


def _run_ours_same(x: np.ndarray) -> tuple[set[str], float]:
    decoder = sm.SameDecoder(RATE)
    pcm = np.frombuffer(to_pcm16(x), dtype="<i2")
    started = time.process_time()
    found = []
    for at in range(0, pcm.size, 32768):
        found += decoder.feed(pcm[at : at + 32768])
    found += decoder.flush()
    return {m.text for m in found if m.kind == "header"}, time.process_time() - started


def _run_multimon(path: Path, demod: str, pattern: str) -> tuple[list[str], float]:
    started = time.perf_counter()
    out = subprocess.run(
        ["multimon-ng", "-q", "-c", "-a", demod, "-t", "raw", str(path)],
        capture_output=True,
        text=True,
        check=False,
        timeout=600,
    ).stdout
    elapsed = time.perf_counter() - started
    return [m.group(1) for m in re.finditer(pattern, out)], elapsed


def same_ladder(tmp: Path, *, impaired: bool) -> Ladder:
    rng = np.random.default_rng(SEED + impaired)
    have_multimon = shutil.which("multimon-ng") is not None
    rates: dict[str, list[float]] = {"borderlink": [], "multimon-ng": []}
    speeds: dict[str, list[float]] = {"borderlink": [], "multimon-ng": []}
    wrong: dict[str, int] = {}
    steps = SAME_IMPAIRED_STEPS if impaired else SAME_STEPS
    for step, snr in enumerate(steps):
        headers = [_same_header(rng, step * 1000 + i) for i in range(SAME_TRIALS)]
        x = _scale(_same_audio(headers, snr, rng, impaired=impaired))
        seconds = x.size / RATE
        ours, cpu = _run_ours_same(x)
        rates["borderlink"].append(len(ours & set(headers)) / len(headers))
        speeds["borderlink"].append(seconds / cpu)
        wrong["borderlink"] = wrong.get("borderlink", 0) + len(ours - set(headers))
        if have_multimon:
            path = tmp / "same.raw"
            path.write_bytes(to_pcm16(x))
            lines, wall = _run_multimon(path, "EAS", r"EAS: (ZCZC-\S*(?: +\S*)*)")
            got = {line.rstrip() for line in lines}
            rates["multimon-ng"].append(len(got & set(headers)) / len(headers))
            speeds["multimon-ng"].append(seconds / wall)
    if not have_multimon:
        del rates["multimon-ng"], speeds["multimon-ng"]
    name = "SAME, impaired channel" if impaired else "SAME, clean channel"
    return Ladder(name, steps, rates, speeds, wrong)


# ----------------------------------------------------------------------------- AFSK1200


def _afsk_frames(rng: np.random.Generator, count: int, step: int) -> list[Frame]:
    frames = []
    for i in range(count):
        text = f"VE3BLK-{i % 16}>APZBLK,WIDE1-1:>step {step} frame {i:03d} " + "".join(
            chr(int(c)) for c in rng.integers(0x41, 0x5B, 30)
        )
        frames.append(Frame.parse_monitor(text))
    return frames


def _afsk_audio(
    frames: list[Frame], snr: float, rng: np.random.Generator, *, impaired: bool
) -> np.ndarray:
    pieces = []
    for frame in frames:
        error = float(rng.uniform(-0.01, 0.01)) if impaired else 0.0
        gain = 10 ** (float(rng.uniform(-LEVEL_CHANGE_DB, 0)) / 20) if impaired else 1.0
        audio = afsk1200.modulate([frame.to_bytes()], round(RATE * (1 + error)), amplitude=1.0)
        pieces += [np.zeros(RATE // 4), gain * audio]
    return _noise(np.concatenate([*pieces, np.zeros(RATE // 4)]), snr, 0.5, rng)


def _run_atest(path: Path, *options: str) -> tuple[list[str], float]:
    started = time.perf_counter()
    out = subprocess.run(
        ["atest", *options, str(path)],
        capture_output=True,
        text=True,
        errors="replace",
        check=False,
        timeout=600,
    ).stdout
    elapsed = time.perf_counter() - started
    clean = re.sub(r"\x1b\[[0-9;]*m", "", out)
    lines = re.findall(r"^\[\d+(?:\.\d+)?\] (.*)$", clean, flags=re.MULTILINE)
    return [line.rstrip() for line in lines], elapsed


def _write_wav(path: Path, x: np.ndarray) -> None:
    with wave.open(str(path), "wb") as out_wav:
        out_wav.setnchannels(1)
        out_wav.setsampwidth(2)
        out_wav.setframerate(RATE)
        out_wav.writeframes(to_pcm16(x))


def _run_ours_afsk(x: np.ndarray, options: dict[str, int]) -> tuple[list[bytes], float]:
    pcm = np.frombuffer(to_pcm16(x), dtype="<i2")
    demod = afsk1200.Afsk1200Demodulator(
        RATE, repair=options.get("repair", 0), pairs=options.get("pairs", 0)
    )
    started = time.process_time()
    got = []
    for at in range(0, pcm.size, 32768):
        got += demod.feed(pcm[at : at + 32768])
    got += demod.flush()
    return [f.data for f in got], time.process_time() - started


def _monitor(data: bytes) -> str:
    try:
        return str(Frame.from_bytes(data))
    except FrameError:
        return f"<not AX.25: {data.hex()}>"


def afsk_ladder(tmp: Path, *, impaired: bool) -> Ladder:
    rng = np.random.default_rng(SEED + 10 + impaired)
    tools = {"multimon-ng": shutil.which("multimon-ng"), "atest": shutil.which("atest")}
    names = [*OURS, *(n for n in ("multimon-ng",) if tools["multimon-ng"])]
    if tools["atest"]:
        names += ["direwolf atest", "atest -F 1"]
    rates: dict[str, list[float]] = {n: [] for n in names}
    speeds: dict[str, list[float]] = {n: [] for n in names}
    wrong: dict[str, int] = dict.fromkeys(OURS, 0)
    steps = AFSK_IMPAIRED_STEPS if impaired else AFSK_STEPS
    for snr in steps:
        frames = _afsk_frames(rng, AFSK_TRIALS, snr)
        want = {str(f) for f in frames}
        x = _scale(_afsk_audio(frames, snr, rng, impaired=impaired))
        seconds = x.size / RATE
        for label, options in OURS.items():
            got, cpu = _run_ours_afsk(x, options)
            decoded = {_monitor(data) for data in got}
            rates[label].append(len(decoded & want) / len(want))
            wrong[label] += len(decoded - want)
            speeds[label].append(seconds / cpu)
        if "multimon-ng" in rates:
            raw = tmp / "afsk.raw"
            raw.write_bytes(to_pcm16(x))
            started = time.perf_counter()
            out = subprocess.run(
                ["multimon-ng", "-q", "-c", "-A", "-a", "AFSK1200", "-t", "raw", str(raw)],
                capture_output=True,
                text=True,
                errors="replace",
                check=False,
                timeout=600,
            ).stdout
            wall = time.perf_counter() - started
            got_mm = {line.removeprefix("APRS: ") for line in out.splitlines() if "APRS: " in line}
            rates["multimon-ng"].append(len(got_mm & want) / len(want))
            speeds["multimon-ng"].append(seconds / wall)
        if tools["atest"]:
            wav = tmp / "afsk.wav"
            _write_wav(wav, x)
            for label, flags in (("direwolf atest", ()), ("atest -F 1", ("-F", "1"))):
                heard, wall = _run_atest(wav, *flags)
                rates[label].append(len(set(heard) & want) / len(want))
                speeds[label].append(seconds / wall)
    name = "AFSK1200, impaired channel" if impaired else "AFSK1200, clean channel"
    return Ladder(name, steps, rates, speeds, wrong, AFSK_PAIRS)


def _corrupted_frames(rng: np.random.Generator, count: int, snr: float) -> np.ndarray:
    """Strong transmissions of AX.25 frames each carrying three wrong line bits: no decoder
    may pass any of them on (one- and two-bit repair cannot restore the frame, so anything
    with a good FCS would be an invented message)."""
    pieces = []
    frames = _afsk_frames(rng, count, 99)
    for frame in frames:
        good, _ = hdlc.nrzi_encode(hdlc.frame_bits(frame.to_bytes(), leading_flags=12))
        body = np.arange(12 * 8 + 8, good.size - 8)
        while True:
            levels = good.copy()
            levels[rng.choice(body, size=3, replace=False)] ^= 1
            # Rarely the damage makes another frame with a good FCS: that one is on the air.
            line = np.concatenate(([1], levels))
            if not hdlc.HdlcDecoder(count=False).feed((line[1:] == line[:-1]).tolist()):
                break
        modem = FskModulator(
            RATE, mark=Fraction(1200), space=Fraction(2200), baud=Fraction(1200), amplitude=1.0
        )
        pieces += [np.zeros(RATE // 10), modem.modulate(levels)]
    return _noise(np.concatenate([*pieces, np.zeros(RATE // 10)]), snr, 0.5, rng)


def afsk_false_frames(tmp: Path) -> None:
    """Frames emitted where there is no good frame to find: white noise, and AX.25 frames
    with three wrong bits each."""
    rng = np.random.default_rng(SEED + 20)
    noise = _scale(rng.normal(0.0, 1.0, NOISE_SECONDS * RATE))
    tests: list[tuple[str, np.ndarray]] = [(f"{NOISE_SECONDS // 60} min of white noise", noise)]
    for snr in CORRUPTED_SNRS:
        x = _scale(_corrupted_frames(rng, CORRUPTED_FRAMES, snr))
        tests.append((f"{CORRUPTED_FRAMES} frames, 3 bad bits, {snr:.0f} dB", x))
    print("\nAFSK1200: frames emitted with no good frame on the air (all are false)")
    header = f"{'audio':>34}" + "".join(f"{n:>16}" for n in [*OURS, "atest", "atest -F 1"])
    print(header)
    print("-" * len(header))
    for label, x in tests:
        row = f"{label:>34}"
        for options in OURS.values():
            got, _ = _run_ours_afsk(x, options)
            row += f"{len(got):>16}"
        if shutil.which("atest"):
            wav = tmp / "false.wav"
            _write_wav(wav, x)
            for flags in ((), ("-F", "1")):
                heard, _ = _run_atest(wav, *flags)
                row += f"{len(heard):>16}"
        print(row)


# ----------------------------------------------------------------------------- report


def point(steps: Sequence[int], rates: list[float], target: float = 0.9) -> float | None:
    """The SNR where the decode rate first reaches ``target`` (linear interpolation)."""
    for i, rate in enumerate(rates):
        if rate >= target:
            if i == 0:
                return float(steps[0])
            r0, r1 = rates[i - 1], rate
            s0, s1 = steps[i - 1], steps[i]
            return s0 + (target - r0) * (s1 - s0) / (r1 - r0)
    return None


def print_ladder(ladder: Ladder) -> None:
    names = list(ladder.rates)
    print(f"\n{ladder.name}: decoded share per SNR step (dB)")
    header = f"{'SNR dB':>8}" + "".join(f"{n:>16}" for n in names)
    print(header)
    print("-" * len(header))
    for i, snr in enumerate(ladder.steps):
        print(f"{snr:>8}" + "".join(f"{ladder.rates[n][i]:>16.0%}" for n in names))
    print("-" * len(header))
    points = {n: point(ladder.steps, ladder.rates[n]) for n in names}
    print(
        f"{'90% at':>8}"
        + "".join(f"{'n/a' if p is None else f'{p:+.1f} dB':>16}" for p in points.values())
    )
    print(f"{'speed':>8}" + "".join(f"{float(np.median(ladder.speeds[n])):>15.0f}x" for n in names))
    print(f"{'wrong':>8}" + "".join(f"{ladder.wrong.get(n, ''):>16}" for n in names))
    for ours, theirs in ladder.pairs:
        if ours not in points or theirs not in points:
            continue
        p_ours, p_theirs = points[ours], points[theirs]
        if p_ours is not None and p_theirs is not None:
            gain = f"{p_theirs - p_ours:+.1f} dB better at 90 %"
            if p_ours <= ladder.steps[0]:
                gain = f"at least {p_theirs - p_ours:+.1f} dB better at 90 % (off the ladder)"
        else:
            gain = "90 % point n/a"
        at_least = all(
            a >= b for a, b in zip(ladder.rates[ours], ladder.rates[theirs], strict=True)
        )
        every = "at least its rate at every step" if at_least else "BELOW it at some step"
        print(f"{ours} vs {theirs}: {gain}; {every}")


def _single_core(fn: Callable[[], None]) -> None:
    if hasattr(os, "sched_setaffinity"):
        cpus = os.sched_getaffinity(0)
        os.sched_setaffinity(0, {min(cpus)})
        try:
            fn()
        finally:
            os.sched_setaffinity(0, cpus)
    else:
        fn()


def main() -> None:
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(40), cache_logger_on_first_use=False
    )
    started = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="bench-audio-") as folder:
        tmp = Path(folder)

        def run() -> None:
            print(
                f"SAME: {SAME_TRIALS} headers per step; AFSK1200: {AFSK_TRIALS} frames per "
                f"step; {RATE} Hz; seed {SEED}"
            )
            for impaired in (False, True):
                print_ladder(same_ladder(tmp, impaired=impaired))
            for impaired in (False, True):
                print_ladder(afsk_ladder(tmp, impaired=impaired))
            afsk_false_frames(tmp)

        _single_core(run)
    print(f"\nbench_audio took {time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
