"""Progress of a long stage: a tqdm bar on a terminal, else a periodic log line.

With stderr not a terminal (SLURM, nohup, a script) or `--no-progress`, bars are off; a run
that only logged at its start and end would look hung for hours. So every long loop (ingest,
train, synthesize, evaluate, the judge) goes through `progress()`: the same object either way,
and without a bar it logs one INFO line every `XRAYMUNIT_PROGRESS_EVERY` seconds (default 30)
— done/total, rate, ETA and the loop's latest numbers (losses, current run) — plus one at the
end of any loop that lasted that long. A --log-file of a long run is thus readable as it grows.
"""

from __future__ import annotations

import logging
import math
import os
import time
from typing import Any, Callable

log = logging.getLogger("xraymunit.progress")

EVERY_ENV = "XRAYMUNIT_PROGRESS_EVERY"
DEFAULT_EVERY_S = 30.0


def every_seconds() -> float:
    """Seconds between log lines: $XRAYMUNIT_PROGRESS_EVERY, else 30 (a bad value: the default, and a
    warning that says so, once per process)."""
    raw = os.environ.get(EVERY_ENV)
    if raw is None:
        return DEFAULT_EVERY_S
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if value > 0 and math.isfinite(value):
        return value
    _warn_once(f"${EVERY_ENV}={raw!r} is not a positive number of seconds: progress lines every "
               f"{DEFAULT_EVERY_S:g} s")
    return DEFAULT_EVERY_S


_WARNED: set[str] = set()


def _warn_once(message: str) -> None:
    if message not in _WARNED:
        _WARNED.add(message)
        log.warning(message)


def progress(total: int, desc: str, unit: str = "it", *, bar: bool, lines: bool = True, initial: int = 0,
             clock: Callable[[], float] = time.monotonic, every_s: float | None = None, **tqdm_kwargs: Any):
    """A tqdm bar when `bar`, else a `ProgressLog` (silent when not `lines`, e.g. on torchrun ranks
    other than 0). Both take update(n), set_postfix_str(text), set_postfix(**values) and close(),
    and work as context managers."""
    if bar:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, unit=unit, initial=initial, **tqdm_kwargs)
    return ProgressLog(total, desc, unit, initial=initial, enabled=lines, clock=clock,
                       every_s=every_seconds() if every_s is None else every_s)


class ProgressLog:
    """The bar's stand-in for logs: a line every `every_s` seconds of clock time, none in between."""

    def __init__(self, total: int, desc: str, unit: str = "it", *, initial: int = 0, enabled: bool = True,
                 clock: Callable[[], float] = time.monotonic, every_s: float = DEFAULT_EVERY_S):
        self.total, self.desc, self.unit, self.n = int(total or 0), desc, unit, int(initial)
        self.enabled, self.clock, self.every_s = enabled, clock, every_s
        self.initial, self.postfix, self.lines = int(initial), "", 0
        self.start = self.last = clock()

    def update(self, n: int = 1) -> None:
        self.n += n
        if self.enabled and self.clock() - self.last >= self.every_s:
            self._emit()

    def set_postfix_str(self, text: str = "", refresh: bool = True) -> None:
        self.postfix = str(text)

    def set_postfix(self, ordered_dict=None, refresh: bool = True, **values: Any) -> None:
        items = {**(ordered_dict or {}), **values}
        self.postfix = ", ".join(f"{k}={v}" for k, v in items.items())

    def close(self) -> None:
        """A last line for a loop that lasted at least one period (short loops stay quiet)."""
        if self.enabled and self.clock() - self.start >= self.every_s and self.last != self.clock():
            self._emit(final=True)
        self.enabled = False

    def __enter__(self) -> "ProgressLog":
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def line(self, final: bool = False) -> str:
        """'train: 1200/5000 it (24%), 3.20 it/s, ETA 19m48s; g=1.2, d=0.5'."""
        now = self.clock()
        elapsed = max(now - self.start, 1e-9)
        rate = (self.n - self.initial) / elapsed
        total = f"/{self.total}" if self.total else ""
        share = f" ({100 * self.n / self.total:.0f}%)" if self.total else ""
        if final:
            when = f"in {_duration(elapsed)}"
        elif self.total and rate > 0:
            when = f"ETA {_duration(max(self.total - self.n, 0) / rate)}"
        else:
            when = "ETA ?"
        text = f"{self.desc}: {self.n}{total} {self.unit}{share}, {_rate(rate, self.unit)}, {when}"
        return f"{text}; {self.postfix}" if self.postfix else text

    def _emit(self, final: bool = False) -> None:
        log.info("%s", self.line(final))
        self.last = self.clock()
        self.lines += 1


def _rate(rate: float, unit: str) -> str:
    return f"{rate:.2f} {unit}/s" if rate >= 0.1 or rate == 0 else f"{60 * rate:.2f} {unit}/min"


def _duration(seconds: float) -> str:
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m" if h else f"{m}m{s:02d}s" if m else f"{s}s"
