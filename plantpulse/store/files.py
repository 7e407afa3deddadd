"""Files only their owner may read (plantpulse's local state holds working acknowledge links),
and atomic replacement: directories 0700, files 0600, whatever the umask."""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
from typing import IO

__all__ = ["fsync_dir", "open_private", "private_dir", "replace_private"]


def private_dir(path: Path) -> None:
    """Create ``path`` (and parents) as 0700; an existing one is narrowed to its owner."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    with contextlib.suppress(OSError):
        os.chmod(path, 0o700)


def open_private(path: Path, mode: str) -> IO[bytes]:
    """Open a binary file for appending or writing, created 0600 whatever the umask."""
    flags = os.O_WRONLY | os.O_CREAT | (os.O_APPEND if mode.startswith("a") else os.O_TRUNC)
    fd = os.open(path, flags, 0o600)
    with contextlib.suppress(OSError):
        os.fchmod(fd, 0o600)
    return os.fdopen(fd, mode)


def replace_private(path: Path, data: bytes, *, sync: bool) -> None:
    """Write ``data`` to ``path`` atomically (a 0600 temp file renamed over it); with ``sync``
    the file and the directory entry are fsync'd, so a crash leaves the old or the new file."""
    tmp = path.with_name(path.name + ".tmp")
    with open_private(tmp, "wb") as f:
        f.write(data)
        if sync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if sync:
        fsync_dir(path.parent)


def fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
