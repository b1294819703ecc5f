"""Push-to-talk through a serial port's RTS or DTR line (the usual sound-card interface).

Sound-card radio interfaces (SignaLink-style with a serial PTT, home-made opto-isolated
cables, CAT cables with a PTT line) key the transmitter when the RTS or DTR line of a serial
port is asserted. :class:`SerialPtt` drives one line, optionally inverted; ``keyed()`` holds
the transmitter on for the duration of a ``with`` block and always releases it, even when the
block fails, so an error can never leave a transmitter stuck on the air. A watchdog limit
(``max_seconds``) refuses to key for longer than the channel allows.

Any pyserial URL works: ``/dev/ttyUSB0``, ``rfc2217://host:port``, and ``loop://`` (where
RTS is looped to CTS and DTR to DSR, which the tests use to observe the line).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from typing import Literal, Protocol

import serial
import structlog

from gateway.errors import AdapterConnectionError, ConfigError

log = structlog.get_logger(__name__)


class Ptt(Protocol):
    def key(self) -> None: ...

    def unkey(self) -> None: ...

    def close(self) -> None: ...


class NoPtt:
    """No PTT line: the radio keys itself on audio (VOX)."""

    keyed_now = False

    def key(self) -> None:
        self.keyed_now = True

    def unkey(self) -> None:
        self.keyed_now = False

    def close(self) -> None:
        self.keyed_now = False


class SerialPtt:
    """PTT on the RTS or DTR line of a serial port."""

    def __init__(
        self,
        port: str,
        *,
        line: Literal["rts", "dtr"] = "rts",
        invert: bool = False,
        max_seconds: float = 60.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        if line not in {"rts", "dtr"}:
            raise ConfigError(f"PTT line {line!r}; allowed: rts, dtr")
        self.line = line
        self.invert = invert
        self.max_seconds = max_seconds
        self._monotonic = monotonic
        self._keyed_at: float | None = None
        try:
            self._port = serial.serial_for_url(port, do_not_open=True)
            # Set the idle level before opening so the radio is not keyed by the open itself.
            self._set(active=False)
            self._port.open()
        except (serial.SerialException, ValueError) as exc:
            raise AdapterConnectionError(f"cannot open PTT port {port}: {exc}") from exc
        self._set(active=False)

    def _set(self, *, active: bool) -> None:
        level = active != self.invert
        if self.line == "rts":
            self._port.rts = level
        else:
            self._port.dtr = level

    @property
    def keyed_now(self) -> bool:
        return self._keyed_at is not None

    def key(self) -> None:
        self._set(active=True)
        self._keyed_at = self._monotonic()
        log.debug("ptt_keyed", line=self.line)

    def unkey(self) -> None:
        self._set(active=False)
        if self._keyed_at is not None:
            log.debug("ptt_released", line=self.line, seconds=self._monotonic() - self._keyed_at)
        self._keyed_at = None

    def check_watchdog(self) -> None:
        """Release the transmitter if it has been keyed for longer than ``max_seconds``."""
        if self._keyed_at is not None and self._monotonic() - self._keyed_at > self.max_seconds:
            log.error("ptt_watchdog_released", line=self.line, limit=self.max_seconds)
            self.unkey()

    def close(self) -> None:
        with contextlib.suppress(serial.SerialException, OSError):
            self.unkey()
        self._port.close()

    @property
    def port(self) -> serial.SerialBase:
        return self._port


@contextlib.contextmanager
def keyed(ptt: Ptt, *, seconds: float | None = None, limit: float = 60.0) -> Iterator[None]:
    """Key ``ptt`` for the block; always release it. Refuses transmissions over ``limit`` s."""
    if seconds is not None and seconds > limit:
        raise ValueError(f"transmission of {seconds:.1f} s exceeds the {limit:.0f} s PTT limit")
    ptt.key()
    try:
        yield
    finally:
        ptt.unkey()
