"""Small files that must survive a crash or a power cut (poll cursors, message numbers, the
console's users file and session secret).

:func:`atomic_write` replaces a file so that a reader sees either the old bytes or the new ones,
never a mix: the bytes go to a temporary file in the same folder, which is flushed to disk,
renamed over the target, and the folder itself is synced so the rename is durable.
:func:`write_new` does the same for a file that must be created once and never replaced (a
secret several processes may race to create: the first one's bytes win, whole). Either file
is readable by its owner only (mode 0600): some of them hold secrets.

Part of the gateway's ground floor, with the standard library only, so that adapters (their
poll cursors) and the gateway (its account files) share it.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

__all__ = ["atomic_write", "write_new"]


def atomic_write(path: Path, data: bytes) -> None:
    """Replace ``path`` with ``data`` durably (temporary file, fsync, rename, folder fsync)."""
    with _written(path, data) as tmp:
        tmp.replace(path)
    _sync_folder(path.parent)


def write_new(path: Path, data: bytes) -> bool:
    """Create ``path`` holding ``data``, durably, unless it exists: False then, and the file is
    left as it is. A hard link publishes the complete file in one step, so a process that
    finds it never reads it half written."""
    with _written(path, data) as tmp:
        try:
            os.link(tmp, path)
        except FileExistsError:
            return False
        finally:
            tmp.unlink()
    _sync_folder(path.parent)
    return True


@contextlib.contextmanager
def _written(path: Path, data: bytes) -> Iterator[Path]:
    """A temporary file (mode 0600) beside ``path`` holding ``data`` on disk, for the body to
    rename or link; removed if anything fails on the way."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        yield tmp
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise


def _sync_folder(folder: Path) -> None:
    with contextlib.suppress(OSError):  # not every file system syncs a folder
        dir_fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
