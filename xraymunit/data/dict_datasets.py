"""Cohort and synthetic images as MONAI-style dicts, for your own training loop.

    real = CohortDataset("runs/x/cohort", split="train", size=128)
    synth = SyntheticDataset("runs/x/synth", cohort="runs/x/cohort", size=128)
    train = mix(real, synth, synthetic_fraction=0.3)

Every item has the same keys, so real and synthetic items collate into one batch:
`image` (float32 (1, S, S) in [0, 1], bright = dense), `label` (the cohort's label text),
`patient_key` (for a synthetic image: its source's patient, so patient-level splits keep a
translation with its source), `image_key` (a synthetic image's synth_key), `source_image_key`,
`split` and `synthetic`. The selection rules are evaluate's (`evaluation.datasets`): a
translation of a val/test patient never enters a training set.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import pandas as pd
import torch
from torch.utils.data import ConcatDataset, Dataset, Subset

from xraymunit.config.evaluate import SyntheticConfig
from xraymunit.errors import XraymunitError
from xraymunit.evaluation.datasets import resize, select_synthetic
from xraymunit.io.cohort import Cohort, SyntheticSet

__all__ = ["CohortDataset", "SyntheticDataset", "MixedDataset", "mix"]

SPLITS = ("train", "val", "test", "all")


class DatasetError(XraymunitError, ValueError):
    """A dataset cannot be built as asked (unknown split, too few synthetic images, sizes differ)."""


class _Dicts(Dataset):
    """Rows of a table → dicts; `image_size` is the side of every image it returns."""

    def __init__(self, rows: pd.DataFrame, size: int | None, transform: Callable | None):
        self.rows = rows.reset_index(drop=True)
        self.size, self.transform = size, transform

    def __len__(self) -> int:
        return len(self.rows)

    def _image(self, row) -> np.ndarray:
        raise NotImplementedError

    def _item(self, row) -> dict:
        raise NotImplementedError

    def __getitem__(self, index: int) -> dict:
        row = self.rows.iloc[int(index)]
        image = self._image(row)
        tensor = torch.from_numpy(np.ascontiguousarray(image, np.float32))[None]
        if self.size is not None:
            tensor = resize(image[None], self.size)[0]
        item = {"image": tensor, **self._item(row)}
        return self.transform(item) if self.transform is not None else item


class CohortDataset(_Dicts):
    """The ingested images of a cohort split (`all`: every split), sorted by image_key.

    labels: keep only these labels (default: every label); size: resize to this side (area
    averaging when shrinking), default the cohort's cache side; transform: applied to each dict."""

    def __init__(self, cohort: str | Path | Cohort, split: str = "train", *, labels: Sequence[str] | None = None,
                 size: int | None = None, transform: Callable | None = None):
        if split not in SPLITS:
            raise DatasetError(f"split must be one of {SPLITS}, got {split!r}")
        self.cohort = cohort if isinstance(cohort, Cohort) else Cohort.open(cohort)
        rows = self.cohort.select(None if split == "all" else split)
        if labels is not None:
            labels = [labels] if isinstance(labels, str) else list(labels)
            known = sorted(self.cohort.ok()["label"].astype(str).unique())
            unknown = [label for label in labels if label not in known]
            if unknown:
                raise DatasetError(f"label(s) {unknown} not in the cohort {self.cohort.root}; its labels: {known}")
            rows = rows[rows["label"].isin(labels)]
        if len(rows) == 0:
            raise DatasetError(f"no image of the cohort {self.cohort.root} is in split {split!r}"
                               + (f" with labels {labels}" if labels is not None else ""))
        super().__init__(rows.sort_values("image_key"), size, transform)

    @property
    def image_size(self) -> int:
        return self.size or self.cohort.image_size

    def _image(self, row) -> np.ndarray:
        return self.cohort.image(row["cache_index"])

    def _item(self, row) -> dict:
        return {"label": str(row["label"]), "patient_key": str(row["patient_key"]), "image_key": str(row["image_key"]),
                "source_image_key": str(row["image_key"]), "split": str(row["split"]), "synthetic": False}

    def __repr__(self) -> str:
        counts = ", ".join(f"{n} {label}" for label, n in self.rows["label"].value_counts().sort_index().items())
        return f"CohortDataset({len(self)} images: {counts or 'none'}; {self.cohort.root})"


