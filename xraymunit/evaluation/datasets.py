"""What the classifier may see: real images by split, eligible synthetic images, augmentation.

The honesty rules live here, in one place: a synthetic image derived from a val/test
patient (or from a source the cohort does not know) never enters training, and every
exclusion is counted so the report can say how many were dropped and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F

from xraymunit.config.evaluate import AugmentConfig, SyntheticConfig
from xraymunit.io.cohort import Cohort, SyntheticSet


@dataclass
class ImageSet:
    """Images (n, 1, s, s) float32 in [0, 1] with their labels (1 = abnormal) and provenance."""

    images: torch.Tensor
    labels: np.ndarray
    keys: np.ndarray
    patients: np.ndarray
    sources: np.ndarray = field(default=None)

    def __post_init__(self):
        if self.sources is None:
            self.sources = np.array([None] * len(self.labels), dtype=object)

    def __len__(self) -> int:
        return int(len(self.labels))

    def subset(self, idx) -> "ImageSet":
        idx = np.asarray(idx, dtype=np.int64)
        return ImageSet(self.images[torch.as_tensor(idx)], self.labels[idx], self.keys[idx],
                        self.patients[idx], self.sources[idx])

    def where(self, label: int) -> np.ndarray:
        return np.flatnonzero(self.labels == label)


def resize(stack: np.ndarray, size: int) -> torch.Tensor:
    """(n, S, S) float → (n, 1, size, size); area averaging when shrinking (no aliasing)."""
    x = torch.from_numpy(np.ascontiguousarray(stack, dtype=np.float32))[:, None]
    if x.shape[0] == 0:
        return torch.zeros((0, 1, size, size))
    return resize_batch(x, size)


def resize_batch(x: torch.Tensor, size: int) -> torch.Tensor:
    """(n, 1, S, S) images in [0, 1] → side `size`: area averaging when shrinking, bilinear when enlarging;
    returned as is when the side already fits."""
    if x.shape[-1] == size and x.shape[-2] == size:
        return x
    mode = "area" if x.shape[-1] > size else "bilinear"
    kwargs = {} if mode == "area" else {"align_corners": False}
    return F.interpolate(x, size=(size, size), mode=mode, **kwargs).clamp_(0.0, 1.0)


def split_rows(cohort: Cohort, split: str, normal: str, abnormal: str) -> pd.DataFrame:
    """Manifest rows of one split labelled normal or abnormal, sorted by image_key (no pixels)."""
    rows = cohort.select(split=split)
    return rows[rows["label"].isin([normal, abnormal])].sort_values("image_key").reset_index(drop=True)


def real_split(cohort: Cohort, split: str, size: int, normal: str, abnormal: str) -> ImageSet:
    """All ingested images of one split labelled normal or abnormal, sorted by image_key."""
    rows = split_rows(cohort, split, normal, abnormal)
    sources = rows["source_dataset"] if "source_dataset" in rows else pd.Series([None] * len(rows))
    return ImageSet(
        images=resize(cohort.stack(rows["cache_index"].to_numpy()), size),
        labels=(rows["label"] == abnormal).to_numpy().astype(np.int64),
        keys=rows["image_key"].to_numpy(dtype=object),
        patients=rows["patient_key"].to_numpy(dtype=object),
        sources=sources.to_numpy(dtype=object),
    )


@dataclass
class SyntheticSelection:
    """Synthetic rows usable for training, and every excluded row with its reason."""

    used: pd.DataFrame
    excluded: pd.DataFrame

    def counts(self) -> dict:
        by_reason = self.excluded["reason"].value_counts().to_dict() if len(self.excluded) else {}
        return {
            "total": int(len(self.used) + len(self.excluded)),
            "used_for_training": int(len(self.used)),
            "excluded": int(len(self.excluded)),
            "excluded_by_reason": {str(k): int(v) for k, v in sorted(by_reason.items())},
            "source_images_used": int(self.used["source_image_key"].nunique()) if len(self.used) else 0,
        }


EXCLUDE_LABEL = "intended_label is not the abnormal label"
EXCLUDE_DIRECTION = "direction not selected"
EXCLUDE_NO_PNG = "no PNG file"
EXCLUDE_UNKNOWN = "source not found in the cohort"
EXCLUDE_HELD_OUT = "source patient is in val/test"
EXCLUDE_MAX_STYLES = "beyond max_styles_per_source"


def select_synthetic(synthetic: pd.DataFrame, cohort_manifest: pd.DataFrame, cfg: SyntheticConfig) -> SyntheticSelection:
    """Apply the leakage rules: only translations of *train* patients known to the cohort.

    A source counts as held out if its patient (by source_patient_key, or by the patient of
    source_image_key) has any image outside train, or if the synthetic row itself says val/test.
    """
    m = synthetic.copy()
    ok = cohort_manifest[cohort_manifest["status"] == "ok"]
    patient_splits = ok.groupby("patient_key")["split"].agg(lambda s: frozenset(s.dropna()))
    image_patient = dict(zip(ok["image_key"], ok["patient_key"]))

    def patient_of(row) -> str | None:
        pk = row.get("source_patient_key")
        if isinstance(pk, str) and pk in patient_splits.index:
            return pk
        return image_patient.get(row.get("source_image_key"))

    reasons = []
    for _, row in m.iterrows():
        png = row.get("png_path")
        if row.get("intended_label") != cfg.intended_label:
            reasons.append(EXCLUDE_LABEL)
        elif cfg.direction != "any" and row.get("direction") != cfg.direction:
            reasons.append(EXCLUDE_DIRECTION)
        elif not isinstance(png, str) or not png:
            reasons.append(EXCLUDE_NO_PNG)
        else:
            pk = patient_of(row)
            if pk is None:
                reasons.append(EXCLUDE_UNKNOWN)
            elif patient_splits[pk] != frozenset({"train"}) or row.get("split") in ("val", "test"):
                reasons.append(EXCLUDE_HELD_OUT)
            else:
                reasons.append(None)
    m["reason"] = reasons
    keep = m[m["reason"].isna()]
    if cfg.max_styles_per_source > 0 and len(keep):
        order = keep.sort_values(["source_image_key", "style_index", "synth_key"])
        rank = order.groupby("source_image_key").cumcount()
        over = order.index[rank.to_numpy() >= cfg.max_styles_per_source]
        m.loc[over, "reason"] = EXCLUDE_MAX_STYLES
    used = m[m["reason"].isna()].drop(columns="reason").sort_values("synth_key").reset_index(drop=True)
    excluded = m[m["reason"].notna()].reset_index(drop=True)
    return SyntheticSelection(used=used, excluded=excluded)


def synthetic_images(synth: SyntheticSet, rows: pd.DataFrame, size: int,
                     dtype: torch.dtype = torch.float32) -> ImageSet:
    """Load synthetic PNGs as an ImageSet labelled abnormal (keys are synth_keys).

    dtype=torch.float16 halves the memory of a large training pool (20 styles × 1,000
    inputs at 224 px is 4 GB in float32); batches are cast back to float32 when drawn.
    """
    stack = [resize(synth.image(r)[None], size).to(dtype) for _, r in rows.iterrows()]
    images = torch.cat(stack) if stack else torch.zeros((0, 1, size, size), dtype=dtype)
    return ImageSet(
        images=images,
        labels=np.ones(len(rows), np.int64),
        keys=rows["synth_key"].to_numpy(dtype=object),
        patients=rows["source_patient_key"].to_numpy(dtype=object),
    )


def low_data_order(n: int, seed: int) -> np.ndarray:
    """A seed's order of the real abnormal training images; level K keeps the first K.

    The same order for every arm and every level of a seed, so smaller subsets are nested
    in larger ones and arms differ only in what they add.
    """
    return np.random.default_rng([seed, 0x5EED]).permutation(n)


def low_data_keys(cohort: Cohort, level: int | str, seed: int, normal_label: str = "normal",
                  abnormal_label: str = "abnormal") -> list[str]:
    """image_keys of the K real abnormal *train* images that low-data level K keeps for `seed`.

    The one rule shared by `evaluate` (the classifier arms of a level) and the pipeline's
    per-level generators (`data.domain_b_keys`): the train split's abnormal images sorted by
    image_key, taken in `low_data_order(n, seed)`, first K, returned sorted. `level` is K or
    'all'; K >= the number available means all of them. Nested: level K ⊂ level K' for K < K'.
    """
    rows = split_rows(cohort, "train", normal_label, abnormal_label)
    abnormal = rows.loc[rows["label"] == abnormal_label, "image_key"].to_numpy(dtype=object)
    n = len(abnormal) if level == "all" else min(int(level), len(abnormal))
    return sorted(str(k) for k in abnormal[low_data_order(len(abnormal), seed)[:n]])


class ClassicalAugment:
    """Arms 2 and 4: MONAI random affine + contrast (gamma) + intensity scale/shift + noise.

    Per-sample randomness from a seeded state, so a seed reproduces the same augmentations.
    """

    def __init__(self, cfg: AugmentConfig, size: int, seed: int):
        from monai.transforms import (RandAdjustContrast, RandAffine, RandGaussianNoise,
                                      RandScaleIntensity, RandShiftIntensity)

        self.transforms = [
            RandAffine(prob=cfg.prob, rotate_range=(math.radians(cfg.rotate_deg),),
                       translate_range=(cfg.translate_frac * size, cfg.translate_frac * size),
                       scale_range=(cfg.scale, cfg.scale), padding_mode="zeros", mode="bilinear"),
            RandAdjustContrast(prob=cfg.prob, gamma=tuple(cfg.contrast_gamma)),
            RandScaleIntensity(factors=cfg.intensity_scale, prob=cfg.prob),
            RandShiftIntensity(offsets=cfg.intensity_shift, prob=cfg.prob),
            RandGaussianNoise(prob=cfg.prob, std=cfg.noise_std),
        ]
        for i, t in enumerate(self.transforms):
            t.set_random_state(seed=(seed * 7919 + i) % (2**32))

    def __call__(self, batch: torch.Tensor) -> torch.Tensor:
        from monai.data import get_track_meta, set_track_meta

        tracking = get_track_meta()
        set_track_meta(False)  # plain tensors: MetaTensor bookkeeping costs more than the transforms
        try:
            out = []
            for img in batch:
                x = img
                for t in self.transforms:
                    x = t(x)
                out.append(torch.as_tensor(x, dtype=torch.float32))
        finally:
            set_track_meta(tracking)
        return torch.stack(out).clamp_(0.0, 1.0)
