"""Setting a run up: device, data, the checkpoint to resume, the run folder; then the networks,
optimisers and schedules (restored on resume, wrapped for torch.compile / DDP)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xraymunit import checkpoint, config
from xraymunit.config.train import TrainConfig, resume_conflicts
from xraymunit.io import atomic
from xraymunit.io.cohort import Cohort
from xraymunit.losses import PerceptualLoss
from xraymunit.models import MunitDiscriminators, MunitGenerators, build_vgg16
from xraymunit.runtime import amp_dtype, inductor_options, use_channels_last
from xraymunit.training.data import domain_indices, domain_keys_sha
from xraymunit import distributed
from xraymunit.distributed import Group
from xraymunit.training.errors import TrainingError
from xraymunit.training.step import MunitStep, adam

log = logging.getLogger(__name__)


@dataclass
class Plan:
    """Everything decided before the first network is built."""

    cfg: TrainConfig
    out: Path
    cohort: Cohort
    dist: Group
    device: torch.device
    idx_a: np.ndarray
    idx_b: np.ndarray
    state: dict | None  # the checkpoint a resume continues from

    @property
    def last_path(self) -> Path:
        return self.out / "checkpoints" / "last.pt"

    def provenance(self, cohort_arg: str | Path) -> dict:
        """What a checkpoint records about the data it was trained on."""
        return {"domains": [self.cfg.data.domain_a, self.cfg.data.domain_b],
                "cohort": str(Path(cohort_arg).resolve()), "images_a": int(len(self.idx_a)),
                "images_b": int(len(self.idx_b)), "images_b_keys_sha": domain_keys_sha(self.cohort, self.idx_b)}


def plan(cohort: str | Path, out: Path, cfg: TrainConfig, resume: bool) -> Plan:
    """Device and process group, the domains' images, the resumed checkpoint (its config checked),
    and on rank 0 the run folder with config.yaml (and the shortcut test)."""
    dist, device = distributed.join(cfg.train.device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    data = Cohort.open(cohort)
    idx_a, idx_b = domain_indices(data, cfg)
    result = Plan(cfg, out, data, dist, device, idx_a, idx_b, None)
    if resume:
        result.state = _resumable_state(result.last_path, cfg)
    elif result.last_path.exists():
        raise TrainingError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if dist.main:
        _prepare_folder(result, resume)
    return result


def _resumable_state(last_path: Path, cfg: TrainConfig) -> dict:
    if not last_path.is_file():
        raise TrainingError(f"--resume: no checkpoint at {last_path}")
    state = checkpoint.load(last_path)
    conflicts = resume_conflicts(state["config"], config.to_dict(cfg))
    if conflicts:
        raise TrainingError(f"--resume with a different config: {', '.join(conflicts)} differ from the "
                            "saved run (only train.device, train.steps and logging intervals may change)")
    return state


def _prepare_folder(p: Plan, resume: bool) -> None:
    p.out.mkdir(parents=True, exist_ok=True)
    if resume and (stale := atomic.remove_stale_temps(p.out)):  # a killed run's half-written files
        log.info("removed %d temporary file(s) left by an interrupted run", stale)
    config.save(p.cfg, p.out / "config.yaml")
    if p.cfg.train.shortcut_test:  # can a trivial model tell the domains apart? warn before training on it
        from xraymunit import confounds

        confounds.check(p.cohort, p.out / "shortcut_test.json", p.cfg.data.domain_a, p.cfg.data.domain_b,
                        p.cfg.data.source_datasets, log)


@dataclass
class Parts:
    """The trainable objects of a run and the step that updates them."""

    gens: MunitGenerators
    dis: MunitDiscriminators
    optimizers: dict  # {"gen": Adam, "dis": Adam}
    schedulers: dict  # {"gen": StepLR, "dis": StepLR}
    step_fn: MunitStep
    start_step: int


def build_perceptual(cfg: TrainConfig) -> PerceptualLoss | None:
    if cfg.loss.perceptual <= 0:
        return None
    p = cfg.perceptual
    return PerceptualLoss(build_vgg16(p.backbone, p.layer, p.weights, seed=p.seed))


def build_parts(p: Plan) -> Parts:
    """Seeded networks on the device (channels-last where it pays), Adam + step decay, restored
    from the resumed checkpoint, then wrapped (torch.compile, DDP) for the step."""
    cfg, device = p.cfg, p.device
    gens, dis = checkpoint.build_networks(cfg)
    perceptual = build_perceptual(cfg)
    channels_last = use_channels_last(cfg.train.channels_last, device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for module in (gens, dis, perceptual):
        if module is not None:
            module.to(device, memory_format=fmt)
    optimizers = {"gen": adam(gens.parameters(), cfg.optim), "dis": adam(dis.parameters(), cfg.optim)}
    schedulers = {k: torch.optim.lr_scheduler.StepLR(o, cfg.optim.lr_step, cfg.optim.lr_gamma)
                  for k, o in optimizers.items()}
    start_step = 0
    if p.state is not None:
        start_step = checkpoint.restore_training(p.state, gens, dis, optimizers=optimizers,
                                                 schedulers=schedulers, path=p.last_path)
        if p.dist.main:
            log.info("resuming %s at step %d", p.out, start_step)
    gens_run, dis_run = _wrapped(gens, dis, cfg, p.dist, device)
    step_fn = MunitStep(gens_run, dis_run, optimizers["gen"], optimizers["dis"], cfg.loss, perceptual,
                        device, amp_dtype(cfg.train.amp, device), channels_last)
    return Parts(gens, dis, optimizers, schedulers, step_fn, start_step)


def _wrapped(gens: nn.Module, dis: nn.Module, cfg: TrainConfig, dist: Group,
             device: torch.device) -> tuple[nn.Module, nn.Module]:
    if cfg.train.compile:
        options = inductor_options()  # the vector width in inductor's cache key (runtime.py)
        gens, dis = torch.compile(gens, options=options), torch.compile(dis, options=options)
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        gens = DDP(gens, device_ids=ids, broadcast_buffers=False)
        dis = DDP(dis, device_ids=ids, broadcast_buffers=False)
    return gens, dis