class SyntheticDataset(_Dicts):
    """The PNGs of a synthesize folder, labelled with their intended label, sorted by synth_key.

    split: keep translations of sources of this split (default train; `all`: every one). cohort:
    the source cohort, to apply evaluate's full rules too (a source whose patient has any image
    outside train is dropped); `excluded` then counts what was dropped and why."""

    def __init__(self, synth_dir: str | Path, *, cohort: str | Path | Cohort | None = None, split: str = "train",
                 size: int | None = None, transform: Callable | None = None):
        if split not in SPLITS:
            raise DatasetError(f"split must be one of {SPLITS}, got {split!r}")
        self.synthetic = SyntheticSet.open(synth_dir)
        rows = self.synthetic.manifest
        rows = rows[rows["png_path"].notna()]
        if split != "all":
            rows = rows[rows["split"] == split]
        self.excluded: dict = {}
        if cohort is not None:
            source = cohort if isinstance(cohort, Cohort) else Cohort.open(cohort)
            kept = []
            for label in sorted(rows["intended_label"].unique()):
                chosen = select_synthetic(rows[rows["intended_label"] == label], source.manifest,
                                          SyntheticConfig(intended_label=label))
                kept.append(chosen.used)
                self.excluded.update(chosen.counts()["excluded_by_reason"])
            rows = pd.concat(kept) if kept else rows.iloc[:0]
        if len(rows) == 0:
            why = "; ".join(f"{k}: {v}" for k, v in self.excluded.items() if v)
            raise DatasetError(f"no synthetic image of {self.synthetic.root} is left for split {split!r}"
                               + (f" (excluded: {why})" if why else "")
                               + ("; translations of val/test patients never enter a training set"
                                  if cohort is not None and split != "train" else ""))
        super().__init__(rows.sort_values("synth_key"), size, transform)

    @property
    def image_size(self) -> int:
        return self.size or (int(self.rows["size"].iloc[0]) if len(self.rows) else 0)

    def _image(self, row) -> np.ndarray:
        return self.synthetic.image(row)

    def _item(self, row) -> dict:
        return {"label": str(row["intended_label"]), "patient_key": str(row["source_patient_key"]),
                "image_key": str(row["synth_key"]), "source_image_key": str(row["source_image_key"]),
                "split": str(row["split"]), "synthetic": True}

    def __repr__(self) -> str:
        return f"SyntheticDataset({len(self)} images from {self.rows['source_image_key'].nunique()} sources; " \
               f"{self.synthetic.root})"


class MixedDataset(ConcatDataset):
    """`mix`'s result: the real items, then the picked synthetic ones."""

    def __repr__(self) -> str:
        real, synthetic = (len(d) for d in self.datasets)
        share = synthetic / max(1, real + synthetic)
        return f"MixedDataset({real} real + {synthetic} synthetic = {len(self)} items, {share:.0%} synthetic)"


def mix(real: Dataset, synthetic: Dataset, synthetic_fraction: float, *, seed: int = 0) -> MixedDataset:
    """Every real item plus a seeded sample of synthetic ones (without replacement), so that
    `synthetic_fraction` of the result is synthetic; refuses what it cannot honour. Give both
    datasets the same transform: MONAI transforms return MetaTensors, and one batch cannot
    collate MetaTensors with plain tensors."""
    if not 0.0 <= synthetic_fraction < 1.0:
        raise DatasetError(f"synthetic_fraction must be in [0, 1), got {synthetic_fraction}")
    sizes = {getattr(real, "image_size", None), getattr(synthetic, "image_size", None)} - {None}
    if len(sizes) > 1:
        raise DatasetError(f"real and synthetic images have different sides {sorted(sizes)}: pass the same size= "
                           f"to both datasets")
    wanted = int(round(synthetic_fraction / (1.0 - synthetic_fraction) * len(real)))
    if wanted > len(synthetic):
        raise DatasetError(f"synthetic_fraction={synthetic_fraction} with {len(real)} real images needs {wanted} "
                           f"synthetic ones; there are {len(synthetic)} (synthesize more styles, or lower it)")
    picked = np.sort(np.random.default_rng([seed, 0x313]).choice(len(synthetic), wanted, replace=False))
    return MixedDataset([real, Subset(synthetic, picked.tolist())])
