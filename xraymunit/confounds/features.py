"""Features of the shortcut test: which rows, the header design matrices, image thumbnails/histograms/statistics."""

from __future__ import annotations

import numpy as np
import pandas as pd

from xraymunit.io.cohort import Cohort

THUMB_SIDE = 8             # thumbnail side (area-averaged from the cache)
HIST_BINS = 16             # intensity histogram bins on [0, 1]
BLACK_LEVEL = 0.01         # a pixel at or below this display intensity counts as black border
MISSING = "(none)"

# Header factors: what the acquisition, not the patient, decides. Age and sex are left out on
# purpose (they are biology and legitimately differ between normal and abnormal cohorts).
CATEGORICAL = ("source_dataset", "source_format", "manufacturer", "modality", "window_source",
               "view_position", "photometric", "bits_stored", "transfer_syntax")
NUMERIC = {"original_size": ("rows", "columns"), "pixel_spacing": ("spacing_row_mm", "spacing_col_mm")}
PROFILE_NAME = {"rows": "original_rows", "columns": "original_columns"}
INTENSITY_PERCENTILES = (1, 5, 50, 95, 99)
IMAGE_STATS = ("black_border_fraction", "intensity_mean", *(f"intensity_p{q:02d}" for q in INTENSITY_PERCENTILES))



def _rows(cohort: Cohort, domain_a: str, domain_b: str, split: str | tuple[str, ...] | None,
          source_datasets=None) -> pd.DataFrame:
    rows = cohort.ok()
    if split is not None:
        rows = rows[rows["split"].isin([split] if isinstance(split, str) else list(split))]
    if source_datasets:
        rows = rows[rows["source_dataset"].isin(list(source_datasets))]
    return rows[rows["label"].isin([domain_a, domain_b])].reset_index(drop=True)


def _sample(rows: pd.DataFrame, domain_a: str, domain_b: str, n_max: int | None, seed: int) -> pd.DataFrame:
    """At most n_max rows per domain (seeded), in manifest order."""
    rng = np.random.default_rng(seed)
    keep = []
    for lab in (domain_a, domain_b):
        idx = np.flatnonzero(rows["label"].to_numpy() == lab)
        if n_max is not None and len(idx) > n_max:
            idx = rng.choice(idx, size=n_max, replace=False)
        keep.append(idx)
    return rows.iloc[np.sort(np.concatenate(keep))].reset_index(drop=True)


def _block_means(images: np.ndarray, side: int) -> np.ndarray:
    """Area-shrink (n, S, S) to (n, side, side): the mean of each block (S need not divide)."""
    s = images.shape[-1]
    edges = np.linspace(0, s, side + 1).round().astype(int)[:-1]
    sums = np.add.reduceat(np.add.reduceat(images, edges, axis=1), edges, axis=2)
    sizes = np.diff(np.r_[edges, s])
    return sums / (sizes[:, None] * sizes[None, :])


def image_features(cohort: Cohort, cache_indices, chunk: int = 64) -> dict[str, np.ndarray]:
    """Per image: thumbnail (n, 64), histogram (n, 16) and the IMAGE_STATS columns, read in chunks."""
    idx = np.asarray(cache_indices, dtype=np.int64)
    thumbs, hists, stats = [], [], []
    edges = np.linspace(0.0, 1.0, HIST_BINS + 1)
    for start in range(0, len(idx), chunk):
        images = cohort.stack(idx[start:start + chunk])
        flat = images.reshape(len(images), -1)
        thumbs.append(_block_means(images, THUMB_SIDE).reshape(len(images), -1))
        bins = np.clip(np.searchsorted(edges, flat, side="right") - 1, 0, HIST_BINS - 1)
        h = np.stack([np.bincount(b, minlength=HIST_BINS) for b in bins]).astype(np.float64)
        hists.append(h / flat.shape[1])
        pct = np.percentile(flat, INTENSITY_PERCENTILES, axis=1).T
        stats.append(np.column_stack([(flat <= BLACK_LEVEL).mean(axis=1), flat.mean(axis=1), pct]))
    n = len(idx)
    thumb = np.concatenate(thumbs) if thumbs else np.zeros((n, THUMB_SIDE**2))
    hist = np.concatenate(hists) if hists else np.zeros((n, HIST_BINS))
    st = np.concatenate(stats) if stats else np.zeros((n, len(IMAGE_STATS)))
    return {"thumbnail": thumb, "histogram": hist, **{name: st[:, [k]] for k, name in enumerate(IMAGE_STATS)}}


def _categories(col: pd.Series) -> pd.Series:
    return col.astype(object).where(col.notna(), MISSING).astype(str)


def _metadata_blocks(train: pd.DataFrame, val: pd.DataFrame) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Per header factor: (train, val) design matrices; one-hot categories seen in train; numerics
    as a standardised value, a missing flag and one-hot quintile bins (so non-monotone effects count)."""
    blocks = {}
    for name in CATEGORICAL:
        if name not in train:
            continue
        tr, va = _categories(train[name]), _categories(val[name])
        levels = sorted(tr.unique())
        blocks[name] = tuple((c.to_numpy()[:, None] == np.array(levels)[None, :]).astype(float) for c in (tr, va))
    for name, cols in NUMERIC.items():
        parts_tr, parts_va = [], []
        for c in cols:
            if c not in train:
                continue
            tr = pd.to_numeric(train[c], errors="coerce").to_numpy(float)
            va = pd.to_numeric(val[c], errors="coerce").to_numpy(float)
            known = tr[np.isfinite(tr)]
            if known.size == 0:
                continue
            q = np.unique(np.quantile(known, [0.2, 0.4, 0.6, 0.8]))
            for x, parts in ((tr, parts_tr), (va, parts_va)):
                miss = ~np.isfinite(x)
                filled = np.where(miss, np.median(known), x)
                onehot = np.eye(len(q) + 1)[np.searchsorted(q, filled, side="right")]
                parts.append(np.column_stack([filled, miss.astype(float), onehot * ~miss[:, None]]))
        if parts_tr:
            blocks[name] = (np.hstack(parts_tr), np.hstack(parts_va))
    return blocks
