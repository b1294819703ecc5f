"""Which files of a spool folder are new: sans-IO, no asyncio, no file system."""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable
from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Entry:
    """One file as a listing shows it."""

    name: str
    size: int
    mtime_ns: int


@dataclass
class Spool:
    """Remembers what it handed on; a file comes out again only when it changed."""

    pattern: str = "*.xml"
    _seen: dict[str, tuple[int, int]] = field(default_factory=dict)

    def new(self, listing: Iterable[Entry]) -> list[Entry]:
        """The entries matching the pattern that were not seen as they are now, by name."""
        fresh = []
        for entry in sorted(listing, key=lambda e: e.name):
            stamp = (entry.size, entry.mtime_ns)
            if fnmatch.fnmatch(entry.name, self.pattern) and self._seen.get(entry.name) != stamp:
                self._seen[entry.name] = stamp
                fresh.append(entry)
        return fresh
