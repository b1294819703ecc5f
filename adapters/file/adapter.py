"""The file sink (``type = "file"``): each delivery as files in a directory, written so that a
reader never sees half a file and a crash never loses a confirmed one.

Options::

    path = "/var/spool/borderlink/eoc"   # the directory (created when missing)

For a delivery with delivery id ``D`` and ``n`` parts the sink writes ``D.1`` ... ``D.n``
(the payloads) and ``D.json`` (its attributes, content type and parts, written last: its
presence says the delivery is complete). Each file is written to a temporary name in the same
directory, flushed to disk, renamed into place, and the directory itself is synced before the
delivery is confirmed. A delivery sent again after a crash (``in_doubt = "resend"``) finds its
files there: it writes ``D~2.json`` (``~3`` ...) beside them instead of overwriting, so a
reader can tell a repeat from a new delivery by the id. Failures to write (a full disk, no
permission) are :class:`~gateway.errors.DeliveryError`\\ s the daemon retries.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from types import TracebackType
from typing import Self

import structlog

from gateway.adapter import AdapterContext, Outbound
from gateway.errors import ConfigError, DeliveryError

log = structlog.get_logger(__name__)

__all__ = ["FileSink", "from_context"]

_SAFE = re.compile(r"[^A-Za-z0-9._-]")


class FileSink:
    """Writes deliveries into one directory; several may be in flight at once."""

    concurrent_sends = True

    def __init__(self, name: str, directory: Path) -> None:
        self.name = name
        self.directory = directory

    async def __aenter__(self) -> Self:
        try:
            await asyncio.to_thread(self.directory.mkdir, parents=True, exist_ok=True)
        except OSError as exc:
            msg = f"file sink {self.name!r}: cannot use {self.directory}: {exc}"
            raise ConfigError(msg) from exc
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    async def send(self, item: Outbound) -> None:
        await asyncio.to_thread(self._write, item)

    def _write(self, item: Outbound) -> None:
        ident = _SAFE.sub("_", item.attributes.get("delivery_id") or str(item.key or "delivery"))
        meta = {
            "delivery_id": item.attributes.get("delivery_id", ""),
            "alert_key": "" if item.key is None else str(item.key),
            "content_type": item.content_type,
            "parts": len(item.parts),
            "attributes": dict(item.attributes),
            "expires": None if item.expires is None else item.expires.isoformat(),
        }
        try:
            repeat = 1
            while (self.directory / _meta_name(ident, repeat)).exists():
                repeat += 1
            if repeat == 1:
                for index, part in enumerate(item.parts, start=1):
                    _atomic(self.directory / f"{ident}.{index}", part)
            meta["repeat"] = repeat
            body = json.dumps(meta, ensure_ascii=False, sort_keys=True).encode("utf-8")
            _atomic(self.directory / _meta_name(ident, repeat), body)
            _sync_dir(self.directory)
        except OSError as exc:
            raise DeliveryError(f"file sink {self.name}: cannot write {ident}: {exc}") from exc
        log.debug("file_written", sink=self.name, delivery=ident, repeat=repeat)


def _meta_name(ident: str, repeat: int) -> str:
    return f"{ident}.json" if repeat == 1 else f"{ident}~{repeat}.json"


def _atomic(path: Path, data: bytes) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("wb") as handle:
        handle.write(data)
        handle.flush()
        os.fsync(handle.fileno())
    temporary.replace(path)


def _sync_dir(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def from_context(ctx: AdapterContext) -> FileSink:
    """The registry factory: ``type = "file"`` (a sink)."""
    r = ctx.options_reader("sink")
    raw = r.required_string("path")
    r.finish()
    path = Path(raw)
    if not path.is_absolute() and ctx.config_path:
        path = Path(ctx.config_path).parent / path
    return FileSink(ctx.name, path)
