"""Graceful stop on SIGTERM (batch schedulers, spot instances): finish the unit, save, exit 143.

A stage wraps its main loop in `with stop_requests() as stop:` and asks `stop.requested` between
units of work (a training step, a batch of images, a classifier run). On SIGTERM the handler
only sets the flag; the stage writes its resumable state and raises `Stopped`, which the CLI
turns into one line and exit status 143 (128 + SIGTERM, what schedulers expect). A second
SIGTERM while saving is ignored; SIGKILL after the grace period cannot be caught — the atomic
writes then leave the last saved state intact.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from typing import Iterator

from xraymunit.errors import XraymunitError

EXIT_TERMINATED = 128 + signal.SIGTERM


class Stopped(XraymunitError):
    """The stage stopped early on SIGTERM after saving; rerunning resumes. `exit_code` is 143."""

    exit_code = EXIT_TERMINATED


class StopFlag:
    def __init__(self) -> None:
        self.requested = False
        self.signal_name = ""

    def request(self, signum: int, _frame=None) -> None:
        self.requested = True
        self.signal_name = signal.Signals(signum).name


@contextlib.contextmanager
def stop_requests(signals: tuple[int, ...] = (signal.SIGTERM,)) -> Iterator[StopFlag]:
    """Catch `signals` for the duration (main thread only; elsewhere the flag simply stays False)."""
    flag = StopFlag()
    if threading.current_thread() is not threading.main_thread():
        yield flag
        return
    previous = {s: signal.signal(s, flag.request) for s in signals}
    try:
        yield flag
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
