"""MONAI transforms that put a trained generator into your own training pipeline.

    from xraymunit.transforms import RandTranslated
    train_transforms = Compose([..., RandTranslated("image", "runs/x/checkpoints/last.pt", prob=0.3)])

`RandTranslated` replaces, with probability `prob`, a normal image by one translation to the
abnormal domain (the `Translator`, hence synthesize's own rendering) and relabels it. The
ingest pixel chain (file → display image) stays in `xraymunit.data.transforms`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Hashable, Mapping

import numpy as np
import torch
from monai.config import KeysCollection
from monai.transforms import MapTransform, RandomizableTransform
from monai.utils import convert_to_dst_type

from xraymunit import checkpoint as checkpoints
from xraymunit.runtime import resolve_device
from xraymunit.synthesis.options import DIRECTIONS
from xraymunit.translator import Translator

__all__ = ["RandTranslated", "translator_for"]

_TRANSLATORS: dict[tuple, Translator] = {}  # per process: a DataLoader worker loads its own once


def translator_for(checkpoint: str | Path, device: str = "cpu", precision: str = "auto",
                   batch_size: int | None = None) -> Translator:
    """The process's one Translator of a checkpoint file and settings (loaded on first use)."""
    key = (str(Path(checkpoint).resolve()), device, precision, batch_size)
    if key not in _TRANSLATORS:
        _TRANSLATORS[key] = Translator.from_checkpoint(checkpoint, device=device, precision=precision,
                                                       batch_size=batch_size)
    return _TRANSLATORS[key]


class RandTranslated(RandomizableTransform, MapTransform):
    """With probability `prob`, replace a `from_label` item's images by a translation and set its
    label to `to_label`; other items pass unchanged (they draw the same random numbers, so a run
    seeded with `set_random_state` is reproducible whatever its labels).

    Images: (1, H, W) or (H, W), float in [0, 1] as the cohort holds them (see `Translator`);
    the translation comes back at H×W (`resize_back`) in the input's type and device.
    Every item gets `seed_key` (the style seed of its translation, -1 if none) and `flag_key`
    (whether it was translated), so a batch collates and any translation can be regenerated:
    `Translator.translate(image, seed=item[seed_key])`.

    The generator is loaded lazily, once per process and checkpoint (`translator_for`); the
    transform itself holds only the path, so it pickles into DataLoader workers. device:
    "cpu" (default: works in forked workers) or "cuda" (in the main process, or spawned workers).
    precision, batch_size: as in `synthesize` (default: its defaults, hence its pixels);
    batch_size=1 renders ~3x faster on a CPU here, where every call renders a single style.

    In DataLoader workers (torch's or MONAI's) each worker draws its own numbers: the state that
    `set_random_state` fixed is mixed with the worker's seed (`torch.utils.data.get_worker_info`), which
    torch derives from the main process's torch RNG for every epoch. So workers and epochs never
    repeat each other's draws, and `torch.manual_seed(s)` + `set_random_state(seed=t)` repeat a run.
    """

    def __init__(self, keys: KeysCollection, checkpoint: str | Path, prob: float = 0.5, label_key: str = "label",
                 from_label: Any = "normal", to_label: Any = "abnormal", *, direction: str = "a2b",
                 device: str = "cpu", precision: str = "auto", batch_size: int | None = None,
                 resize_back: bool = True,
                 seed_key: str | None = "translation_seed", flag_key: str | None = "translated",
                 allow_missing_keys: bool = False):
        MapTransform.__init__(self, keys, allow_missing_keys)
        if not 0.0 <= float(prob) <= 1.0:
            raise ValueError(f"prob must be in [0, 1], got {prob}")
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")
        RandomizableTransform.__init__(self, prob=float(prob))
        resolve_device(device)  # a missing CUDA is said now, not in a DataLoader worker
        self.checkpoint = checkpoints.resolve(checkpoint)
        if not self.checkpoint.is_file():  # now, not in a DataLoader worker an epoch later
            raise checkpoints.CheckpointError(f"checkpoint not found: {self.checkpoint}")
        self.label_key, self.from_label, self.to_label = label_key, from_label, to_label
        self.direction, self.device, self.precision, self.resize_back = direction, device, precision, resize_back
        self.batch_size = batch_size
        self.seed_key, self.flag_key = seed_key, flag_key
        self._style_seed = -1
        self._worker_seed: int | None = None  # the DataLoader worker seed this copy's stream was mixed with

    def __repr__(self) -> str:
        return (f"RandTranslated({list(self.keys)}, {str(self.checkpoint)!r}, prob={self.prob}, "
                f"{self.from_label!r} -> {self.to_label!r}, direction={self.direction!r}, device={self.device!r})")

    def randomize(self, data: Any = None) -> None:
        self._follow_worker()
        super().randomize(None)
        self._style_seed = int(self.R.randint(0, 2**31 - 1))

    def _follow_worker(self) -> None:
        """Each DataLoader worker gets a copy of this transform, random state included: without this,
        every worker (and, with fresh workers, every epoch) would replay the same draws."""
        info = torch.utils.data.get_worker_info()
        if info is None or info.seed == self._worker_seed:
            return
        self._worker_seed = info.seed
        base = int(self.R.randint(0, 2**31 - 1))  # what set_random_state (or MONAI's worker init) fixed
        self.R = np.random.RandomState(np.random.SeedSequence([base, int(info.seed)]).generate_state(4))

    @property
    def translator(self) -> Translator:
        return translator_for(self.checkpoint, self.device, self.precision, self.batch_size)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        self.randomize()
        fire = self._do_transform and self._is_from_label(d[self.label_key])
        if fire:
            for key in self.key_iterator(d):
                d[key] = self._translate(d[key])
            d[self.label_key] = _like(self.to_label, d[self.label_key])
        if self.seed_key:
            d[self.seed_key] = self._style_seed if fire else -1
        if self.flag_key:
            d[self.flag_key] = bool(fire)
        return d

    def _is_from_label(self, value: Any) -> bool:
        if isinstance(value, torch.Tensor) and value.numel() == 1 or isinstance(value, np.ndarray) and value.size == 1:
            value = value.item()  # a tensor label: its one value
        if isinstance(value, str) != isinstance(self.from_label, str):
            raise ValueError(f"label {value!r} (in {self.label_key!r}) and from_label {self.from_label!r} are of "
                             f"different kinds: pass from_label/to_label as the dataset writes labels")
        return value == self.from_label

    def _translate(self, image):
        channel_first = getattr(image, "ndim", 0) == 3
        batch = image[None] if channel_first else image
        out = self.translator.translate(batch, n_styles=1, seed=self._style_seed, direction=self.direction,
                                        resize_back=self.resize_back)
        out = out[0, 0] if channel_first else out[0]  # (1, H, W) or (H, W)
        return convert_to_dst_type(out, dst=image)[0]


def _like(label: Any, previous: Any) -> Any:
    """The new label in the container the old one came in (a tensor stays a tensor)."""
    if isinstance(previous, (torch.Tensor, np.ndarray)):
        return convert_to_dst_type(np.asarray(label), dst=previous)[0]
    return label
