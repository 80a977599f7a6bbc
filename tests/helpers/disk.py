"""A full disk, simulated: atomic writes fail with ENOSPC as they would on a full filesystem."""

from __future__ import annotations

import contextlib
import errno
from pathlib import Path
from typing import Callable, Iterator

from xraymunit.io import atomic


@contextlib.contextmanager
def disk_full(monkeypatch, fails: Callable[[Path], bool]) -> Iterator[None]:
    """Inside the block, every atomic write whose temporary file `fails(path)` raises ENOSPC when
    it is flushed to disk (the point where a full filesystem reports it); the others go through."""
    real = atomic._fsync_file

    def fsync(path: Path) -> None:
        if fails(path):
            raise OSError(errno.ENOSPC, "No space left on device")
        real(path)

    monkeypatch.setattr(atomic, "_fsync_file", fsync)
    try:
        yield
    finally:
        monkeypatch.setattr(atomic, "_fsync_file", real)
