"""Disk full is a user-fixable condition, not a bug: ENOSPC / EDQUOT become one line naming the folder.

Every writer is atomic (a temporary file replaced at the end), so nothing half-written is
left and the rerun resumes; the traceback of such an error helps nobody. `outdir.claim`
applies `disk_full` to a whole run.
"""

from __future__ import annotations

import contextlib
import errno
import os
from typing import Iterator

from xraymunit.errors import XraymunitError


class DiskFullError(XraymunitError):
    """The disk (or quota) is full; the run can be resumed once space is freed."""


FULL_ERRNOS = (errno.ENOSPC, errno.EDQUOT)  # "no space left", "quota exceeded"
_FULL_TEXT = ("No space left on device", "Disk quota exceeded")
# torch.save reports a failed write as a RuntimeError without errno ("unexpected pos", "file write failed")
_TORCH_WRITE_FAILED = ("unexpected pos", "file write failed", "PytorchStreamWriter failed")
_NEARLY_FULL_BYTES = 64 << 20


@contextlib.contextmanager
def disk_full(folder: str | os.PathLike) -> Iterator[None]:
    """Turn "no space left on device" (or quota exceeded) raised inside into one-line DiskFullError.

    Writers are atomic (a temporary file replaced at the end), so nothing half-written is
    left and the rerun resumes; the traceback of such an error helps nobody.
    """
    try:
        yield
    except DiskFullError:
        raise
    except Exception as exc:
        full = _disk_full_errno(exc, folder)
        if full is None:
            raise
        what = "disk quota exceeded" if full == errno.EDQUOT else "no space left on device"
        raise DiskFullError(f"{what} writing {_where(exc, folder)}; free space and rerun: the run resumes") from exc


def _disk_full_errno(exc: BaseException, folder) -> int | None:
    seen = 0
    current: BaseException | None = exc
    while current is not None and seen < 8:  # libraries may wrap the OSError
        if isinstance(current, OSError) and current.errno in FULL_ERRNOS:
            return current.errno
        text = str(current)
        for code, phrase in zip(FULL_ERRNOS, _FULL_TEXT):
            if phrase in text:
                return code
        if isinstance(current, RuntimeError) and any(t in text for t in _TORCH_WRITE_FAILED):
            with contextlib.suppress(OSError):
                vfs = os.statvfs(folder)
                if vfs.f_bavail * vfs.f_frsize < _NEARLY_FULL_BYTES:
                    return errno.ENOSPC
        current = current.__cause__ or current.__context__
        seen += 1
    return None


def _where(exc: BaseException, folder) -> str:
    folder = os.path.abspath(os.fspath(folder))
    name = getattr(exc, "filename", None)
    if isinstance(name, (str, bytes, os.PathLike)):
        name = os.path.abspath(os.fsdecode(name))
        if not name.startswith(folder.rstrip(os.sep) + os.sep):
            return os.path.dirname(name)
    return folder
