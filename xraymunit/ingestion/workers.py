"""Ingest's worker processes: a dead worker costs the one file it held, never a hang; workers die with the run.

`multiprocessing.Pool` never answers for a task whose worker died (a native decoder crash, an
OOM kill, kill -9): the run waited forever with the folder locked. Here each worker holds one
task at a time, so the parent always knows which file a dead worker had: `imap` yields
`on_death(task, exitcode)` for it (recorded `failed`, reason "worker_died"), starts a new
worker and goes on. Workers ask the kernel to kill them when the run's process dies
(PR_SET_PDEATHSIG; elsewhere a thread watching the parent pid), and they never hold the
output folder's lock (`outdir` closes its lock descriptors in every forked child).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import Any, Callable, Iterable, Iterator

from xraymunit.io import dicom
from xraymunit.io.child import die_with_parent

_QUIET: list = []


def _worker_init(parent_pid: int) -> None:
    """One thread each (the parallelism is across processes); Ctrl-C and SIGTERM handled by the parent
    (SIGTERM's default restored: the run's own handler, inherited at fork, would make it ignored)."""
    from xraymunit.ingestion.per_file import tune_allocator

    die_with_parent(parent_pid)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    tune_allocator()
    os.environ["OMP_NUM_THREADS"] = "1"
    _QUIET.append(dicom.quiet_pydicom())
    _QUIET[-1].__enter__()  # for the worker's lifetime
    torch = sys.modules.get("torch")  # imported by the parent before the fork (never imported here: seconds)
    if torch is not None:
        torch.set_num_threads(1)


def _serve(fn: Callable, conn: Connection, parent_pid: int, inherited: list[int]) -> None:
    """A worker's loop: a task in, its result (or its exception) out, until told to stop."""
    for fd in inherited:  # the other workers' pipes: their ends must close when those workers die
        with contextlib.suppress(OSError):
            os.close(fd)
    _worker_init(parent_pid)
    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):
            return
        if task is None:
            return
        try:
            reply = ("ok", fn(task))
        except BaseException as exc:  # noqa: BLE001 - raised again in the parent
            reply = ("error", exc)
        try:
            conn.send(reply)
        except Exception as exc:  # noqa: BLE001 - an exception that does not pickle
            conn.send(("error", RuntimeError(f"{type(reply[1]).__name__}: {reply[1]} ({exc})")))


# tasks in hand per worker: the next one waits in its pipe while it works on the first (no idle
# round trip), and a worker works in order, so the one it died on is still the first of its list
_DEPTH = 2


@dataclass
class _Worker:
    process: Any
    conn: Connection
    tasks: deque = field(default_factory=deque)


class WorkerPool:
    """`workers` processes, started for each `imap` (forked: the task function need not pickle)."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self._context = mp.get_context("fork" if "fork" in mp.get_all_start_methods() else "spawn")
        self._live: list[_Worker] = []
        self._pending: Iterator = iter(())
        self._retry: deque = deque()  # tasks a dead worker had not started yet

    def imap(self, fn: Callable, items: Iterable, on_death: Callable[[Any, int | None], Any],
             stop=None) -> Iterator:
        """fn(item) for every item, in completion order; for an item whose worker died,
        on_death(item, exitcode) instead. Ends early once `stop.requested` (a StopFlag)."""
        self._pending, self._retry, self._live = iter(items), deque(), []
        try:
            for _ in range(self.workers):
                self._live.append(self._start(fn))
            for worker in self._live:
                self._fill(worker)
            while any(w.tasks for w in self._live):
                busy = [w for w in self._live if w.tasks]
                ready = set(wait([w.conn for w in busy] + [w.process.sentinel for w in busy], timeout=0.5))
                if stop is not None and stop.requested:
                    return  # a worker killed by the same SIGTERM is no failed file
                for worker in busy:
                    if worker.conn in ready or worker.process.sentinel in ready:
                        yield from self._collect(worker, fn, on_death)
        finally:
            self.close(abort=True)

    def _collect(self, worker: _Worker, fn: Callable, on_death: Callable) -> Iterator:
        try:
            status, value = worker.conn.recv()  # replies sent before dying are read before the end of file
        except (EOFError, OSError):
            worker.process.join()
            culprit = worker.tasks.popleft()
            self._retry.extend(worker.tasks)
            self._replace(worker, fn)
            yield on_death(culprit, worker.process.exitcode)
            return
        worker.tasks.popleft()
        if status == "error":
            raise value
        self._fill(worker)
        yield value

    def _replace(self, dead: _Worker, fn: Callable) -> None:
        dead.conn.close()
        fresh = self._start(fn)
        self._live[self._live.index(dead)] = fresh
        self._fill(fresh)

    def _start(self, fn: Callable) -> _Worker:
        parent_end, child_end = self._context.Pipe()
        inherited = [w.conn.fileno() for w in self._live if not w.conn.closed]
        process = self._context.Process(target=_serve, args=(fn, child_end, os.getpid(), inherited), daemon=True,
                                        name="xraymunit-ingest-worker")
        process.start()
        child_end.close()  # only the worker holds it: its death is an end-of-file here
        return _Worker(process, parent_end)

    def _fill(self, worker: _Worker) -> None:
        while len(worker.tasks) < _DEPTH:
            task = self._retry.popleft() if self._retry else next(self._pending, None)
            if task is None:
                return
            try:
                worker.conn.send(task)
            except OSError:  # it died meanwhile: its end of file is read next, the task goes to another
                self._retry.appendleft(task)
                return
            worker.tasks.append(task)

    def close(self, abort: bool = False) -> None:
        """Stop every worker: asked to finish (or, `abort`, terminated), killed if still there after 5 s."""
        for worker in self._live:
            with contextlib.suppress(OSError):
                if abort:
                    worker.process.terminate()
                else:
                    worker.conn.send(None)
        deadline = time.monotonic() + 5.0
        for worker in self._live:
            worker.process.join(max(0.0, deadline - time.monotonic()))
            if worker.process.is_alive():
                worker.process.kill()
                worker.process.join()
            worker.conn.close()
        self._live = []


class Runner:
    """Maps a task function over items in-process (workers=1) or over a `WorkerPool`."""

    def __init__(self, workers: int) -> None:
        self.workers = workers
        self.pool = None
        if workers > 1:
            import xraymunit.data.transforms  # noqa: F401  (imported once here; forked workers inherit it)

            self.pool = WorkerPool(workers)

    def imap(self, fn: Callable, items: Iterable, on_death: Callable[[Any, int | None], Any], stop=None) -> Iterator:
        """Results in completion order; `on_death(item, exitcode)` stands for an item whose worker died;
        with `stop` (a StopFlag) the results end early once a stop is requested."""
        if self.pool is None:
            return map(fn, items)
        return self.pool.imap(fn, items, on_death, stop)

    def close(self, abort: bool = False) -> None:
        if self.pool is not None:
            self.pool.close(abort)
            self.pool = None
