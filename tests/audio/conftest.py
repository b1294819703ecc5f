"""Fixtures for the baseband audio tests: signal generation and external referees."""

from __future__ import annotations

import logging
import subprocess
import wave
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import structlog

from adapters.modem.fsk import to_pcm16
from tests.helpers import require_tool


def add_noise(x: np.ndarray, snr_db: float, seed: int) -> np.ndarray:
    """White Gaussian noise at ``snr_db`` relative to the power of the non-silent samples."""
    rng = np.random.default_rng(seed)
    power = float(np.mean(x[x != 0] ** 2))
    return x + rng.normal(0.0, np.sqrt(power / 10 ** (snr_db / 10)), size=x.size)


def write_raw(path: Path, x: np.ndarray) -> Path:
    path.write_bytes(to_pcm16(x))
    return path


def write_wav(path: Path, x: np.ndarray, rate: int) -> Path:
    with wave.open(str(path), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(to_pcm16(x))
    return path


def read_wav(path: Path) -> tuple[int, np.ndarray]:
    with wave.open(str(path), "rb") as src:
        rate = src.getframerate()
        data = np.frombuffer(src.readframes(src.getnframes()), dtype="<i2")
        if src.getnchannels() > 1:
            data = data.reshape(-1, src.getnchannels())[:, 0]
    return rate, data.astype(np.float64) / 32768.0


def multimon(path: Path, *demods: str, extra: tuple[str, ...] = ()) -> list[str]:
    """Run multimon-ng on a raw s16le file (22050 Hz) and return its output lines."""
    binary = require_tool("multimon-ng")
    args = [binary, "-q", "-c", *extra]
    for demod in demods:
        args += ["-a", demod]
    result = subprocess.run(
        [*args, "-t", "raw", str(path)], capture_output=True, text=True, timeout=60, check=False
    )
    return result.stdout.splitlines()


@pytest.fixture
def tmp_audio(tmp_path: Path) -> Path:
    return tmp_path


@pytest.fixture(autouse=True)
def _uncached_logging() -> Iterator[None]:
    """Log without caching loggers: ``gateway.logging.configure`` (run by CLI tests elsewhere
    in the suite) caches each logger with the stderr of the moment, which pytest closes after
    that test; a later log call from one of our modules would then fail."""
    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.dev.ConsoleRenderer(colors=False),
        ],
        wrapper_class=structlog.make_filtering_bound_logger(logging.DEBUG),
        logger_factory=structlog.PrintLoggerFactory(),
        cache_logger_on_first_use=False,
    )
    yield
    structlog.reset_defaults()
