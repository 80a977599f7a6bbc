"""Image intensity statistics per label, from the cohort cache (values in [0, 1], bright = dense).

Systematic intensity differences between normal and abnormal images (one vendor, one
window, more padding) are shortcuts a classifier learns instead of the finding, and they
are what a translation model will learn to imitate; these tables make them visible. Only
a seeded sample of images per label is read, so large cohorts stay quick.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xraymunit.analysis.cohort_tables import _filled, _labels
from xraymunit.io.cohort import Cohort

STATS = ["mean", "sd", "p01", "p50", "p99", "zero_fraction"]


def sample_per_label(cohort: Cohort, n_per_label: int | None = 50, seed: int = 0,
                     split: str | None = None) -> pd.DataFrame:
    """Up to n_per_label ingested rows of each label (random, seeded; None = all), in manifest order."""
    rows = cohort.ok() if split is None else cohort.select(split=split)
    label = _filled(rows, "label")
    rng = np.random.default_rng(seed)
    keep = []
    for lab in _labels(rows):
        idx = np.flatnonzero(label.to_numpy() == lab)
        if n_per_label is not None and len(idx) > n_per_label:
            idx = np.sort(rng.choice(idx, size=n_per_label, replace=False))
        keep.append(idx)
    picked = np.sort(np.concatenate(keep)) if keep else np.zeros(0, np.int64)
    return rows.iloc[picked].reset_index(drop=True)


def image_intensity(cohort: Cohort, rows: pd.DataFrame) -> pd.DataFrame:
    """Per image: mean, SD, 1st/50th/99th percentile and the share of pixels at exactly 0 (padding, clipped air)."""
    images = cohort.stack(rows["cache_index"].to_numpy())
    flat = images.reshape(len(images), -1)
    if len(flat) == 0:
        stats = {name: np.zeros(0) for name in STATS}
    else:
        p01, p50, p99 = np.percentile(flat, [1, 50, 99], axis=1)
        stats = {"mean": flat.mean(axis=1), "sd": flat.std(axis=1), "p01": p01, "p50": p50, "p99": p99,
                 "zero_fraction": (flat == 0).mean(axis=1)}
    out = pd.DataFrame({"image_key": rows["image_key"].to_numpy(), "label": _filled(rows, "label").to_numpy(),
                        "split": _filled(rows, "split").to_numpy(), **stats})
    return out


def intensity_by_label(cohort: Cohort, n_per_label: int | None = 50, seed: int = 0) -> pd.DataFrame:
    """Mean ± SD over images of each per-image statistic, per label, on a seeded sample.

    Returns one row per label; columns `images` (in the cohort), `sampled`, and for each
    statistic `<stat>_mean` and `<stat>_sd` (the spread between images).
    """
    rows = cohort.ok()
    counts = _filled(rows, "label").value_counts()
    per_image = image_intensity(cohort, sample_per_label(cohort, n_per_label, seed))
    out = {}
    for lab in _labels(rows):
        sub = per_image[per_image["label"] == lab]
        entry = {"images": int(counts.get(lab, 0)), "sampled": int(len(sub))}
        for name in STATS:
            entry[f"{name}_mean"] = sub[name].mean()
            entry[f"{name}_sd"] = sub[name].std()
        out[lab] = entry
    table = pd.DataFrame(out).T
    table[["images", "sampled"]] = table[["images", "sampled"]].astype(int)
    table.index.name = "label"
    return table.round(4)


def histograms(cohort: Cohort, n_per_label: int | None = 50, seed: int = 0, bins: int = 64) -> dict:
    """Per label: the bin edges and the per-image normalised histograms (images × bins) of a seeded sample."""
    rows = sample_per_label(cohort, n_per_label, seed)
    label = _filled(rows, "label").to_numpy()
    edges = np.linspace(0.0, 1.0, bins + 1)
    out = {}
    for lab in _labels(rows):
        images = cohort.stack(rows.loc[label == lab, "cache_index"].to_numpy())
        h = np.stack([np.histogram(im, bins=edges)[0] for im in images]).astype(np.float64)
        out[lab] = h / np.maximum(h.sum(axis=1, keepdims=True), 1)
    return {"edges": edges, "histograms": out}
