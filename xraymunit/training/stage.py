"""Stage 2: train a grayscale MUNIT between two labelled domains of a cohort.

    cohort/ ─train→ runs/NAME/ (config.yaml, checkpoints/, samples/, tensorboard/, metrics.csv)

`train()` reads top to bottom: plan (device, data, resume; `plan.py`) → build (networks,
optimisers; `plan.py`, `xraymunit.checkpoint`) → execute (`loop.py`, one `MunitStep` per
step, `step.py`) → record (`records.py`). The same code runs on CPU, one GPU, or several
under `torchrun` (DDP, `distributed.py`). SIGTERM: the current step finishes, last.pt is
saved, `Stopped` is raised (exit 143); `resume=True` continues exactly.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import torch

from xraymunit import config as config_mod
from xraymunit.config.train import TrainConfig
from xraymunit.seeding import stable_seed
from xraymunit.io import outdir
from xraymunit.progress import progress as progress_meter
from xraymunit.runtime import apply_threads, progress_enabled
from xraymunit.stopping import stop_requests
from xraymunit.training.data import display_batch, make_loader
from xraymunit.distributed import is_main_process
from xraymunit.training.loop import Loop, Records
from xraymunit.training.plan import Parts, Plan, build_parts, plan
from xraymunit.training.records import Checkpointer, Clock, RunLog, quality_monitor

log = logging.getLogger(__name__)



@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    steps: int
    images_per_second: float
    last_losses: dict[str, float]

    def __repr__(self) -> str:  # one line: the losses are in metrics.csv
        return (f"TrainResult({self.run_dir}: {self.steps} steps, {self.images_per_second:.1f} images/s; "
                f"checkpoint {self.checkpoint})")


@outdir.owns("train", "out", when=is_main_process,
             guard=("checkpoints", "checkpoints/last.pt", "checkpoints/best.pt", "tensorboard", "samples",
                    "config.yaml", "metrics.csv", "quality.csv", "quality.png", "shortcut_test.json"))
def train(cohort: str | Path, out: str | Path, config: TrainConfig | str | Path | None = None, *,
          resume: bool = False, progress: bool | None = None, threads: int | None = None,
          overrides: Sequence[str] = ()) -> TrainResult:
    """Train MUNIT on `cohort` (domains from the manifest labels) and write the run to `out`.

    Args:
        cohort: an ingested cohort folder.
        out: the run folder (created). If it already holds a run, `resume=True` continues
            it exactly from `checkpoints/last.pt`; without it the call refuses to overwrite.
        config: a TrainConfig, a shipped config's name (e.g. "munit_cxr_128_cpu") or a YAML path
            (default: the paper's settings at 256²).
        resume: continue an interrupted (or SIGTERM-stopped) run.
        progress: a tqdm bar with it/s and ETA on rank 0 (None: only when stderr is a terminal; without
            a bar, a progress line in the log every 30 s).
        threads: CPU threads of torch (None: `xraymunit.runtime.resolve_threads`'s automatic rule).
        overrides: "key=value" settings applied on top of `config`, as `--set` does (e.g. "train.steps=500").

    Raises:
        xraymunit.stopping.Stopped: on SIGTERM, after saving last.pt at the step just finished.
    """
    cfg = config_mod.resolve(TrainConfig, config, overrides)
    apply_threads(threads)
    p = plan(cohort, Path(out), cfg, resume)
    parts = build_parts(p)
    seconds_before = float(p.state.get("extra", {}).get("train_seconds", 0.0)) if p.state is not None else 0.0
    p.state = None  # the resumed weights are in the networks now; free the copy
    clock = Clock(seconds_before)
    records = _records(p, parts, cohort, clock)
    if parts.start_step >= cfg.train.steps:
        log.info("nothing to do: the run is already at step %d of %d", parts.start_step, cfg.train.steps)
        records.run_log.close()
        return TrainResult(p.out, p.last_path, parts.start_step, 0.0, {})
    loader = make_loader(p.cohort, p.idx_a, p.idx_b, cfg, parts.start_step, p.dist, p.device)
    if p.dist.main:  # a bar on a terminal, else a log line every 30 s
        records.bar = progress_meter(cfg.train.steps, "train", "it", bar=progress_enabled(progress),
                               initial=parts.start_step, dynamic_ncols=True)
    parts.gens.train()
    parts.dis.train()
    try:
        with stop_requests() as stop:
            clock.restart()
            loop = Loop(p, parts, records, stop)
            step = loop.run(loader)
    finally:
        _close(records)
    p.dist.barrier()  # nobody leaves before rank 0 has written the last checkpoint
    rate = (step - parts.start_step) * loop.images_per_step / max(clock.elapsed(), 1e-9)
    return TrainResult(p.out, p.last_path, step, rate, loop.last_losses)


def _records(p: Plan, parts: Parts, cohort: str | Path, clock: Clock) -> Records:
    """The run log, checkpointer, display images and fixed styles of the sample grids, quality monitor."""
    cfg, device = p.cfg, p.device
    start = parts.start_step
    checkpointer = Checkpointer(p.out, cfg, parts.gens, parts.dis, parts.optimizers, parts.schedulers,
                                p.provenance(cohort), clock)
    run_log = RunLog(p.out, start, enabled=p.dist.main)
    display_a = display_batch(p.cohort, p.idx_a, cfg.train.n_sample_images, cfg.data.crop_size, device)
    display_b = display_batch(p.cohort, p.idx_b, cfg.train.n_sample_images, cfg.data.crop_size, device)
    fixed = torch.Generator().manual_seed(stable_seed(cfg.train.seed, "display-styles"))
    styles = torch.randn(2, cfg.train.n_sample_styles, cfg.model.style_dim, generator=fixed).to(device)
    monitor = quality_monitor(p.cohort, cfg, device, p.out, start) if p.dist.main else None
    return Records(run_log, checkpointer, clock, (display_a, display_b, styles[0], styles[1]), monitor)


def _close(records: Records) -> None:
    if records.bar is not None:
        records.bar.close()
    if records.monitor is not None:
        records.monitor.finish()
    records.run_log.close()
