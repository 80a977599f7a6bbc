"""Owning an output folder safely: one run at a time, no writes through planted links, disk full as one line.

Every stage that writes a folder (ingest, merge, train, synthesize, evaluate, the pipeline)
enters `claim(folder, stage)` (or decorates its entry with `owns`) for the whole run:

* **One run per folder.** Two runs writing the same folder corrupt it (both finalize, each
  deleting what the other wrote), so a second run refuses at once with one line naming the
  holder. The lock is an `fcntl.flock` on `folder/.xraymunit.lock`: the kernel drops it when
  the holding process dies, however it dies (kill -9, OOM, power loss), so a stale lock of a
  killed run needs no cleanup — the next run simply takes it over (and says so).
* **No writes through links planted inside the folder.** A link at `private/journal.jsonl`
  or `images/<key>` would send patient identifiers or images outside `--out`. Every path
  between the folder and a file written through `xraymunit.io.atomic` (and each stage's
  known write paths, checked up front) must be a real file or folder, never a symbolic link.
  `--out` itself may be a link to a folder: that is the user's choice, not a planted one.
* **Disk full is a user-fixable condition, not a bug:** ENOSPC / EDQUOT during the run
  become one line naming the folder (`xraymunit.io.diskspace`); every writer is atomic, so
  the rerun resumes.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import functools
import inspect
import json
import logging
import os
import socket
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Iterator

from xraymunit.errors import XraymunitError
from xraymunit.io import folder_kind
from xraymunit.io.diskspace import FULL_ERRNOS, disk_full

LOCK_NAME = ".xraymunit.lock"
BOOKKEEPING = (LOCK_NAME, folder_kind.MARKER)  # what a claim itself leaves in a folder (not outputs)
log = logging.getLogger(__name__)


class OutputFolderError(XraymunitError):
    """The output folder cannot be used as it is (message says why and what to do)."""


class FolderBusyError(OutputFolderError):
    """Another run holds the output folder."""


class UnsafeLinkError(OutputFolderError):
    """A symbolic link inside the output folder would redirect a write outside it."""


@dataclass
class _Held:
    folder: str  # absolute, not resolved: the prefix writes are checked against
    fd: int | None
    pid: int
    count: int = 1
    part_fd: int | None = None  # the exclusive lock of a shared claim's part


_held: dict[tuple[int, int], _Held] = {}  # (st_dev, st_ino) of the folder → the claim this process holds
_registry_lock = threading.RLock()


def _forget_locks_in_child() -> None:
    """In a forked child (an ingest worker, a decoder child): close the inherited lock descriptors.

    A flock belongs to the open file, which fork shares: a worker orphaned by kill -9 of its
    run kept the folder locked, and the rerun was refused naming a dead pid. Closing (never
    unlocking: that would release the parent's lock too) leaves the lock to the parent alone.
    """
    global _registry_lock
    _registry_lock = threading.RLock()  # another thread may have held it at the fork
    for held in _held.values():
        for fd in (held.fd, held.part_fd):
            if fd is not None:
                with contextlib.suppress(OSError):
                    os.close(fd)
    _held.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_locks_in_child)


# --------------------------------------------------------------------------- the lock


@contextlib.contextmanager
def claim(folder: str | os.PathLike, stage: str, *, guard: Iterable[str] = (),
          private: Iterable[str] = (), part: str | None = None) -> Iterator[Path]:
    """Hold `folder` (created if needed) exclusively for this run; yields its absolute path.

    A second claim by another process raises FolderBusyError at once (no waiting: two
    runs of one stage in one folder are a mistake, not a queue). A nested claim of the
    same folder by the same process (a pipeline calling its stages) is counted, not
    refused. `guard`: paths relative to the folder the stage will write (links refused
    up front, see check_links); `private`: sub-folders forced to mode 0700 if they exist.
    OSError ENOSPC/EDQUOT raised inside become DiskFullError (see disk_full).
    A folder this claim created and left empty (a run refused on its arguments) is removed.
    A folder another stage wrote (a cohort for train, a synthetic set for ingest) is refused
    (see folder_kind: the stage is recorded in FOLDER/.xraymunit.stage).

    `part` (e.g. "shard-3-of-16"): runs that write disjoint parts of one folder (the shards
    of a job array) share it: each holds a shared lock on the folder (so an exclusive claim
    is refused while any part runs, and vice versa) and an exclusive lock on its part
    (`.xraymunit.<part>.lock`: the same part twice is refused).
    """
    path = Path(os.path.abspath(os.fspath(folder)))
    if os.path.lexists(path) and not path.is_dir():
        raise OutputFolderError(f"{path} exists and is not a folder; choose another output folder")
    created = not path.exists()
    with disk_full(path):
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            if exc.errno in FULL_ERRNOS:
                raise
            raise OutputFolderError(f"cannot create the output folder {path}: {exc.strerror}") from None
        if not os.access(path, os.W_OK | os.X_OK):  # (a lock file left there may itself be writable)
            raise OutputFolderError(f"cannot write in the output folder {path} (read-only file system or no write "
                                    f"permission); make it writable or choose another output folder")
        st = os.stat(path)
        key = (st.st_dev, st.st_ino)
        with _registry_lock:
            held = _held.get(key)
            first = not (held is not None and held.pid == os.getpid())
            if not first:
                held.count += 1
            else:
                held = _held[key] = _Held(str(path), None, os.getpid())
                try:
                    if part is None:
                        held.fd = _acquire(path, stage)
                    else:
                        held.fd = _acquire(path, stage, shared=True)
                        held.part_fd = _acquire(path, stage, name=f".xraymunit.{part}.lock")
                except BaseException:
                    _release(path, held.fd, remove=False, shared=part is not None)
                    del _held[key]
                    raise
        marked = False
        try:
            check_links(path, [LOCK_NAME, folder_kind.MARKER, *guard])
            if first:  # (a nested claim is the same run: a pipeline calling its stages)
                marked = folder_kind.check_and_mark(path, stage, OutputFolderError)
            for name in private:
                ensure_private(path / name)
            yield path
        finally:
            if marked:
                folder_kind.forget_if_alone(path, {LOCK_NAME})
            with _registry_lock:
                held.count -= 1
                if held.count == 0:
                    del _held[key]
                    _release(path, held.part_fd, remove=False)
                    _release(path, held.fd, remove=created and held.part_fd is None, shared=held.part_fd is not None)


def owns(stage: str, arg: str, *, guard: Iterable[str] = (), private: Iterable[str] = (),
         when: Callable[[], bool] | None = None, part: Callable[[dict], str | None] | None = None):
    """Decorator: run the function inside `claim(<its argument `arg`>, stage, ...)`.

    `when`: claim only if it returns True (e.g. rank 0 of a distributed run: the other
    ranks write nothing into the folder and must not be refused by rank 0's lock).
    `part`: given the call's arguments (defaults applied), the part of the folder this call
    writes, or None for the whole folder (see claim).
    """
    guard, private = tuple(guard), tuple(private)

    def decorate(fn):
        sig = inspect.signature(fn)

        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            if when is not None and not when():
                return fn(*args, **kwargs)
            bound = sig.bind_partial(*args, **kwargs)
            bound.apply_defaults()
            folder = bound.arguments[arg]
            name = part(dict(bound.arguments)) if part is not None else None
            with claim(folder, stage, guard=guard, private=private, part=name):
                return fn(*args, **kwargs)

        return wrapper

    return decorate


def _acquire(folder: Path, stage: str, *, shared: bool = False, name: str = LOCK_NAME) -> int | None:
    lock = folder / name
    for _ in range(10):
        fd = _open_lock(lock, folder)
        try:
            fcntl.flock(fd, (fcntl.LOCK_SH if shared else fcntl.LOCK_EX) | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _describe(_read(fd) or _part_holder(folder))
            os.close(fd)
            raise FolderBusyError(f"{folder} is in use by another xraymunit run ({holder}); wait for it to "
                                  f"finish or choose another output folder") from None
        except OSError as exc:  # a filesystem without flock (some FUSE mounts): run, unlocked
            if exc.errno not in (errno.ENOLCK, errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
                os.close(fd)
                raise
            log.warning("%s: this filesystem does not support locks; make sure no other run writes this "
                        "folder at the same time", folder)
            return fd
        try:  # the previous holder may have removed the file between our open and our flock
            same = os.stat(lock, follow_symlinks=False).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if not same:
            os.close(fd)
            continue
        previous = _read(fd)
        if previous:  # a clean release empties the file: content left means its run was killed
            log.info("%s: taking over the lock of an earlier run that ended without releasing it (%s)",
                     folder, _describe(previous))
        if shared:  # parts describe themselves in their own lock files
            os.ftruncate(fd, 0)
            return fd
        record = {"stage": stage, "pid": os.getpid(), "host": socket.gethostname(),
                  "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        os.ftruncate(fd, 0)
        os.pwrite(fd, (json.dumps(record) + "\n").encode(), 0)
        return fd
    raise FolderBusyError(f"{folder}: could not take its lock (it kept changing); is another run starting?")


def _open_lock(lock: Path, folder: Path) -> int:
    """The lock file's descriptor; one line (OutputFolderError) when it cannot be one: a folder, a FIFO
    or another non-file planted in its place, or an output folder that is not writable."""
    _refuse_non_file(lock)
    try:  # O_NONBLOCK: a FIFO created after the check must not block the open
        fd = os.open(lock, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o644)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise UnsafeLinkError(_link_message(lock, folder)) from None
        if exc.errno in FULL_ERRNOS:
            raise
        if exc.errno == errno.EISDIR:
            _refuse_non_file(lock)
        raise OutputFolderError(f"cannot write in the output folder {folder} ({exc.strerror}: cannot create its "
                                f"lock file {lock.name}); make it writable or choose another output folder") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        _refuse_non_file(lock)
    return fd


def _refuse_non_file(lock: Path) -> None:
    """OutputFolderError when `lock` exists and is neither a regular file nor a link (links: UnsafeLinkError)."""
    try:
        mode = os.lstat(lock).st_mode
    except OSError:
        return
    if stat.S_ISREG(mode) or stat.S_ISLNK(mode):
        return
    kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
    raise OutputFolderError(f"{lock} is {kind}, not xraymunit's lock file; remove it (or choose another output "
                            f"folder)")


def _release(folder: Path, fd: int | None, remove: bool, shared: bool = False) -> None:
    if fd is None:
        return
    try:
        if not shared:  # (a shared holder leaves the file to the others)
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
        if remove:  # created by this claim and nothing else written: leave no trace of a refused run
            with contextlib.suppress(OSError):
                if [p.name for p in folder.iterdir()] == [LOCK_NAME]:
                    (folder / LOCK_NAME).unlink()
                    folder.rmdir()
    finally:
        with contextlib.suppress(OSError):
            fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)


def _read(fd: int) -> dict | None:
    try:
        text = os.pread(fd, 4096, 0).decode("utf-8", "replace").strip()
    except OSError:
        return None
    if not text:
        return None
    try:
        data = json.loads(text)
    except json.JSONDecodeError:
        return {}
    return data if isinstance(data, dict) else {}


def _part_holder(folder: Path) -> dict | None:
    """The holder named in a part's lock file (shared claims write nothing in the folder's own)."""
    for path in sorted(folder.glob(".xraymunit.*.lock")):
        with contextlib.suppress(OSError):
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
            try:
                if found := _read(fd):
                    return found
            finally:
                os.close(fd)
    return None


def _describe(holder: dict | None) -> str:
    if not holder:
        return "holder unknown"
    parts = [f"{holder.get('stage', '?')}, pid {holder.get('pid', '?')}"]
    if holder.get("host") and holder["host"] != socket.gethostname():
        parts.append(f"on {holder['host']}")
    if holder.get("started"):
        parts.append(f"since {holder['started']}")
    return " ".join(parts)


def holder(folder: str | os.PathLike) -> dict | None:
    """Who holds `folder` now (stage, pid, host, started), or None when nobody does."""
    lock = Path(folder) / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return _read(fd) or {}
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def is_output_folder(folder: str | os.PathLike) -> bool:
    """Whether an xraymunit stage has claimed this folder (held now or not)."""
    return os.path.lexists(os.path.join(os.fspath(folder), LOCK_NAME))


# --------------------------------------------------------------------------- links


def check_links(folder: str | os.PathLike, relative: Iterable[str | os.PathLike]) -> None:
    """Refuse (UnsafeLinkError) if any existing component of folder/REL (for each REL) is a link.

    Dangling links count (lstat, never stat): a dangling `private/salt.key` link would make
    the salt be created wherever it points. The folder itself may be a link.
    """
    folder = Path(folder)
    for rel in relative:
        path = folder
        for part in Path(rel).parts:
            path = path / part
            try:
                mode = os.lstat(path).st_mode
            except (FileNotFoundError, NotADirectoryError):
                break
            if stat.S_ISLNK(mode):
                raise UnsafeLinkError(_link_message(path, folder))


def check_write_path(path: str | os.PathLike) -> None:
    """Before writing `path`: refuse if it lies in a folder this process claimed and any
    component between that folder and the file is a link. Paths elsewhere are not checked."""
    target = os.path.abspath(os.fspath(path))
    with _registry_lock:
        folders = [h.folder for h in _held.values() if h.pid == os.getpid()]
    inner = None
    for folder in folders:
        if target.startswith(folder.rstrip(os.sep) + os.sep) and (inner is None or len(folder) > len(inner)):
            inner = folder
    if inner is not None:
        check_links(inner, [os.path.relpath(target, inner)])


def _link_message(path: Path, folder: Path) -> str:
    return (f"{path} is a symbolic link inside the output folder {folder}; xraymunit never writes through "
            f"links there: remove it (or choose another output folder)")


def ensure_private(path: str | os.PathLike) -> None:
    """Force mode 0700 on an existing private folder (salt, PatientID journal); log when it changes."""
    path = Path(path)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeLinkError(_link_message(path, path.parent))
    if stat.S_ISDIR(st.st_mode) and stat.S_IMODE(st.st_mode) != 0o700:
        os.chmod(path, 0o700)
        log.warning("%s had mode %04o; set to 0700 (it holds the salt and identifiers)", path,
                    stat.S_IMODE(st.st_mode))
