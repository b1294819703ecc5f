"""A line-oriented text-modem dialect, described by templates, sans-IO.

Many vendor data radios take a command such as ``AT+SDS=<unit>,<text>`` and answer ``OK`` or
``ERROR``, and print received messages as an unsolicited line such as ``+SDS: 1002,9001,text``.
A :class:`Dialect` captures one model's wording: the transmit template (``{dest}`` and
``{text}`` placeholders), regular expressions for the acknowledgement, the error reply (an
optional ``reason`` group) and received messages (named groups ``text`` and optionally
``sender`` and ``dest``), the line ending, the longest text and init commands. A new radio
model is a config block, not code.

The simulator uses the same dialect from the radio's side (:meth:`Dialect.parse_tx`,
:meth:`Dialect.format_rx`).
"""

from __future__ import annotations

import re
import string
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from gateway.errors import ConfigError, FrameError
from gateway.options import OptionReader

MAX_LINE = 1024


class TextModemError(FrameError):
    """A line from the radio is malformed or too long."""


@dataclass(frozen=True, slots=True)
class Dialect:
    tx: str = "AT+TXT={dest},{text}"
    ok: str = r"^OK$"
    error: str = r"^ERROR(?::\s*(?P<reason>.*))?$"
    rx: str = r"^\+RXT:\s*(?P<sender>[^,]*),(?P<dest>[^,]*),(?P<text>.*)$"
    line_end: str = "\r\n"
    max_text: int = 160
    init: tuple[str, ...] = ()
    # Device side (simulator): how the radio reads a transmit command and prints a message.
    tx_pattern: str = r"^AT\+TXT=(?P<dest>[^,]+),(?P<text>.*)$"
    rx_format: str = "+RXT: {sender},{dest},{text}"

    def __post_init__(self) -> None:
        fields = {f[1] for f in string.Formatter().parse(self.tx) if f[1]}
        if not {"dest", "text"} <= fields or fields - {"dest", "text"}:
            raise ConfigError(
                f"dialect tx template {self.tx!r} must use {{dest}} and {{text}} only"
            )
        for name in ("ok", "error", "rx", "tx_pattern"):
            try:
                re.compile(getattr(self, name))
            except re.error as exc:
                raise ConfigError(
                    f"dialect {name} pattern is not a regular expression: {exc}"
                ) from None
        if "text" not in re.compile(self.rx).groupindex:
            raise ConfigError(f"dialect rx pattern {self.rx!r} needs a (?P<text>...) group")
        if not 1 <= self.max_text <= MAX_LINE:
            raise ConfigError(f"dialect max_text {self.max_text} out of range 1-{MAX_LINE}")

    @classmethod
    def from_mapping(cls, options: Mapping[str, Any]) -> Dialect:
        """A dialect from a ``dialect`` table (errors name the key path ``dialect.KEY``)."""
        return cls.from_reader(OptionReader("", "dialect", options))

    @classmethod
    def from_reader(cls, r: OptionReader) -> Dialect:
        default = cls()
        values: dict[str, Any] = {
            key: r.string(key, getattr(default, key))
            for key in ("tx", "ok", "error", "rx", "line_end", "tx_pattern", "rx_format")
        }
        values["max_text"] = r.integer("max_text", default.max_text, minimum=1, maximum=MAX_LINE)
        values["init"] = r.strings("init")
        r.finish()
        try:
            return cls(**values)
        except ConfigError as exc:
            r.fail(exc.detail)

    # -- host side --------------------------------------------------------------------------
    def format_tx(self, dest: str, text: str) -> bytes:
        if len(text) > self.max_text:
            raise TextModemError(f"text is {len(text)} characters, the radio takes {self.max_text}")
        if any(c in dest for c in ",\r\n"):
            raise TextModemError(f"destination {dest!r} contains a separator")
        return (self.tx.format(dest=dest, text=text) + self.line_end).encode("ascii", "replace")

    def classify(self, line: str) -> Event:
        """What a line from the radio means: ok, error, rx (a received message) or other."""
        if re.match(self.ok, line):
            return Event("ok")
        m = re.match(self.error, line)
        if m:
            return Event("error", reason=(m.groupdict().get("reason") or "").strip())
        m = re.match(self.rx, line)
        if m:
            groups = m.groupdict()
            return Event(
                "rx",
                text=groups["text"],
                sender=(groups.get("sender") or "").strip(),
                dest=(groups.get("dest") or "").strip(),
            )
        return Event("other", text=line)

    # -- device side ------------------------------------------------------------------------
    def parse_tx(self, line: str) -> tuple[str, str] | None:
        m = re.match(self.tx_pattern, line)
        if m is None:
            return None
        return m.group("dest"), m.group("text")

    def format_rx(self, sender: str, dest: str, text: str) -> bytes:
        return (self.rx_format.format(sender=sender, dest=dest, text=text) + self.line_end).encode(
            "ascii", "replace"
        )


@dataclass(frozen=True, slots=True)
class Event:
    kind: str
    text: str = ""
    sender: str = ""
    dest: str = ""
    reason: str = ""


class LineDecoder:
    """Splits a byte stream into lines (CR, LF or CRLF); blank lines are skipped.

    A line longer than ``max_line`` is an error (kept in :attr:`errors`); the rest of it up to
    the next line end is discarded, so one runaway line costs only itself.
    """

    def __init__(self, max_line: int = MAX_LINE) -> None:
        self.max_line = max_line
        self._buf = bytearray()
        self._skipping = False
        self.errors: list[TextModemError] = []

    def feed(self, data: bytes) -> list[str]:
        lines: list[str] = []
        for b in data:
            if b in (0x0D, 0x0A):
                if self._skipping:
                    self._skipping = False
                elif self._buf:
                    lines.append(self._buf.decode("ascii", "replace"))
                self._buf.clear()
            elif self._skipping:
                continue
            elif len(self._buf) >= self.max_line:
                self.errors.append(TextModemError(f"line longer than {self.max_line} bytes"))
                self._buf.clear()
                self._skipping = True
            else:
                self._buf.append(b)
        return lines

    def take_errors(self) -> list[TextModemError]:
        errors, self.errors = self.errors, []
        return errors
