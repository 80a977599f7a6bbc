"""Stage 2: train a grayscale MUNIT between two labelled domains of a cohort.

    cohort/ ─train→ runs/NAME/ (config.yaml, checkpoints/, samples/, tensorboard/, metrics.csv)

`train()` reads top to bottom: set up → build → (resume) → loop of `MunitStep` → save.
The same code runs on CPU, one GPU, or several under `torchrun` (DDP).
"""

from __future__ import annotations

import contextlib
import csv
import logging
import math
import os
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import nn

from xraymunit import checkpoint, config
from xraymunit.config.train import TrainConfig, resume_conflicts
from xraymunit.data.datasets import DistributedStepSampler, UnpairedDomains, stable_seed
from xraymunit.errors import XraymunitError
from xraymunit.io import atomic, csvfile, grid, outdir
from xraymunit.io.cohort import Cohort
from xraymunit.losses import LossWeights, PerceptualLoss, generator_terms, lsgan_discriminator, weighted_total
from xraymunit.models import MunitDiscriminators, MunitGenerators, build_vgg16, init_weights

log = logging.getLogger(__name__)


class TrainingError(XraymunitError):
    """Training cannot start or cannot go on (bad data, non-finite loss, existing run)."""


# --------------------------------------------------------------------------- set-up helpers


@dataclass(frozen=True)
class Dist:
    """Where this process sits in a (possibly single-process) distributed run."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def enabled(self) -> bool:
        return self.world_size > 1


def init_distributed(device_name: str) -> Dist:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1); else a single process."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Dist()
    import torch.distributed as torch_dist

    rank, local = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    use_cuda = device_name.startswith("cuda") or (device_name == "auto" and torch.cuda.is_available())
    if not torch_dist.is_initialized():
        torch_dist.init_process_group(backend="nccl" if use_cuda else "gloo")
    return Dist(rank, world, local)


def resolve_device(name: str, dist: Dist = Dist()) -> torch.device:
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise TrainingError(f"device {name!r} requested but CUDA is not available (use --device cpu)")
        if name == "cuda":
            name = f"cuda:{dist.local_rank}"
    return torch.device(name)


def cpu_has_native_bf16() -> bool:
    """True on CPUs whose oneDNN kernels run bf16 natively (AVX512-BF16 / AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def amp_dtype(setting: str, device: torch.device) -> torch.dtype | None:
    """bf16 autocast: "auto" picks it on CUDA and on CPUs with native bf16, where it trains
    the same curves ~1.6× faster (BENCHMARKS.md); elsewhere fp32. Losses stay fp32."""
    if setting == "bf16":
        return torch.bfloat16
    if setting == "auto" and (device.type == "cuda" or (device.type == "cpu" and cpu_has_native_bf16())):
        return torch.bfloat16
    return None


def use_channels_last(setting: str, device: torch.device) -> bool:
    return setting == "on" or (setting == "auto" and device.type == "cuda")


def build_networks(cfg: TrainConfig) -> tuple[MunitGenerators, MunitDiscriminators]:
    """Both generators (Kaiming init) and both discriminators (N(0, 0.02)), seeded."""
    gens = MunitGenerators(**cfg.model.generator_kwargs())
    dis = MunitDiscriminators(**cfg.model.discriminator_kwargs())
    init_weights(gens, cfg.model.gen_init, seed=stable_seed(cfg.train.seed, "gen"))
    init_weights(dis, cfg.model.dis_init, seed=stable_seed(cfg.train.seed, "dis"))
    return gens, dis


def build_perceptual(cfg: TrainConfig) -> PerceptualLoss | None:
    if cfg.loss.perceptual <= 0:
        return None
    p = cfg.perceptual
    return PerceptualLoss(build_vgg16(p.backbone, p.layer, p.weights, seed=p.seed))


def _adam(params, cfg: TrainConfig) -> torch.optim.Optimizer:
    o = cfg.optim
    kwargs = dict(lr=o.lr, betas=tuple(o.betas), weight_decay=o.weight_decay)
    try:  # one fused kernel per step instead of a loop over parameters
        return torch.optim.Adam(params, fused=True, **kwargs)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, foreach=True, **kwargs)


