"""Run a native library call in a forked child, so that its crash costs one call, not the process.

GDCM (SimpleITK's DICOM decoder) segfaults on some corrupt JPEG headers; in process, that
killed the whole ingest before the journal could record the file, so every rerun died on
it again. In a child, a crash becomes `ChildCrashed` ("signal 11, SIGSEGV"), which the caller
records against the file. The result (or the exception) comes back pickled through a pipe.
"""

from __future__ import annotations

import contextlib
import faulthandler
import os
import pickle
import signal
import threading
import time
from typing import Any, Callable

from xraymunit.errors import XraymunitError


class ChildCrashed(XraymunitError):
    """The child ended without an answer: killed by a signal (a native crash) or exited early."""


def signal_text(exitcode: int | None) -> str:
    """A process's end as people read it: "signal 11, SIGSEGV" or "exit status 3" (`exitcode` as
    multiprocessing gives it: negative for a signal)."""
    if exitcode is not None and exitcode < 0:
        with contextlib.suppress(ValueError):
            return f"signal {-exitcode}, {signal.Signals(-exitcode).name}"
        return f"signal {-exitcode}"
    return f"exit status {exitcode}"


def die_with_parent(parent_pid: int) -> None:
    """Make this (forked) process end when `parent_pid` does: an orphaned worker or decoder child
    would go on working for nobody."""
    try:
        import ctypes

        pr_set_pdeathsig = 1
        if ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, int(signal.SIGKILL), 0, 0, 0) != 0:
            raise OSError("prctl failed")
    except (OSError, AttributeError):  # not Linux: watch the parent's pid instead
        def watch() -> None:
            while os.getppid() == parent_pid:
                time.sleep(1.0)
            os._exit(1)

        threading.Thread(target=watch, name="parent-watch", daemon=True).start()
    if os.getppid() != parent_pid:  # the parent died before the request was in place
        os._exit(1)


def call_in_child(fn: Callable[..., Any], *args: Any) -> Any:
    """fn(*args) in a forked child: its return value, or its exception raised here; ChildCrashed
    when the child dies without answering. Where fork is missing, fn runs in this process."""
    if not hasattr(os, "fork"):  # pragma: no cover - Windows
        return fn(*args)
    read_end, write_end = os.pipe()
    parent_pid = os.getpid()
    pid = os.fork()
    if pid == 0:  # the child: answer, then leave at once (no atexit handlers, no flushing the parent's buffers)
        try:
            os.close(read_end)
            _answer(write_end, fn, args, parent_pid)
        finally:
            os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as fp:
        data = fp.read()
    _, status = os.waitpid(pid, 0)
    if not data or os.WIFSIGNALED(status):
        raise ChildCrashed(signal_text(os.waitstatus_to_exitcode(status)))
    kind, value = pickle.loads(data)
    if kind == "error":
        raise value
    return value


def _answer(fd: int, fn: Callable[..., Any], args: tuple, parent_pid: int) -> None:
    die_with_parent(parent_pid)
    faulthandler.disable()  # a crash here is expected and reported by the parent, not dumped on the terminal
    quiet = os.open(os.devnull, os.O_WRONLY)
    os.dup2(quiet, 1)  # nor the native library's own messages ("Bogus Huffman table definition", …)
    os.dup2(quiet, 2)
    try:
        reply = pickle.dumps(("ok", fn(*args)), protocol=pickle.HIGHEST_PROTOCOL)
    except BaseException as exc:  # noqa: BLE001 - raised again in the parent
        try:
            reply = pickle.dumps(("error", exc))
        except Exception:  # noqa: BLE001 - an exception that does not pickle
            reply = pickle.dumps(("error", RuntimeError(f"{type(exc).__name__}: {exc}")))
    with os.fdopen(fd, "wb") as fp:
        fp.write(reply)
