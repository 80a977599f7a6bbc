"""Unpaired two-domain training data over the cohort's memory-mapped image cache.

The batch of step t is a pure function of (seed, t): which image of each domain, its
augmentation, everything. That is what makes `--resume` continue exactly, keeps
DataLoader workers and DDP ranks from ever drawing the same stream twice, and makes two
runs with one seed identical.
"""

from __future__ import annotations

from typing import Iterator

import numpy as np
import torch
from monai.data import MetaTensor
from monai.transforms import Compose
from torch.utils.data import Dataset, Sampler

from xraymunit.data.augment import training_stages
from xraymunit.seeding import stable_seed


class DomainPicker:
    """Walks one domain's images in a fresh seeded permutation per epoch (sampling without replacement)."""

    def __init__(self, cache_indices: np.ndarray, seed: int, domain: str):
        if len(cache_indices) == 0:
            raise ValueError(f"domain {domain!r} has no images")
        self.cache_indices = np.asarray(cache_indices, dtype=np.int64)
        self.seed, self.domain = seed, domain
        self._epoch, self._perm = -1, None

    def __call__(self, sample_id: int) -> int:
        n = len(self.cache_indices)
        epoch, pos = divmod(sample_id, n)
        if epoch != self._epoch:
            rng = np.random.default_rng(stable_seed(self.seed, self.domain, epoch))
            self._epoch, self._perm = epoch, rng.permutation(n)
        return int(self.cache_indices[self._perm[pos]])


class UnpairedDomains(Dataset):
    """Item `sample_id` → {"a", "b", "a_real", "b_real"}, each (1, crop, crop) in [-1, 1]; A and B
    independently drawn.

    "a"/"b" are the generators' inputs (geometric then photometric augmentation); "a_real"/"b_real"
    the discriminators' real samples: the same image with the same geometry, without the
    photometric changes (gamma, noise), so those are not learnt as part of the target domain.
    Where no photometric transform changed the image, or with `photometric_for_discriminator`,
    the real sample is the generator's input itself (the same tensor).

    Args:
        images: the cohort cache (N, S, S) uint16 (a memmap is fine: rows are read on demand).
        indices_a, indices_b: cache rows of domain A and domain B images.
        load_size, crop_size: resize side, then random-crop side.
        seed: run seed; with sample_id it fixes the picks and augmentations.
        augment: keyword arguments of `training_stages` (enabled, prob, rotate_deg, padding, ...),
            plus `photometric_for_discriminator` (default False).
    """

    def __init__(self, images: np.ndarray, indices_a, indices_b, load_size: int, crop_size: int,
                 seed: int = 0, augment: dict | None = None):
        self.images = images
        self.seed = seed
        self.pick_a = DomainPicker(np.asarray(indices_a), seed, "a")
        self.pick_b = DomainPicker(np.asarray(indices_b), seed, "b")
        augment = dict(augment or {})
        self.photometric_for_discriminator = bool(augment.pop("photometric_for_discriminator", False))
        geometric, photometric = training_stages(("image",), load_size, crop_size,
                                                 cache_size=int(images.shape[-1]), **augment)
        # one chain, seeded once per image and run in two parts: geometric, then photometric
        self.transform = Compose([*geometric.transforms, *photometric.transforms])
        self.n_geometric = len(geometric.transforms)

    def __len__(self) -> int:  # sample ids are unbounded; the sampler decides how many
        return 2**62

    def _load(self, cache_index: int, sample_id: int, domain: str) -> tuple[torch.Tensor, torch.Tensor]:
        """(generator input, discriminator real) of one domain's image for `sample_id`."""
        image = torch.from_numpy(np.asarray(self.images[cache_index], dtype=np.float32) / 65535.0)[None]
        self.transform.set_random_state(seed=stable_seed(self.seed, "aug", domain, sample_id) % (2**32))
        posed = _as_tensor(self.transform({"image": image}, end=self.n_geometric)["image"])
        real = _to_model_range(posed)  # a new tensor: `posed` stays as it was
        if self.n_geometric == len(self.transform.transforms):  # no photometric transform
            return real, real
        changed = _as_tensor(self.transform({"image": posed}, start=self.n_geometric)["image"])
        if changed.data_ptr() == posed.data_ptr():  # no photometric transform fired
            return real, real
        fake_input = _to_model_range(changed)
        return fake_input, (fake_input if self.photometric_for_discriminator else real)

    def __getitem__(self, sample_id: int) -> dict[str, torch.Tensor]:
        a, a_real = self._load(self.pick_a(sample_id), sample_id, "a")
        b, b_real = self._load(self.pick_b(sample_id), sample_id, "b")
        return {"a": a, "b": b, "a_real": a_real, "b_real": b_real}


def _as_tensor(image) -> torch.Tensor:
    return image.as_tensor() if isinstance(image, MetaTensor) else image


def _to_model_range(image: torch.Tensor) -> torch.Tensor:
    """[0, 1] → a new contiguous float32 tensor in [-1, 1] (clamped)."""
    return image.to(torch.float32).clamp(0.0, 1.0).mul_(2.0).sub_(1.0).contiguous()


class DistributedStepSampler(Sampler[int]):
    """Sample ids for steps [start_step, total_steps): step t, rank r, slot i → (t·W + r)·B + i.

    torch's DistributedSampler shards an epoch; this shards *steps*, so a run resumed at
    any step, on any number of DataLoader workers, sees exactly the stream it would have.
    """

    def __init__(self, start_step: int, total_steps: int, batch_size: int, rank: int = 0, world_size: int = 1):
        self.start, self.total = start_step, total_steps
        self.batch, self.rank, self.world = batch_size, rank, world_size

    def __len__(self) -> int:
        return max(0, self.total - self.start) * self.batch

    def __iter__(self) -> Iterator[int]:
        for step in range(self.start, self.total):
            base = (step * self.world + self.rank) * self.batch
            yield from range(base, base + self.batch)