def domain_indices(cohort: Cohort, cfg: TrainConfig) -> tuple[np.ndarray, np.ndarray]:
    """Cache rows of domain A and B images in the configured split (train by default)."""
    rows = cohort.ok()
    rows = rows[rows["split"] == cfg.data.split]
    if cfg.data.source_datasets:
        if "source_dataset" not in rows:
            raise TrainingError("data.source_datasets is set but the manifest has no source_dataset column")
        rows = rows[rows["source_dataset"].isin(cfg.data.source_datasets)]
    a = rows.loc[rows["label"] == cfg.data.domain_a, "cache_index"].to_numpy(np.int64)
    b_rows = rows[rows["label"] == cfg.data.domain_b]
    if cfg.data.domain_b_keys is not None:  # a low-data level: exactly these domain-B images
        wanted = set(map(str, cfg.data.domain_b_keys))
        missing = wanted - set(b_rows["image_key"].astype(str))
        if missing:
            raise TrainingError(f"data.domain_b_keys: {len(missing)} of {len(wanted)} image_keys are not "
                                f"'{cfg.data.domain_b}' images of the '{cfg.data.split}' split of {cohort.root} "
                                f"(e.g. {sorted(missing)[0]})")
        b_rows = b_rows[b_rows["image_key"].astype(str).isin(wanted)]
    b = b_rows["cache_index"].to_numpy(np.int64)
    for name, idx in (("domain_a", a), ("domain_b", b)):
        if len(idx) == 0:
            label = getattr(cfg.data, name)
            found = sorted(str(x) for x in rows["label"].dropna().unique())
            raise TrainingError(f"no '{label}' images in the '{cfg.data.split}' split of {cohort.root} "
                                f"(data.{name}); labels there: {found or 'none'}")
    return np.sort(a), np.sort(b)


def domain_keys_sha(cohort: Cohort, idx: np.ndarray) -> str:
    """Short order-independent hash of the image_keys of cache rows `idx` (what a domain trained on).

    The same hash as evaluate's `real_abnormal_keys_sha`, so a generator's domain B can be
    compared with the real abnormals of a low-data level.
    """
    from xraymunit.evaluation.runcache import digest

    ok = cohort.ok()
    return digest(ok.loc[ok["cache_index"].isin(np.asarray(idx)), "image_key"].astype(str))


# --------------------------------------------------------------------------- the training step


