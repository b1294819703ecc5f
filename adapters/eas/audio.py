"""Audio plumbing for the SAME modem: streaming WAV and raw PCM, resampling, text-to-speech.

Everything works in chunks so that a long message (or an endless stream) is never held in
memory whole. Raw PCM is signed 16-bit little-endian mono, the format multimon-ng reads.
"""

from __future__ import annotations

import io
import mimetypes
import shutil
import subprocess
import wave
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np

from adapters.modem.fsk import FloatArray, to_pcm16

CHUNK_FRAMES = 16384


class AudioFormatError(ValueError):
    """A file is not audio we can read (not a PCM WAV, or an unsupported sample format)."""


def write_wav(target: str | Path | BinaryIO, chunks: Iterable[FloatArray], rate: int) -> int:
    """Write float chunks as a 16-bit mono WAV; returns the number of samples written."""
    if isinstance(target, str | Path):
        # Open the file first: wave.open on a bad path leaves a half-built writer behind.
        with Path(target).open("wb") as handle:
            return write_wav(handle, chunks, rate)
    count = 0
    with wave.open(target, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        for chunk in chunks:
            out.writeframes(to_pcm16(chunk))
            count += chunk.size
    return count


def write_raw(target: BinaryIO, chunks: Iterable[FloatArray]) -> int:
    """Write float chunks as raw signed 16-bit little-endian PCM."""
    count = 0
    for chunk in chunks:
        target.write(to_pcm16(chunk))
        count += chunk.size
    return count


def _frames_to_float(raw: bytes, width: int, channels: int) -> FloatArray:
    if width == 2:
        data = np.frombuffer(raw, dtype="<i2").astype(np.float64) / 32768.0
    elif width == 1:
        data = (np.frombuffer(raw, dtype=np.uint8).astype(np.float64) - 128.0) / 128.0
    elif width == 4:
        data = np.frombuffer(raw, dtype="<i4").astype(np.float64) / 2147483648.0
    else:
        msg = f"WAV sample width of {width} bytes is not supported (8, 16 or 32-bit PCM)"
        raise AudioFormatError(msg)
    if channels > 1:
        usable = data.size - data.size % channels
        mixed: FloatArray = data[:usable].reshape(-1, channels).mean(axis=1)
        return mixed
    return data


def open_wav(source: str | Path | BinaryIO) -> tuple[int, Iterator[FloatArray]]:
    """Open a PCM WAV; returns its sample rate and an iterator of mono float chunks."""
    try:
        # The reader is closed by the chunk iterator (or just below on a bad format).
        reader = wave.open(  # noqa: SIM115
            source if not isinstance(source, Path) else str(source), "rb"
        )
    except (wave.Error, EOFError) as exc:
        msg = f"not a PCM WAV file: {exc}"
        raise AudioFormatError(msg) from None
    rate = reader.getframerate()
    width = reader.getsampwidth()
    channels = reader.getnchannels()
    if width not in (1, 2, 4):
        reader.close()
        msg = f"WAV sample width of {width} bytes is not supported (8, 16 or 32-bit PCM)"
        raise AudioFormatError(msg)

    def chunks() -> Iterator[FloatArray]:
        with reader:
            while True:
                raw = reader.readframes(CHUNK_FRAMES)
                if not raw:
                    return
                yield _frames_to_float(raw, width, channels)

    return rate, chunks()


def iter_raw(source: BinaryIO, chunk_bytes: int = 2 * CHUNK_FRAMES) -> Iterator[bytes]:
    """Read raw PCM in chunks (the decoder itself copes with odd byte splits)."""
    while True:
        raw = source.read(chunk_bytes)
        if not raw:
            return
        yield raw


def resample(samples: FloatArray, from_rate: int, to_rate: int) -> FloatArray:
    """Linear-interpolation resampling (for speech and message audio, not for data)."""
    if from_rate == to_rate or samples.size == 0:
        return samples
    count = round(samples.size * to_rate / from_rate)
    positions = np.arange(count) * (from_rate / to_rate)
    out: FloatArray = np.interp(positions, np.arange(samples.size), samples)
    return out


# CAP resource MIME types (as NAAD and IPAWS use them) -> sox file types.
SOX_TYPES = {
    "audio/mpeg": "mp3",
    "audio/mp3": "mp3",
    "audio/x-ipaws-audio-mp3": "mp3",
    "audio/ogg": "ogg",
    "audio/vorbis": "ogg",
    "audio/flac": "flac",
    "audio/x-flac": "flac",
}


def decode_audio_bytes(data: bytes, rate: int, mime: str = "") -> FloatArray:
    """An alert's audio resource (WAV, or MP3/Ogg/FLAC through sox) as samples at ``rate``.

    Raises :class:`AudioFormatError` for a format that cannot be read here.
    """
    if data[:4] == b"RIFF":
        source_rate, chunks = open_wav(io.BytesIO(data))
        pieces = list(chunks)
        return resample(np.concatenate(pieces) if pieces else np.zeros(0), source_rate, rate)
    kind = SOX_TYPES.get(mime.split(";", maxsplit=1)[0].strip().lower())
    if kind is None and data[:4] == b"OggS":
        kind = "ogg"
    if kind is None and (data[:3] == b"ID3" or data[:2] in (b"\xff\xfb", b"\xff\xf3")):
        kind = "mp3"
    sox = shutil.which("sox")
    if kind is None or sox is None:
        msg = f"cannot read message audio of type {mime or 'unknown'!r} (WAV, or sox for others)"
        raise AudioFormatError(msg)
    result = subprocess.run(  # noqa: S603 - fixed binary and arguments; data on stdin
        [
            sox,
            "-V1",
            "-t",
            kind,
            "-",
            "-t",
            "raw",
            "-e",
            "signed",
            "-b",
            "16",
            "-c",
            "1",
            "-r",
            str(rate),
            "-",
        ],
        input=data,
        capture_output=True,
        check=False,
        timeout=120,
    )
    if result.returncode != 0:
        msg = f"sox could not decode the {kind} audio: {result.stderr.decode(errors='replace')}"
        raise AudioFormatError(msg.strip())
    return np.frombuffer(result.stdout, dtype="<i2").astype(np.float64) / 32768.0


def load_message_audio(path: str | Path, rate: int) -> Iterator[FloatArray]:
    """A message audio file as chunks at ``rate``: WAV streamed, other formats through sox."""
    with Path(path).open("rb") as handle:
        head = handle.read(4)
    if head == b"RIFF":
        source_rate, chunks = open_wav(path)
        for chunk in chunks:
            yield resample(chunk, source_rate, rate)
        return
    yield decode_audio_bytes(
        Path(path).read_bytes(), rate, mimetypes.guess_type(str(path))[0] or ""
    )


def text_to_speech(text: str, rate: int, *, voice: str = "en-us", speed: int = 160) -> FloatArray:
    """Speak ``text`` with espeak-ng; raises FileNotFoundError when espeak-ng is absent."""
    binary = shutil.which("espeak-ng")
    if binary is None:
        msg = "espeak-ng is not installed; text-to-speech is unavailable"
        raise FileNotFoundError(msg)
    result = subprocess.run(  # noqa: S603 - fixed binary, text passed as one argument
        [binary, "-v", voice, "-s", str(speed), "--stdout", "--", text],
        capture_output=True,
        check=True,
        timeout=120,
    )
    source_rate, chunks = open_wav(io.BytesIO(result.stdout))
    pieces = list(chunks)
    speech = np.concatenate(pieces) if pieces else np.zeros(0)
    return resample(speech, source_rate, rate)
