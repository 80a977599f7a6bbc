"""The training data of a run: which cache rows are domain A and B, the loader, the display images."""

from __future__ import annotations

import signal

import numpy as np
import torch

from xraymunit import config
from xraymunit.config.train import TrainConfig
from xraymunit.data.datasets import DistributedStepSampler, UnpairedDomains
from xraymunit.io.cohort import Cohort
from xraymunit.distributed import Group
from xraymunit.training.errors import TrainingError


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


def make_loader(cohort: Cohort, idx_a: np.ndarray, idx_b: np.ndarray, cfg: TrainConfig, start_step: int,
                dist: Group, device: torch.device) -> torch.utils.data.DataLoader:
    """Batches of steps start_step+1 .. train.steps; the batch of step t is a pure function of (seed, t)."""
    dataset = UnpairedDomains(cohort.images, idx_a, idx_b, cfg.data.load_size, cfg.data.crop_size,
                              seed=cfg.train.seed, augment=config.to_dict(cfg.data.augment))
    workers = cfg.data.num_workers
    return torch.utils.data.DataLoader(
        dataset, batch_size=cfg.train.batch_size,
        sampler=DistributedStepSampler(start_step, cfg.train.steps, cfg.train.batch_size, dist.rank, dist.world),
        num_workers=workers, pin_memory=device.type == "cuda", persistent_workers=False,
        prefetch_factor=4 if workers > 0 else None, worker_init_fn=_ignore_sigterm if workers > 0 else None,
    )


def _ignore_sigterm(_worker_id: int) -> None:
    """Loader workers leave SIGTERM to the main process (sent to the whole process group by schedulers),
    which finishes its step and saves; a worker killed mid-batch would fail that step instead."""
    signal.signal(signal.SIGTERM, signal.SIG_IGN)


def display_batch(cohort: Cohort, indices: np.ndarray, count: int, size: int, device: torch.device) -> torch.Tensor:
    """The first `count` images of a domain, resized to the training crop, in [-1, 1]."""
    images = torch.from_numpy(cohort.stack(indices[:count]))[:, None]
    if images.shape[-1] != size:
        images = torch.nn.functional.interpolate(images, size=(size, size), mode="area")
    return (images * 2.0 - 1.0).to(device)
