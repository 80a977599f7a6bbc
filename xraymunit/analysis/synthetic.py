"""Tables over a synthetic set: what was generated, which rows match a filter, and each row's source.

The synthetic manifest records provenance (source image, style index, seed, style mode,
checkpoint), so browsing and filtering need only the manifest; images are read on demand.
"""

from __future__ import annotations

from typing import Iterable

import numpy as np
import pandas as pd

from xraymunit.io.cohort import Cohort, SyntheticSet


def _manifest(synth: SyntheticSet | pd.DataFrame) -> pd.DataFrame:
    return synth if isinstance(synth, pd.DataFrame) else synth.manifest


def synthetic_summary(synth: SyntheticSet | pd.DataFrame) -> pd.Series:
    """Counts a reader checks first: images, source images, styles per source, seeds, modes, splits."""
    m = _manifest(synth)
    per_source = m.groupby("source_image_key").size() if len(m) else pd.Series(dtype=int)
    return pd.Series({
        "images": int(len(m)),
        "source_images": int(m["source_image_key"].nunique()),
        "source_patients": int(m["source_patient_key"].nunique()),
        "styles_per_source": (f"{per_source.min()}–{per_source.max()}" if len(per_source) and
                              per_source.min() != per_source.max() else (int(per_source.min()) if len(per_source) else 0)),
        "directions": ", ".join(sorted(map(str, m["direction"].unique()))),
        "intended_labels": ", ".join(sorted(map(str, m["intended_label"].unique()))),
        "style_modes": ", ".join(sorted(map(str, m["style_mode"].unique()))),
        "seeds": ", ".join(map(str, sorted(m["seed"].unique()))),
        "splits": ", ".join(f"{k} {v}" for k, v in m["split"].value_counts().sort_index().items()),
        "checkpoint_steps": ", ".join(map(str, sorted(m["checkpoint_step"].unique()))),
        "with_png": int(m["png_path"].map(lambda p: isinstance(p, str) and bool(p)).sum()),
    }, name="synthetic set")


def _as_set(value) -> set | None:
    if value is None:
        return None
    if isinstance(value, (str, int, np.integer)):
        return {value}
    return set(value)


def filter_synthetic(synth: SyntheticSet | pd.DataFrame, *, style_index: int | Iterable[int] | None = None,
                     seed: int | Iterable[int] | None = None, source_image_key: str | Iterable[str] | None = None,
                     style_mode: str | Iterable[str] | None = None, split: str | Iterable[str] | None = None,
                     png_only: bool = True) -> pd.DataFrame:
    """Manifest rows matching every given filter (None = any), sorted by source then style.

    Args:
        style_index: one index or several (0 = the first style sampled for each source).
        seed: the synthesis seed(s) (a set synthesised twice with different seeds has both).
        source_image_key: restrict to these source images (the cohort's image_key).
        style_mode: random / reference / interpolate.
        split: the source image's split.
        png_only: drop rows without a PNG (DICOM-only outputs cannot be shown here).
    """
    m = _manifest(synth)
    keep = pd.Series(True, index=m.index)
    for column, wanted in (("style_index", style_index), ("seed", seed), ("source_image_key", source_image_key),
                           ("style_mode", style_mode), ("split", split)):
        wanted = _as_set(wanted)
        if wanted is not None:
            keep &= m[column].isin(wanted)
    if png_only:
        keep &= m["png_path"].map(lambda p: isinstance(p, str) and bool(p))
    return m[keep].sort_values(["source_image_key", "seed", "style_index"], kind="stable").reset_index(drop=True)


def pick_sources(synth: SyntheticSet | pd.DataFrame, n: int, seed: int = 0) -> list[str]:
    """n source image keys with synthetic images (random, seeded; sorted for a stable display)."""
    keys = np.array(sorted(_manifest(synth)["source_image_key"].unique()))
    rng = np.random.default_rng(seed)
    return sorted(rng.choice(keys, size=min(n, len(keys)), replace=False).tolist()) if len(keys) else []


def with_sources(rows: pd.DataFrame, cohort: Cohort) -> pd.DataFrame:
    """The synthetic rows joined with their source image's cohort metadata (label, split, view, sex, age, cache_index).

    Rows whose source is not in the cohort (another cohort, re-ingested) get cache_index -1.
    """
    cols = ["image_key", "label", "view_position", "sex", "age", "manufacturer", "cache_index"]
    src = cohort.ok()[cols].rename(columns={"image_key": "source_image_key", "label": "source_cohort_label"})
    out = rows.merge(src, on="source_image_key", how="left")
    out["cache_index"] = out["cache_index"].fillna(-1).astype(np.int64)
    return out
