"""One generic pipeline stage: skipped when its outputs exist and were made with the same fingerprint.

Every stage of the chain (ingest, train, synthesize, evaluate, and the per-level copies) is a
`Stage`; `run_stage` is the one place that decides skip / set aside / run and records it in
OUT/pipeline_state.json ("running" before, "done" after, so a crash leaves "running" and the
rerun resumes the stage rather than trusting half-written outputs).
"""

from __future__ import annotations

import logging
import re
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Literal

from xraymunit.pipeline.state import State, set_aside
from xraymunit.stopping import Stopped

log = logging.getLogger("xraymunit.pipeline")
N_STEPS = 4


@dataclass
class Stage:
    """What a stage needs to be skipped, resumed or rerun.

    key: its entry in pipeline_state.json (ingest, train, train_10, ...); step: its place in the
    chain (1-4, for the log); fingerprint: SHA-256 of its settings and inputs; output: a file that
    exists once it finished; folder: what it writes (set aside to <folder>.previous[.N]/ when made
    from other settings); announce: the log line when it runs (called after setting aside); work: runs
    it and returns a one-line summary. core: the fingerprint of the settings a resume may not change
    (train: more steps continue the run). aside: "stale" (made from other settings), "unknown" (also
    when the folder exists but the state does not know it), "never" (the stage reuses what it can).
    info: extra fields recorded in the state.
    """

    key: str
    step: int
    fingerprint: str
    output: Path
    folder: Path
    announce: Callable[[], str]
    work: Callable[[], str]
    core: str | None = None
    aside: Literal["stale", "unknown", "never"] = "stale"
    info: dict = field(default_factory=dict)

    @property
    def prefix(self) -> str:
        return f"[{self.step}/{N_STEPS}] {self.key}"


def run_stage(state: State, stage: Stage) -> bool:
    """Run `stage` unless it is up to date; returns whether it ran."""
    if state.up_to_date(stage.key, stage.fingerprint, stage.output):
        log.info("%s: up to date (%s)", stage.prefix, stage.folder)
        return False
    if _outputs_stale(state, stage):
        set_aside(stage.folder)
    info = dict(stage.info, **({"core": stage.core} if stage.core else {}))
    state.mark(stage.key, stage.fingerprint, "running", **info)
    t = time.perf_counter()
    log.info("%s %s", stage.prefix, stage.announce())
    try:
        summary = stage.work()
    except Stopped as exc:  # the stage's own advice (train: "rerun with --resume") is not the pipeline's
        raise Stopped(f"{stage.prefix} stopped: {_without_advice(str(exc))}; its progress is kept — rerun the same "
                      f"pipeline command to resume (finished stages are skipped)") from None
    seconds = time.perf_counter() - t
    state.mark(stage.key, stage.fingerprint, "done", seconds=round(seconds, 1), **info)
    log.info("%s done in %.1fs%s", stage.prefix, seconds, f": {summary}" if summary else "")
    return True


def _without_advice(message: str) -> str:
    """A stage's stop message without its closing 'rerun ...' advice (which names that stage's CLI)."""
    return re.split(r"[;,]?\s*(?:—\s*)?rerun\b", message, maxsplit=1)[0].rstrip(" ;,—")


def _outputs_stale(state: State, stage: Stage) -> bool:
    if stage.aside == "never":
        return False
    unknown = stage.aside == "unknown" and stage.folder.exists() and not state.data.get(stage.key)
    return unknown or state.stale(stage.key, stage.fingerprint, stage.core)
