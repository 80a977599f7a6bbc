"""The training loop: steps until train.steps, the time limit or SIGTERM, with its records.

Losses stay on the device; the loop syncs with the host once per log interval (the
non-finite check), and under DDP once per STOP_SYNC_EVERY steps to agree on a SIGTERM.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import torch

from xraymunit.stopping import StopFlag, Stopped
from xraymunit.distributed import any_rank
from xraymunit.training.plan import Parts, Plan
from xraymunit.training.records import Checkpointer, Clock, RunLog, snapshot_grids
from xraymunit.training.errors import TrainingError
from xraymunit.training.step import aug_generator, style_codes

log = logging.getLogger(__name__)

STOP_SYNC_EVERY = 4  # under DDP, ranks agree on a SIGTERM every this many steps (a host sync each time)


@dataclass
class Records:
    """Where the loop writes: run log, checkpoints, sample grids (rank 0), quality monitor (or None)."""

    run_log: RunLog
    checkpointer: Checkpointer
    clock: Clock
    display: tuple  # (display_a, display_b, fixed styles of A, fixed styles of B)
    monitor: object | None = None
    bar: object | None = None


@dataclass
class Window:
    """Losses since the last log line, kept on the device."""

    losses: list = field(default_factory=list)
    bad: torch.Tensor | None = None
    started: float = 0.0


class Loop:
    def __init__(self, plan: Plan, parts: Parts, records: Records, stop: StopFlag):
        self.p, self.parts, self.rec, self.stop = plan, parts, records, stop
        self.cfg = plan.cfg
        self.images_per_step = self.cfg.train.batch_size * plan.dist.world
        self.window = Window(bad=torch.zeros((), dtype=torch.bool, device=plan.device),
                             started=records.clock.start)
        self.last_losses: dict[str, float] = {}

    def run(self, loader) -> int:
        """Train over `loader`; returns the last step done. Raises Stopped after saving on SIGTERM."""
        step, total = self.parts.start_step, self.cfg.train.steps
        for step, batch in enumerate(loader, start=self.parts.start_step + 1):
            self.window.losses.append(self._train_step(step, batch))
            reason = self._end_reason(step, total)
            self._record(step, final=reason is not None, stopping=reason == "stop")
            if self.rec.bar is not None:
                self.rec.bar.update(1)
            if reason == "time":
                log.info("train.time_limit_minutes (%g) reached at step %d of %d: stopped with a checkpoint; "
                         "raise the limit and --resume to go on", self.cfg.train.time_limit_minutes, step, total)
            if reason == "stop":
                self.p.dist.barrier()  # every rank waits for rank 0's checkpoint
                raise Stopped(f"SIGTERM at step {step} of {total}; saved {self.rec.checkpointer.last_path} "
                              f"(step {step}); rerun with --resume to continue")
            if reason is not None:
                break
        return step

    def _train_step(self, step: int, batch: dict) -> dict[str, torch.Tensor]:
        cfg, device, rank = self.cfg, self.p.device, self.p.dist.rank
        x_a, x_b, real_a, real_b = (batch[k].to(device, non_blocking=True)
                                    for k in ("a", "b", "a_real", "b_real"))  # reals: no photometric augmentation
        n, dim = x_a.shape[0], cfg.model.style_dim
        s_a, s_b = style_codes(cfg.train.seed, step, rank, n, dim, device)
        s_a2, s_b2 = (style_codes(cfg.train.seed, step, rank, n, dim, device, "style2")
                      if cfg.loss.diversity > 0 else (None, None))
        augment = aug_generator(cfg.train.seed, step, rank) if self.parts.step_fn.needs_aug_generator else None
        losses = self.parts.step_fn(x_a, x_b, s_a, s_b, real_a, real_b, s_a2, s_b2, augment)
        for sched in self.parts.schedulers.values():
            sched.step()
        self.window.bad |= ~torch.isfinite(losses["gen/total"]) | ~torch.isfinite(losses["dis/total"])
        return losses

    def _end_reason(self, step: int, total: int) -> str | None:
        """'steps' at train.steps, 'time' past the time limit, 'stop' on SIGTERM (all ranks agree on each)."""
        if step >= total:
            return "steps"
        dist, t = self.p.dist, self.cfg.train
        if t.time_limit_minutes and step % t.log_every == 0:
            if any_rank(dist, self.rec.clock.total() >= t.time_limit_minutes * 60.0):
                return "time"
        if (not dist.enabled or step % STOP_SYNC_EVERY == 0) and any_rank(dist, self.stop.requested):
            return "stop"
        return None

    def _record(self, step: int, final: bool, stopping: bool) -> None:
        """Log, sample grids, quality and checkpoints due at this step (all of them at the last step;
        on SIGTERM only the log line and last.pt: the grace period is short)."""
        t = self.cfg.train
        is_log, is_ckpt = step % t.log_every == 0 or final, step % t.checkpoint_every == 0 or final
        if (is_log or is_ckpt) and bool(self.window.bad):  # the only host sync of the loop, per log interval
            raise TrainingError(
                f"non-finite loss at or before step {step} ({_format_losses(self.window.losses[-1])}); "
                f"stopped without saving. The last good checkpoint is {self.rec.checkpointer.last_path} "
                f"({self.rec.checkpointer.saved_step()}). Lower optim.lr, or check the inputs.")
        if is_log:
            self._log(step)
        main = self.p.dist.main
        if main and not stopping and (step % t.image_every == 0 or final):
            self.rec.run_log.images(step, snapshot_grids(self.parts.gens, *self.rec.display))
        if self.rec.monitor is not None and not stopping and (step % t.quality_every == 0 or final):
            self._measure_quality(step)
        if is_ckpt and main:
            self.rec.checkpointer.save(step)

    def _log(self, step: int) -> None:
        now, window = time.perf_counter(), self.window
        rate = len(window.losses) * self.images_per_step / max(now - window.started, 1e-9)
        mean = {k: float(torch.stack([w[k] for w in window.losses]).mean()) for k in window.losses[0]}
        mean.update({"lr/gen": self.parts.optimizers["gen"].param_groups[0]["lr"], "perf/images_per_s": rate})
        self.rec.run_log.scalars(step, mean)
        self.last_losses, window.losses, window.started = mean, [], now
        if self.rec.bar is not None:
            self.rec.bar.set_postfix(g=f"{mean['gen/total']:.3f}", d=f"{mean['dis/total']:.3f}", img_s=f"{rate:.2f}")

    def _measure_quality(self, step: int) -> None:
        monitor = self.rec.monitor
        row = monitor.measure(self.parts.gens, step, self.rec.clock.total(), step * self.images_per_step)
        self.rec.run_log.quality(step, row)
        if monitor.is_best(row):
            self.rec.checkpointer.save(step, best=True, quality=row)


def _format_losses(losses: dict[str, torch.Tensor]) -> str:
    bad = [k for k, v in losses.items() if not math.isfinite(float(v))]
    return "non-finite: " + ", ".join(bad) if bad else "finite at the last step"
