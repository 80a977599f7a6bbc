"""Several processes for one study: the classifier runs shared out over torchrun ranks or over
local worker processes (`--workers N`).

Each process builds the same plan (plan_study is deterministic), takes the runs i with
i % world == rank, and writes every finished run to OUT/runs/ (the run cache). Rank 0 / the
parent then reads all runs back from the cache and writes the report once, so the report is
the sequential run's: a run's scores depend on its fingerprint, never on who trained it.
"""

from __future__ import annotations

import logging
import multiprocessing
import os
import signal
from dataclasses import dataclass
from pathlib import Path

import torch

from xraymunit.config.evaluate import EvaluateConfig
from xraymunit.errors import XraymunitError
from xraymunit.runtime import resolve_threads
from xraymunit.stopping import EXIT_TERMINATED

log = logging.getLogger(__name__)


def share(jobs: list, rank: int, world: int) -> list:
    """This process's deterministic share of the runs: run i goes to rank i % world."""
    return [job for i, job in enumerate(jobs) if i % world == rank]


def cpu_threads(cfg: EvaluateConfig, processes: int) -> int:
    """Torch threads per process, so `processes` processes together do not oversubscribe the CPUs
    this one may use (`xraymunit.runtime.resolve_threads`)."""
    return cfg.threads or max(1, resolve_threads()[0] // max(processes, 1))


def worker_device(device: str, index: int) -> str:
    """Worker `index`'s device: plain cuda / auto with GPUs → round-robin cuda:i; else as asked."""
    if device in ("cuda", "auto") and torch.cuda.is_available() and torch.cuda.device_count() > 0:
        return f"cuda:{index % torch.cuda.device_count()}"
    return device


@dataclass(frozen=True)
class WorkerTask:
    """What a worker process needs to rebuild the plan (paths only: picklable)."""

    cohort: str
    synthetic: object  # None, a folder, a list of folders, or {level name: folder, [folders] or None}
    out: str
    resume: bool
    show: bool
    test_cohorts: tuple[str, ...] = ()  # --test-cohort folders (external validation)


class WorkerFailed(XraymunitError):
    """A worker process ended with an error or was killed (the message says which)."""


def run_workers(task: WorkerTask, cfg: EvaluateConfig, n_jobs: int, stop) -> bool:
    """Train the study's n_jobs runs in cfg.workers spawned processes (no more than there are runs);
    False when stopped by `stop`.

    On a stop request the workers are sent SIGTERM: each abandons its current run; the runs
    they finished are in the cache.
    """
    ctx = multiprocessing.get_context("spawn")
    n = max(1, min(cfg.workers, n_jobs))
    procs = [ctx.Process(target=_worker, args=(i, n, task, cfg), name=f"evaluate-worker-{i}") for i in range(n)]
    for p in procs:
        p.start()
    return supervise(procs, stop)


def supervise(procs: list, stop) -> bool:
    """Wait for the started worker processes; SIGTERM them on a stop request. False when stopped;
    WorkerFailed (saying how each failed one ended) when one failed."""
    stopping = False
    while any(p.is_alive() for p in procs):
        for p in procs:
            p.join(timeout=0.2)
        if stop.requested and not stopping:
            stopping = True
            for p in procs:
                if p.is_alive():
                    os.kill(p.pid, signal.SIGTERM)
    failed = [(p.name, p.exitcode) for p in procs if p.exitcode not in (0, EXIT_TERMINATED)]
    if failed and not stopping:
        raise WorkerFailed(f"{len(failed)} evaluate worker(s) failed ({'; '.join(how_it_ended(n, c) for n, c in failed)}); "
                           "rerun to resume from the finished runs")
    return not (stopping or any(p.exitcode == EXIT_TERMINATED for p in procs))


def how_it_ended(name: str, exitcode: int | None) -> str:
    """A failed worker's end in words: a signal leaves no message of its own (SIGKILL is often the
    out-of-memory killer), an exit status follows the worker's traceback printed above."""
    if exitcode is not None and exitcode < 0:
        try:
            sig = signal.Signals(-exitcode).name
        except ValueError:
            sig = f"signal {-exitcode}"
        oom = ", often the out-of-memory killer" if -exitcode == signal.SIGKILL else ""
        return f"{name} was killed by {sig} ({-exitcode}{oom}): it logged nothing"
    return f"{name} exited with status {exitcode}: its error is printed above"


def _worker(index: int, workers: int, task: WorkerTask, cfg: EvaluateConfig) -> None:
    """One spawned worker: rebuild the plan, train its share of the runs into the cache."""
    from xraymunit.evaluation.classifier import RunAbandoned
    from xraymunit.evaluation.plan import plan_study
    from xraymunit.evaluation.runcache import RunCache
    from xraymunit.evaluation.runs import RunExecutor, run_share
    from xraymunit.runtime import resolve_device
    from xraymunit.stopping import stop_requests

    with stop_requests() as stop:
        device = resolve_device(worker_device(cfg.device, index))
        if device.type == "cpu":
            torch.set_num_threads(cpu_threads(cfg, workers))
        elif cfg.threads:
            torch.set_num_threads(cfg.threads)
        plan = plan_study(task.cohort, task.synthetic, cfg, test_cohorts=task.test_cohorts)
        executor = RunExecutor(plan, cfg, device, RunCache(Path(task.out) / "runs", enabled=task.resume))
        try:
            run_share(executor, share(plan.jobs(), index, workers), show=task.show, stop=stop,
                      desc=f"evaluate worker {index}", position=index)
        except RunAbandoned:
            raise SystemExit(EXIT_TERMINATED) from None


def paths_of(synthetic):
    """The synthetic argument with opened sets replaced by their folders (for a worker process)."""
    from collections.abc import Mapping

    if synthetic is None or isinstance(synthetic, (str, Path)):
        return None if synthetic is None else str(synthetic)
    if isinstance(synthetic, Mapping):
        return {str(k): paths_of(v) for k, v in synthetic.items()}
    if isinstance(synthetic, (list, tuple)):
        return [paths_of(v) for v in synthetic]
    return str(synthetic.root)