class MunitStep:
    """One MUNIT iteration: discriminator update, then generator update, from one generator forward.

    The reference runs the generators twice per iteration (once for each update). Here
    the translations of the single forward are used detached for the discriminator step
    and with their graph for the generator step, which sees the freshly updated
    discriminator — the same order of updates as the reference, one forward less.
    The generator step reads the discriminators with their parameters frozen, so it
    never touches discriminator gradients (and under DDP never triggers their all-reduce).
    """

    def __init__(self, gens: nn.Module, dis: nn.Module, gen_opt: torch.optim.Optimizer,
                 dis_opt: torch.optim.Optimizer, weights: LossWeights, perceptual: PerceptualLoss | None,
                 device: torch.device, amp: torch.dtype | None = None, channels_last: bool = False):
        self.gens, self.dis = gens, dis  # possibly DDP / compiled wrappers
        self.dis_module = _unwrap(dis)
        self.gen_opt, self.dis_opt = gen_opt, dis_opt
        self.weights, self.perceptual = weights, perceptual
        self.device, self.amp, self.channels_last = device, amp, channels_last

    def _autocast(self):
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    def __call__(self, x_a: torch.Tensor, x_b: torch.Tensor, s_a: torch.Tensor, s_b: torch.Tensor,
                 real_a: torch.Tensor | None = None, real_b: torch.Tensor | None = None,
                 s_a2: torch.Tensor | None = None, s_b2: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """x_a, x_b: the generators' inputs; real_a, real_b: the discriminators' real samples (the
        same images without photometric augmentation, `UnpairedDomains`; None: x_a, x_b);
        s_a2, s_b2: second random styles, needed when the diversity term is on."""
        w, n = self.weights, x_a.shape[0]
        real_a = x_a if real_a is None else real_a
        real_b = x_b if real_b is None else real_b
        if self.channels_last:
            x_a, x_b, real_a, real_b = (x.contiguous(memory_format=torch.channels_last)
                                        for x in (x_a, x_b, real_a, real_b))
        with self._autocast():
            t = self.gens(x_a, x_b, s_a, s_b, with_cycle=w.cycle > 0,
                          **({"s_a2": s_a2, "s_b2": s_b2} if w.diversity > 0 else {}))

        # discriminators: real vs detached translations, real and fake in one batch per domain
        self.dis_module.requires_grad_(True)
        with self._autocast():
            outs_a, outs_b = self.dis(torch.cat([real_a, t.x_ba.detach()]), torch.cat([real_b, t.x_ab.detach()]))
            d_a = lsgan_discriminator([o[:n] for o in outs_a], [o[n:] for o in outs_a])
            d_b = lsgan_discriminator([o[:n] for o in outs_b], [o[n:] for o in outs_b])
            d_total = w.gan * (d_a + d_b)
        self.dis_opt.zero_grad(set_to_none=True)
        d_total.backward()
        self.dis_opt.step()

        # generators: every term against the updated, frozen discriminators
        self.dis_module.requires_grad_(False)
        with self._autocast():
            outs_ba, outs_ab = self.dis_module(t.x_ba, t.x_ab)
            terms = generator_terms(t, s_a, s_b, x_a, x_b, outs_ba, outs_ab, w, self.perceptual, s_a2, s_b2)
            g_total = weighted_total(terms, w)
        self.gen_opt.zero_grad(set_to_none=True)
        g_total.backward()
        self.gen_opt.step()
        self.dis_module.requires_grad_(True)

        losses = {f"gen/{k}": v.detach().float() for k, v in terms.items()}
        losses.update({"gen/total": g_total.detach().float(), "dis/a": d_a.detach().float(),
                       "dis/b": d_b.detach().float(), "dis/total": d_total.detach().float()})
        return losses


def _unwrap(module: nn.Module) -> nn.Module:
    module = getattr(module, "module", module)
    return getattr(module, "_orig_mod", module)


def style_codes(seed: int, step: int, rank: int, batch: int, style_dim: int,
                device: torch.device, which: str = "style") -> tuple[torch.Tensor, torch.Tensor]:
    """The random style codes of one step: N(0, I), a pure function of (seed, step, rank, which);
    which="style2" gives the second styles of the diversity term, independent of the first."""
    gen = torch.Generator().manual_seed(stable_seed(seed, which, step, rank))
    codes = torch.randn(2, batch, style_dim, generator=gen)
    return codes[0].to(device), codes[1].to(device)


# --------------------------------------------------------------------------- outputs of a run


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
        recon = enc.decode(content, style)
        k, n = styles.shape[0], x.shape[0]
        translated = dec.decode(content.repeat_interleave(k, 0), styles.repeat(n, 1)).view(n, k, *x.shape[2:])
        cols = torch.cat([x[:, None, 0], recon[:, None, 0], translated], dim=1)  # (n, 2+k, H, W)
        out[name] = grid.tile(((cols.float().cpu() + 1.0) / 2.0).numpy())
    gens.train(was_training)
    return out


def display_batch(cohort: Cohort, indices: np.ndarray, count: int, size: int, device: torch.device) -> torch.Tensor:
    """The first `count` images of a domain, resized to the training crop, in [-1, 1]."""
    images = torch.from_numpy(cohort.stack(indices[:count]))[:, None]
    if images.shape[-1] != size:
        images = torch.nn.functional.interpolate(images, size=(size, size), mode="area")
    return (images * 2.0 - 1.0).to(device)


def quality_monitor(cohort: Cohort, cfg: TrainConfig, device: torch.device, out: Path, start_step: int):
    """The cohort's judge (trained on first use) and the fixed val set, or None when tracking is off
    or impossible here (then a warning says why; training goes on without it)."""
    if not cfg.train.quality_every:
        return None
    from xraymunit import judge as judge_mod
    from xraymunit.monitor import QualityMonitor

    try:
        judge = judge_mod.load_or_train(cohort, cfg.quality.judge, device=device)
        monitor = QualityMonitor(cohort, cfg, judge, device, out, start_step, amp_dtype(cfg.train.amp, device))
    except (judge_mod.JudgeError, ValueError) as exc:
        log.warning("quality tracking off: %s", exc)
        return None
    log.info("quality tracked every %d steps on %d val '%s' inputs × %d styles; %s", cfg.train.quality_every,
             len(monitor.real_a), cfg.data.domain_a, cfg.quality.n_styles, judge.describe())
    return monitor


# --------------------------------------------------------------------------- the stage


@dataclass
class TrainResult:
    run_dir: Path
    checkpoint: Path
    steps: int
    images_per_second: float
    last_losses: dict[str, float]


def _is_main_process() -> bool:
    """Rank 0 (or a single process): the only one that writes the run folder, so the only one that locks it."""
    return int(os.environ.get("WORLD_SIZE", "1")) <= 1 or int(os.environ.get("RANK", "0")) == 0


@outdir.owns("train", "out", when=_is_main_process,
             guard=("checkpoints", "checkpoints/last.pt", "checkpoints/best.pt", "tensorboard", "samples",
                    "config.yaml", "metrics.csv", "quality.csv", "quality.png", "shortcut_test.json"))
def train(cohort: str | Path, out: str | Path, cfg: TrainConfig | None = None, *, resume: bool = False,
          show_progress: bool = True) -> TrainResult:
    """Train MUNIT on `cohort` (domains from the manifest labels) and write the run to `out`.

    Args:
        cohort: an ingested cohort folder.
        out: the run folder (created). If it already holds a run, `resume=True` continues
            it exactly from `checkpoints/last.pt`; without it the call refuses to overwrite.
        cfg: the resolved TrainConfig (defaults: the paper's settings at 256²).
        resume: continue an interrupted run.
        show_progress: a tqdm bar with it/s and ETA (rank 0).
    """
    cfg = cfg or TrainConfig()
    out = Path(out)
    dist = init_distributed(cfg.train.device)
    device = resolve_device(cfg.train.device, dist)
    if device.type == "cuda":
        torch.cuda.set_device(device)
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True

    # ---- data
    data = Cohort.open(cohort)
    idx_a, idx_b = domain_indices(data, cfg)
    keys_b_sha = domain_keys_sha(data, idx_b)
    last_path = out / "checkpoints" / "last.pt"
    state = None
    if resume:
        if not last_path.is_file():
            raise TrainingError(f"--resume: no checkpoint at {last_path}")
        state = checkpoint.load(last_path)
        conflicts = resume_conflicts(state["config"], config.to_dict(cfg))
        if conflicts:
            raise TrainingError(f"--resume with a different config: {', '.join(conflicts)} differ from the "
                                f"saved run (only {', '.join(sorted(['train.steps', 'train.device']))} and "
                                "logging intervals may change)")
    elif last_path.exists():
        raise TrainingError(f"{out} already holds a run; pass --resume to continue it or choose another --out")
    if dist.is_main:
        out.mkdir(parents=True, exist_ok=True)
        if resume and (stale := atomic.remove_stale_temps(out)):  # a killed run's half-written files
            log.info("removed %d temporary file(s) left by an interrupted run", stale)
        config.save(cfg, out / "config.yaml")
        if cfg.train.shortcut_test:  # can a trivial model tell the domains apart? warn before training on it
            from xraymunit import confounds

            confounds.check(data, out / "shortcut_test.json", cfg.data.domain_a, cfg.data.domain_b,
                            cfg.data.source_datasets, log)

    # ---- networks, optimisers, schedules
    gens, dis = build_networks(cfg)
    perceptual = build_perceptual(cfg)
    channels_last = use_channels_last(cfg.train.channels_last, device)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    gens.to(device, memory_format=fmt)
    dis.to(device, memory_format=fmt)
    if perceptual is not None:
        perceptual.to(device, memory_format=fmt)
    gen_opt = _adam(gens.parameters(), cfg)
    dis_opt = _adam(dis.parameters(), cfg)
    gen_sched = torch.optim.lr_scheduler.StepLR(gen_opt, cfg.optim.lr_step, cfg.optim.lr_gamma)
    dis_sched = torch.optim.lr_scheduler.StepLR(dis_opt, cfg.optim.lr_step, cfg.optim.lr_gamma)
    start_step = 0
    if state is not None:
        gens.gen_a.load_state_dict(state["models"]["gen_a"])
        gens.gen_b.load_state_dict(state["models"]["gen_b"])
        dis.dis_a.load_state_dict(state["models"]["dis_a"])
        dis.dis_b.load_state_dict(state["models"]["dis_b"])
        gen_opt.load_state_dict(state["optimizers"]["gen"])
        dis_opt.load_state_dict(state["optimizers"]["dis"])
        gen_sched.load_state_dict(state["schedulers"]["gen"])
        dis_sched.load_state_dict(state["schedulers"]["dis"])
        start_step = int(state["step"])
        if dist.is_main:
            log.info("resuming %s at step %d", out, start_step)
    gens_run: nn.Module = gens
    dis_run: nn.Module = dis
    if cfg.train.compile:
        gens_run, dis_run = torch.compile(gens_run), torch.compile(dis_run)
    if dist.enabled:
        from torch.nn.parallel import DistributedDataParallel as DDP

        ids = [device.index] if device.type == "cuda" else None
        gens_run = DDP(gens_run, device_ids=ids, broadcast_buffers=False)
        dis_run = DDP(dis_run, device_ids=ids, broadcast_buffers=False)
    step_fn = MunitStep(gens_run, dis_run, gen_opt, dis_opt, cfg.loss, perceptual,
                        device, amp_dtype(cfg.train.amp, device), channels_last)

    best_path = last_path.with_name("best.pt")
    seconds_before = float(state.get("extra", {}).get("train_seconds", 0.0)) if state is not None else 0.0

    def save_checkpoint(step: int, path: Path = last_path, quality: dict | None = None) -> Path:
        path = checkpoint.save(
            path,
            models={"gen_a": gens.gen_a, "gen_b": gens.gen_b, "dis_a": dis.dis_a, "dis_b": dis.dis_b},
            optimizers={"gen": gen_opt, "dis": dis_opt},
            schedulers={"gen": gen_sched, "dis": dis_sched},
            step=step, config=config.to_dict(cfg),
            extra={"domains": [cfg.data.domain_a, cfg.data.domain_b], "cohort": str(Path(cohort).resolve()),
                   "images_a": int(len(idx_a)), "images_b": int(len(idx_b)), "images_b_keys_sha": keys_b_sha,
                   "train_seconds": seconds_before + time.perf_counter() - t_start, "quality": quality},
        )
        if path == last_path and step % cfg.train.keep_every == 0:
            keep = last_path.with_name(f"step_{step:07d}.pt")
            with contextlib.suppress(FileNotFoundError):
                keep.unlink()
            try:
                os.link(last_path, keep)  # same bytes, no extra disk; last.pt is later replaced, not rewritten
            except OSError:
                import shutil

                shutil.copy2(last_path, keep)
        return path

    # ---- data loader: the batch of step t is a pure function of (seed, t)
    dataset = UnpairedDomains(data.images, idx_a, idx_b, cfg.data.load_size, cfg.data.crop_size,
                              seed=cfg.train.seed, augment=config.to_dict(cfg.data.augment))
    total = cfg.train.steps
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=cfg.train.batch_size,
        sampler=DistributedStepSampler(start_step, total, cfg.train.batch_size, dist.rank, dist.world_size),
        num_workers=cfg.data.num_workers, pin_memory=device.type == "cuda",
        persistent_workers=False, prefetch_factor=4 if cfg.data.num_workers > 0 else None,
    )
    run_log = RunLog(out, start_step, enabled=dist.is_main)
    display_a = display_batch(data, idx_a, cfg.train.n_sample_images, cfg.data.crop_size, device)
    display_b = display_batch(data, idx_b, cfg.train.n_sample_images, cfg.data.crop_size, device)
    fixed = torch.Generator().manual_seed(stable_seed(cfg.train.seed, "display-styles"))
    fixed_styles = torch.randn(2, cfg.train.n_sample_styles, cfg.model.style_dim, generator=fixed).to(device)

    monitor = quality_monitor(data, cfg, device, out, start_step) if dist.is_main else None

    t_start = time.perf_counter()
    if start_step >= total:
        log.info("nothing to do: the run is already at step %d of %d", start_step, total)
        run_log.close()
        return TrainResult(out, last_path, start_step, 0.0, {})

    bar = None
    if show_progress and dist.is_main:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start_step, desc="train", unit="it", dynamic_ncols=True)
    gens.train()
    dis.train()
    bad = torch.zeros((), dtype=torch.bool, device=device)
    window: list[dict[str, torch.Tensor]] = []
    t_window, last_losses, step = time.perf_counter(), {}, start_step
    images_per_step = cfg.train.batch_size * dist.world_size
    try:
        for step, batch in enumerate(loader, start=start_step + 1):
            x_a = batch["a"].to(device, non_blocking=True)
            x_b = batch["b"].to(device, non_blocking=True)
            real_a = batch["a_real"].to(device, non_blocking=True)  # no photometric augmentation
            real_b = batch["b_real"].to(device, non_blocking=True)
            s_a, s_b = style_codes(cfg.train.seed, step, dist.rank, x_a.shape[0], cfg.model.style_dim, device)
            s_a2, s_b2 = (style_codes(cfg.train.seed, step, dist.rank, x_a.shape[0], cfg.model.style_dim, device,
                                      "style2") if cfg.loss.diversity > 0 else (None, None))
            losses = step_fn(x_a, x_b, s_a, s_b, real_a, real_b, s_a2, s_b2)
            gen_sched.step()
            dis_sched.step()
            bad |= ~torch.isfinite(losses["gen/total"]) | ~torch.isfinite(losses["dis/total"])
            window.append(losses)
            last = step == total
            if cfg.train.time_limit_minutes and step % cfg.train.log_every == 0 and not last:
                last = time_is_up(seconds_before + time.perf_counter() - t_start, cfg.train.time_limit_minutes,
                                  dist, device)
            is_log = step % cfg.train.log_every == 0 or last
            is_ckpt = step % cfg.train.checkpoint_every == 0 or last
            if is_log or is_ckpt:
                if bool(bad):  # the only host sync of the loop, once per log interval
                    raise TrainingError(
                        f"non-finite loss at or before step {step} ({_format_losses(window[-1])}); "
                        f"stopped without saving. The last good checkpoint is {last_path} "
                        f"({'step %d' % _ckpt_step(last_path) if last_path.is_file() else 'none yet'}). "
                        "Lower optim.lr, or check the inputs."
                    )
            if is_log:
                now = time.perf_counter()
                rate = len(window) * images_per_step / max(now - t_window, 1e-9)
                mean = {k: float(torch.stack([w[k] for w in window]).mean()) for k in window[0]}
                mean.update({"lr/gen": gen_opt.param_groups[0]["lr"], "perf/images_per_s": rate})
                run_log.scalars(step, mean)
                last_losses, window, t_window = mean, [], now
                if bar is not None:
                    bar.set_postfix(g=f"{mean['gen/total']:.3f}", d=f"{mean['dis/total']:.3f}",
                                    img_s=f"{rate:.2f}")
            if dist.is_main and (step % cfg.train.image_every == 0 or last):
                run_log.images(step, snapshot_grids(gens, display_a, display_b, fixed_styles[0], fixed_styles[1]))
            if monitor is not None and (step % cfg.train.quality_every == 0 or last):
                row = monitor.measure(gens, step, seconds_before + time.perf_counter() - t_start,
                                      step * images_per_step)
                run_log.quality(step, row)
                if monitor.is_best(row):
                    save_checkpoint(step, best_path, quality=row)
            if is_ckpt and dist.is_main:
                save_checkpoint(step)
            if bar is not None:
                bar.update(1)
            if last:
                if step < total:
                    log.info("train.time_limit_minutes (%g) reached at step %d of %d: stopped with a checkpoint; "
                             "raise the limit and --resume to go on", cfg.train.time_limit_minutes, step, total)
                break
    finally:
        if bar is not None:
            bar.close()
        if monitor is not None:
            monitor.finish()
        run_log.close()
    elapsed = time.perf_counter() - t_start
    done = step - start_step
    if dist.enabled:
        import torch.distributed as torch_dist

        torch_dist.barrier()  # nobody leaves before rank 0 has written the last checkpoint
    return TrainResult(out, last_path, step, done * images_per_step / max(elapsed, 1e-9), last_losses)


def time_is_up(seconds: float, limit_minutes: float, dist: Dist, device: torch.device) -> bool:
    """The wall-clock budget is spent (under DDP: on any rank, so that all ranks stop at the same step)."""
    up = torch.tensor(float(seconds >= limit_minutes * 60.0), device=device)
    if dist.enabled:
        import torch.distributed as torch_dist

        torch_dist.all_reduce(up, op=torch_dist.ReduceOp.MAX)
    return bool(up)


def _format_losses(losses: dict[str, torch.Tensor]) -> str:
    bad = [k for k, v in losses.items() if not math.isfinite(float(v))]
    return "non-finite: " + ", ".join(bad) if bad else "finite at the last step"


def _ckpt_step(path: Path) -> int:
    return int(checkpoint.load(path)["step"])
