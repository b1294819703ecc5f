"""The console's alarm sounds, made here (no audio file is shipped or fetched).

``extreme``: the EAS attention signal's two tones together (853 Hz + 960 Hz, as 47 CFR
11.31 defines it) for two seconds, for Extreme or Broadcast-Immediately alerts; ``severe``:
three short 880 Hz beeps; ``notice``: one soft 660 Hz chime. 16-bit mono WAV at 8 kHz,
each a few tens of kilobytes.
"""

from __future__ import annotations

import functools
import io
import wave

import numpy as np

__all__ = ["SOUNDS", "sound_wav"]

RATE = 8000


def _tone(freqs: tuple[float, ...], seconds: float, level: float = 0.35) -> np.ndarray:
    t = np.arange(int(RATE * seconds)) / RATE
    wave_ = sum(np.sin(2 * np.pi * f * t) for f in freqs) / len(freqs)
    ramp = min(len(t) // 10, int(RATE * 0.01))  # 10 ms fades: no clicks
    envelope = np.ones_like(t)
    if ramp:
        envelope[:ramp] = np.linspace(0, 1, ramp)
        envelope[-ramp:] = np.linspace(1, 0, ramp)
    return np.asarray(level * wave_ * envelope)


def _silence(seconds: float) -> np.ndarray:
    return np.zeros(int(RATE * seconds))


SOUNDS = {
    "extreme": lambda: _tone((853.0, 960.0), 2.0),
    "severe": lambda: np.concatenate(
        [np.concatenate([_tone((880.0,), 0.18), _silence(0.12)]) for _ in range(3)]
    ),
    "notice": lambda: _tone((660.0,), 0.35, level=0.25),
}


@functools.cache
def sound_wav(name: str) -> bytes:
    """The WAV bytes of one of :data:`SOUNDS` (KeyError for another name)."""
    samples = SOUNDS[name]()
    pcm = (np.clip(samples, -1.0, 1.0) * 32767).astype("<i2").tobytes()
    out = io.BytesIO()
    with wave.open(out, "wb") as wav:
        wav.setnchannels(1)
        wav.setsampwidth(2)
        wav.setframerate(RATE)
        wav.writeframes(pcm)
    return out.getvalue()
