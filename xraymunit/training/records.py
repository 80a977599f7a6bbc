"""What a run leaves behind: metrics.csv, TensorBoard, sample grids, quality tracking and checkpoints.

Rank 0 alone writes them; every method is a no-op elsewhere.
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import shutil
import time
from pathlib import Path

import numpy as np
import torch

from xraymunit import checkpoint
from xraymunit.config.train import TrainConfig
from xraymunit.io import atomic, csvfile, grid
from xraymunit.io.cohort import Cohort
from xraymunit.models import MunitDiscriminators, MunitGenerators
from xraymunit.runtime import amp_dtype

log = logging.getLogger(__name__)


class RunLog:
    """metrics.csv + TensorBoard scalars/images + PNG snapshots, written by rank 0 only."""

    def __init__(self, out: Path, start_step: int, enabled: bool):
        self.out, self.enabled = out, enabled
        self.csv_path = out / "metrics.csv"
        self.writer = None
        self._fields: list[str] | None = None
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        self._truncate_csv(start_step)
        self.writer = SummaryWriter(log_dir=str(out / "tensorboard"), purge_step=start_step or None)

    def _truncate_csv(self, start_step: int) -> None:
        """On resume, drop rows past the checkpoint so metrics.csv never holds a step twice."""
        if not self.csv_path.is_file():
            return
        with open(self.csv_path, newline="") as fh:
            rows = list(csv.DictReader(fh))
        if rows:
            self._fields = list(rows[0].keys())
        keep = [r for r in rows if int(r["step"]) <= start_step]
        with atomic.atomic_path(self.csv_path) as tmp, open(tmp, "w", newline="") as fh:
            if self._fields:
                writer = csv.DictWriter(fh, fieldnames=self._fields)
                writer.writeheader()
                writer.writerows(keep)

    def scalars(self, step: int, values: dict[str, float]) -> None:
        if not self.enabled:
            return
        for key, value in values.items():
            self.writer.add_scalar(key, value, step)
        row = {"step": step, **values}
        new_file = not self.csv_path.is_file() or self.csv_path.stat().st_size == 0
        if self._fields is None:
            self._fields = list(row)
        with open(self.csv_path, "a", newline="") as fh:
            writer = csv.DictWriter(fh, fieldnames=self._fields, extrasaction="ignore")
            if new_file:
                writer.writeheader()
            writer.writerow(csvfile.safe_row(row))

    def quality(self, step: int, row: dict) -> None:
        """The monitor's numbers to TensorBoard (quality.csv and quality.png are the monitor's own)."""
        if not self.enabled:
            return
        for key, value in row.items():
            if key not in ("step",) and isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f"quality/{key}", value, step)

    def images(self, step: int, grids: dict[str, np.ndarray]) -> None:
        if not self.enabled:
            return
        for name, image in grids.items():
            grid.save_png(self.out / "samples" / f"{name}_{step:07d}.png", image)
            self.writer.add_image(f"samples/{name}", image, step, dataformats="HW")

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()


@torch.no_grad()
def snapshot_grids(gens: MunitGenerators, display_a: torch.Tensor, display_b: torch.Tensor,
                   styles_a: torch.Tensor, styles_b: torch.Tensor) -> dict[str, np.ndarray]:
    """Per direction, one row per input: input | reconstruction | one translation per fixed style."""
    was_training = gens.training
    gens.eval()
    out = {}
    for name, x, enc, dec, styles in (("a2b", display_a, gens.gen_a, gens.gen_b, styles_b),
                                      ("b2a", display_b, gens.gen_b, gens.gen_a, styles_a)):
        content, style = enc.encode(x)
        recon = enc.decode(content, style, x)
        k, n = styles.shape[0], x.shape[0]
        translated = dec.decode(content.repeat_interleave(k, 0), styles.repeat(n, 1),
                                x.repeat_interleave(k, 0)).view(n, k, *x.shape[2:])
        cols = torch.cat([x[:, None, 0], recon[:, None, 0], translated], dim=1)  # (n, 2+k, H, W)
        out[name] = grid.tile(((cols.float().cpu() + 1.0) / 2.0).numpy())
    gens.train(was_training)
    return out



def quality_monitor(cohort: Cohort, cfg: TrainConfig, device: torch.device, out: Path, start_step: int):
    """The cohort's judge (trained on first use) and the fixed val set, or None when tracking is off
    or impossible here (then a warning says why; training goes on without it)."""
    if not cfg.train.quality_every:
        return None
    from xraymunit.quality import judge as judge_mod
    from xraymunit.quality.training_monitor import QualityMonitor

    try:
        judge = judge_mod.load_or_train(cohort, cfg.quality.judge, fallback=out / judge_mod.JUDGE_DIR, device=device)
        monitor = QualityMonitor(cohort, cfg, judge, device, out, start_step, amp_dtype(cfg.train.amp, device))
    except (judge_mod.JudgeError, ValueError) as exc:
        log.warning("quality tracking off: %s", exc)
        return None
    log.info("quality tracked every %d steps on %d val '%s' inputs × %d styles; %s", cfg.train.quality_every,
             len(monitor.real_a), cfg.data.domain_a, cfg.quality.n_styles, judge.describe())
    return monitor


class Clock:
    """Training seconds of the whole run: those of earlier sittings (from the checkpoint) plus this one's."""

    def __init__(self, seconds_before: float = 0.0):
        self.before, self.start = seconds_before, time.perf_counter()

    def restart(self) -> None:
        self.start = time.perf_counter()

    def elapsed(self) -> float:
        """Seconds of this sitting."""
        return time.perf_counter() - self.start

    def total(self) -> float:
        return self.before + self.elapsed()


class Checkpointer:
    """Writes `checkpoints/last.pt` (and `best.pt`, and a kept `step_N.pt` every train.keep_every steps)."""

    def __init__(self, out: Path, cfg: TrainConfig, gens: MunitGenerators, dis: MunitDiscriminators,
                 optimizers: dict, schedulers: dict, provenance: dict, clock: Clock):
        self.last_path = out / "checkpoints" / "last.pt"
        self.best_path = self.last_path.with_name("best.pt")
        self.cfg, self.gens, self.dis, self.clock = cfg, gens, dis, clock
        self.optimizers, self.schedulers, self.provenance = optimizers, schedulers, provenance

    def save(self, step: int, best: bool = False, quality: dict | None = None) -> Path:
        path = self.best_path if best else self.last_path
        extra = {**self.provenance, "train_seconds": self.clock.total(), "quality": quality}
        checkpoint.save_training(path, self.gens, self.dis, optimizers=self.optimizers, schedulers=self.schedulers,
                                 step=step, cfg=self.cfg, extra=extra)
        if not best and step % self.cfg.train.keep_every == 0:
            self._keep(step)
        return path

    def _keep(self, step: int) -> None:
        keep = self.last_path.with_name(f"step_{step:07d}.pt")
        with contextlib.suppress(FileNotFoundError):
            keep.unlink()
        try:
            os.link(self.last_path, keep)  # same bytes, no extra disk; last.pt is later replaced, not rewritten
        except OSError:
            shutil.copy2(self.last_path, keep)

    def saved_step(self) -> str:
        """'step N' of the last checkpoint on disk, or 'none yet' (for error messages)."""
        if not self.last_path.is_file():
            return "none yet"
        return f"step {checkpoint.load(self.last_path)['step']}"
