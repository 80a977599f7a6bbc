"""Cache entries: each decoded image's uint16 pixels, appended to a per-process segment file.

Why segments and not one file per image: creating, writing and renaming a small file costs
~0.5 ms on ext4 — a fifth of decoding an uncompressed 1024² radiograph — while appending
128 kB to an open file costs ~0.03 ms. Each process of a run appends to its own segment
`private/entries/seg-<run>-<pid>.bin` (raw C-order uint16 S×S images, back to back).

An entry exists once the journal has its record {"entry": segment, "offset": byte offset};
the record is written after the bytes, so bytes that a killed run appended without a record
are never read, and the next run opens new segments rather than appending after them. A
record whose segment is shorter than offset + S²·2 (deleted, truncated) is decoded again.
Finalize removes segments that no current record uses.
"""

from __future__ import annotations

import os
import secrets
import time
from pathlib import Path
from typing import Iterable

import numpy as np

from xraymunit.ingestion.settings import ENTRIES
from xraymunit.io import outdir

SEGMENT_PREFIX = "seg-"


def new_run_token() -> str:
    """Unique per run: segments of different runs never share a name."""
    return f"{time.time_ns():x}-{secrets.token_hex(3)}"


def entry_bytes(size: int) -> int:
    return size * size * 2


class SegmentWriter:
    """Appends images to this process's segment of one run (opened on first use)."""

    def __init__(self, private: Path, run_token: str) -> None:
        self.relpath = f"{ENTRIES}/{SEGMENT_PREFIX}{run_token}-{os.getpid()}.bin"
        self.path = private / self.relpath
        self.fd: int | None = None
        self.offset = 0

    def append(self, image: np.ndarray) -> dict:
        """Write one uint16 image; returns the location to journal ({"entry", "offset"})."""
        data = memoryview(np.ascontiguousarray(image, dtype="<u2")).cast("B")
        if self.fd is None:
            outdir.check_write_path(self.path)
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        offset, done = self.offset, 0
        try:
            while done < len(data):
                done += os.write(self.fd, data[done:])
        except BaseException:  # disk full, interrupted: cut the partial image so offsets stay true
            try:
                os.ftruncate(self.fd, offset)
                os.lseek(self.fd, offset, os.SEEK_SET)
            except OSError:
                self.close()  # unusable: the next append of this run fails loudly on O_EXCL
            raise
        self.offset += done
        return {"entry": self.relpath, "offset": offset}

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


_WRITERS: dict[tuple[str, str, int], SegmentWriter] = {}


def writer_for(private: str | os.PathLike, run_token: str) -> SegmentWriter:
    """This process's writer for the run (workers keep theirs open until they exit)."""
    key = (str(private), run_token, os.getpid())
    writer = _WRITERS.get(key)
    if writer is None:
        writer = _WRITERS[key] = SegmentWriter(Path(private), run_token)
    return writer


def close_writers() -> None:
    for writer in _WRITERS.values():
        writer.close()
    _WRITERS.clear()


class EntryCheck:
    """Whether journalled entries are still on disk (one stat per segment, not per image)."""

    def __init__(self, private: Path, size: int) -> None:
        self.private, self.nbytes = private, entry_bytes(size)
        self._sizes: dict[str, int] = {}

    def segment_size(self, relpath: str) -> int:
        if relpath not in self._sizes:
            try:
                self._sizes[relpath] = (self.private / relpath).stat().st_size
            except OSError:
                self._sizes[relpath] = -1
        return self._sizes[relpath]

    def is_valid(self, record: dict) -> bool:
        """Records from before segments (one .npy per image, no offset) count as missing."""
        offset = record.get("offset")
        if not isinstance(offset, int) or not str(record.get("entry", "")).startswith(f"{ENTRIES}/{SEGMENT_PREFIX}"):
            return False
        return offset >= 0 and self.segment_size(record["entry"]) >= offset + self.nbytes


def read_entry(private: Path, record: dict, size: int) -> np.ndarray:
    """One entry as a (size, size) uint16 array."""
    arr = np.fromfile(private / record["entry"], dtype="<u2", count=size * size, offset=record["offset"])
    return arr.reshape(size, size)


def remove_unreferenced(private: Path, referenced: Iterable[str]) -> int:
    """Delete files under private/entries/ that no current record uses; returns how many.

    Segments of killed runs, segments superseded by re-decodes after a settings change, and
    the one-.npy-per-image entries of earlier versions. Empty sub-folders go too.
    """
    keep = {str(r) for r in referenced}
    root = private / ENTRIES
    removed = 0
    if not root.is_dir():
        return 0
    for path in sorted(root.rglob("*"), reverse=True):  # files before their folders
        rel = path.relative_to(private).as_posix()
        if path.is_dir():
            try:
                path.rmdir()
            except OSError:
                pass  # not empty
        elif rel not in keep:
            path.unlink(missing_ok=True)
            removed += 1
    return removed
