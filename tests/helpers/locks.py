"""Hold an output folder's lock from another process, as a concurrent xraymunit run would."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Iterator

_HOLD = """
import sys, time
from xraymunit.io import outdir
with outdir.claim(sys.argv[1], sys.argv[2], part=sys.argv[3] or None):
    print("ready", flush=True)
    time.sleep(600)
"""


def start_holder(folder: Path, stage: str = "ingest", part: str | None = None) -> subprocess.Popen:
    """A child process that claims `folder` (or a part of it) and sleeps; returns once the claim is held."""
    proc = subprocess.Popen([sys.executable, "-c", _HOLD, str(folder), stage, part or ""], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, cwd=Path(__file__).resolve().parents[2])
    line = proc.stdout.readline()
    if line.strip() != "ready":
        proc.kill()
        raise RuntimeError(f"lock holder did not start: {proc.stderr.read()}")
    return proc


@contextlib.contextmanager
def held_elsewhere(folder: Path, stage: str = "ingest", part: str | None = None) -> Iterator[subprocess.Popen]:
    proc = start_holder(folder, stage, part)
    try:
        yield proc
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        proc.stderr.close()
