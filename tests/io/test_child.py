"""A native call in a forked child: its crash is an exception here; forked children never hold a folder's lock."""

import os
import signal
from pathlib import Path

import pytest

from xraymunit.io import outdir
from xraymunit.io.child import ChildCrashed, call_in_child, signal_text


def _segfault():
    os.kill(os.getpid(), signal.SIGSEGV)


def _fail():
    raise ValueError("bad file")


def test_the_result_or_the_exception_comes_back_and_a_crash_is_childcrashed():
    assert call_in_child(pow, 3, 4) == 81
    assert call_in_child(os.getpid) != os.getpid()
    with pytest.raises(ValueError, match="bad file"):
        call_in_child(_fail)
    with pytest.raises(ChildCrashed, match=r"^signal 11, SIGSEGV$"):
        call_in_child(_segfault)
    assert signal_text(-9) == "signal 9, SIGKILL" and signal_text(3) == "exit status 3"


def _open_lock_files() -> list[str]:
    found = []
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:  # the listing's own descriptor, closed by now
            continue
        if target.endswith(outdir.LOCK_NAME):
            found.append(target)
    return found


@pytest.mark.skipif(not Path("/proc/self/fd").is_dir(), reason="lists open files in /proc (Linux)")
def test_a_forked_child_does_not_hold_the_output_folders_lock(tmp_path):
    """A flock is shared with every fork: orphaned children kept a killed run's folder locked."""
    with outdir.claim(tmp_path / "out", "ingest"):
        assert _open_lock_files()  # this process holds it…
        assert call_in_child(_open_lock_files) == []  # …its child does not
        assert outdir.holder(tmp_path / "out")["pid"] == os.getpid()  # and closing it there kept the lock
