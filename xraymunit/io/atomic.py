"""Atomic file writes: a killed process leaves either the old file or the new one, never half.

Every writer in xraymunit goes through here: write to a temporary file in the same
folder (same filesystem), flush + fsync, then `os.replace` onto the final name.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import stat
import tempfile
from pathlib import Path
from typing import Iterator

import numpy as np

from xraymunit.io import outdir


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# mkstemp creates files 0600; finished files get the usual mode (0666 minus the umask),
# as if they had been opened normally. Private files are chmod-ed explicitly by their writer.
_FILE_MODE = 0o666 & ~_current_umask()


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike, suffix: str | None = None, mode: int | None = None) -> Iterator[Path]:
    """Yield a temporary path next to `path`; on success it replaces `path` atomically.

    Use it for writers that insist on a file name (pandas, PIL, pydicom, torch.save).
    The temporary name keeps the final suffix so format sniffing by extension works.
    `mode` sets the final permissions (default: 0666 minus the umask, like open()).
    """
    path = Path(path)
    outdir.check_write_path(path)  # no writes through links planted inside a claimed output folder
    path.parent.mkdir(parents=True, exist_ok=True)
    suffix = path.suffix if suffix is None else suffix
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=f".tmp{suffix}", dir=path.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        _fsync_file(tmp_path)
        os.chmod(tmp_path, _FILE_MODE if mode is None else mode)
        os.replace(tmp_path, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


# The temporary names atomic_path makes: mkstemp's ".<final name>.<8 random chars>.tmp<final suffix>"
_TEMP_NAME = re.compile(r"\.(?P<final>.+)\.[a-z0-9_]{8}\.tmp(?P<suffix>.*)", re.DOTALL)


def is_temp_name(name: str) -> bool:
    """Whether `name` is one of atomic_path's temporary file names (and nothing else)."""
    match = _TEMP_NAME.fullmatch(name)
    return match is not None and Path(match["final"]).suffix == match["suffix"]


def remove_stale_temps(folder: str | os.PathLike) -> int:
    """Delete the temporary files of killed writers under `folder` (recursively); their count.

    Only regular files named like atomic_path's temporaries are removed, and only inside
    `folder` (links to folders are not followed). Call it only while holding the folder
    (outdir.claim), when no writer of this run has started: a live writer's temporary
    file has the same name.
    """
    removed = 0
    for dirpath, _dirnames, filenames in os.walk(folder):
        for name in filenames:
            if not is_temp_name(name):
                continue
            path = os.path.join(dirpath, name)
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.lstat(path).st_mode):
                    os.unlink(path)
                    removed += 1
    return removed


def _fsync_file(path: Path) -> None:
    with contextlib.suppress(OSError):
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_bytes(path: str | os.PathLike, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def write_text(path: str | os.PathLike, text: str) -> None:
    write_bytes(path, text.encode("utf-8"))


def write_json(path: str | os.PathLike, obj, indent: int = 2) -> None:
    write_text(path, json.dumps(obj, indent=indent, sort_keys=False, default=_json_default) + "\n")


def write_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    buf = io.BytesIO()
    np.save(buf, np.ascontiguousarray(array), allow_pickle=False)
    write_bytes(path, buf.getvalue())


def _json_default(obj):
    if isinstance(obj, (np.integer,)):
        return int(obj)
    if isinstance(obj, (np.floating,)):
        return float(obj)
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"not JSON serialisable: {type(obj).__name__}")
