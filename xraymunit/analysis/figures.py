"""Figures for the notebooks: montages of real images, metadata and intensity plots, synthetic grids.

Every function returns a matplotlib Figure built without pyplot (no global figure state,
works under Agg and headless kernels); a notebook displays it by leaving it as the cell's
last expression, a script saves it with fig.savefig(path).
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib.figure import Figure

from xraymunit.analysis.cohort_tables import _filled, _labels, metadata_by_label
from xraymunit.analysis.intensity import histograms, sample_per_label
from xraymunit.analysis.synthetic import filter_synthetic, pick_sources
from xraymunit.io.cohort import Cohort, SyntheticSet

TILE = 1.7  # inches per image tile


def fit_size(image: np.ndarray, size: int) -> np.ndarray:
    """Resize a float [0, 1] image to size×size (bilinear), so real and synthetic images tile together."""
    if image.shape == (size, size):
        return image
    from PIL import Image

    return np.asarray(Image.fromarray(np.asarray(image, np.float32), mode="F").resize((size, size), Image.BILINEAR))


def _caption(row: pd.Series) -> str:
    age = row.get("age")
    bits = [str(row.get("split") or ""), str(row.get("view_position") or ""), str(row.get("sex") or ""),
            f"{age:.0f}y" if isinstance(age, (int, float)) and np.isfinite(age) else ""]
    return " ".join(b for b in bits if b and b != "None")


def _image_axes(fig: Figure, rows: int, cols: int):
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
        for spine in ax.spines.values():
            spine.set_visible(False)
    return axes


def real_montage(cohort: Cohort, n_per_label: int = 6, seed: int = 0, split: str | None = None) -> Figure:
    """One row per label of n random real images (seeded), captioned with split, view, sex and age."""
    rows = sample_per_label(cohort, n_per_label, seed, split=split)
    label = _filled(rows, "label")
    labels = _labels(rows) or ["(no images)"]
    cols = max(1, max((int((label == lab).sum()) for lab in labels), default=1))
    fig = Figure(figsize=(TILE * cols, TILE * len(labels) + 0.4), layout="constrained")
    axes = _image_axes(fig, len(labels), cols)
    for r, lab in enumerate(labels):
        sub = rows[label == lab]
        axes[r][0].set_ylabel(f"{lab} ({int((_filled(cohort.ok(), 'label') == lab).sum())})", fontsize=9)
        for c, (_, row) in enumerate(sub.iterrows()):
            axes[r][c].imshow(cohort.image(row["cache_index"]), cmap="gray", vmin=0, vmax=1)
            axes[r][c].set_title(_caption(row), fontsize=7)
    fig.suptitle(f"Random real images per label (seed {seed}{', split ' + split if split else ''}; "
                 "row label: images in the cohort)", fontsize=9)
    return fig


def metadata_figure(cohort: Cohort, columns=("sex", "view_position", "manufacturer")) -> Figure:
    """Age histogram per label, then one bar chart per metadata column (share within each label)."""
    rows = cohort.ok()
    label = _filled(rows, "label")
    labels = _labels(rows)
    fig = Figure(figsize=(4.0 * (1 + len(columns)), 3.4), layout="constrained")
    axes = fig.subplots(1, 1 + len(columns), squeeze=False)[0]
    ages = pd.to_numeric(rows["age"], errors="coerce")
    bins = np.arange(0, 95, 5)
    for lab in labels:
        a = ages[label == lab].dropna()
        axes[0].hist(a, bins=bins, alpha=0.55, label=f"{lab} (n={len(a)})")
    axes[0].set(title="age", xlabel="years", ylabel="images")
    axes[0].legend(fontsize=7)
    for ax, column in zip(axes[1:], columns):
        share = metadata_by_label(cohort, column, normalize=True)
        x = np.arange(len(share))
        width = 0.8 / max(1, len(share.columns))
        for k, lab in enumerate(share.columns):
            ax.bar(x + k * width - 0.4 + width / 2, share[lab].fillna(0).to_numpy(), width, label=lab)
        ax.set_xticks(x, [str(v)[:18] for v in share.index], rotation=35, ha="right", fontsize=7)
        ax.set(title=column, ylabel="share of the label's images", ylim=(0, 1.05))
        ax.legend(fontsize=7)
    fig.suptitle("Metadata per label (a value seen with one label only is a shortcut for a classifier)", fontsize=9)
    return fig


def intensity_histograms(cohort: Cohort, n_per_label: int | None = 50, seed: int = 0, bins: int = 64) -> Figure:
    """Mean intensity histogram per label with the 25–75% band between images."""
    h = histograms(cohort, n_per_label, seed, bins)
    centres = (h["edges"][:-1] + h["edges"][1:]) / 2
    fig = Figure(figsize=(6.5, 3.6), layout="constrained")
    ax = fig.subplots()
    for lab, per_image in h["histograms"].items():
        mean = per_image.mean(axis=0)
        lo, hi = np.percentile(per_image, [25, 75], axis=0)
        line, = ax.plot(centres, mean, label=f"{lab} ({len(per_image)} images)")
        ax.fill_between(centres, lo, hi, color=line.get_color(), alpha=0.2)
    ax.set(xlabel="intensity (0 = air/padding, 1 = dense)", ylabel="share of pixels", xlim=(0, 1),
           title=f"Intensity histograms per label (seeded sample, ≤{n_per_label} per label)")
    ax.legend(fontsize=8)
    return fig


def synthetic_grid(cohort: Cohort, synth: SyntheticSet, *, rows: pd.DataFrame | None = None, n_sources: int = 4,
                   n_styles: int = 5, seed: int = 0) -> Figure:
    """Each row: a source image from the cohort, then its synthetic images (style index and seed above each).

    Args:
        rows: synthetic manifest rows to show (e.g. from filter_synthetic); default: all styles of
            n_sources random sources (seeded).
        n_styles: at most this many synthetic images per source (in style order).
    """
    if rows is None:
        rows = filter_synthetic(synth, source_image_key=pick_sources(synth, n_sources, seed))
    rows = rows.sort_values(["source_image_key", "seed", "style_index"], kind="stable")
    rows = rows.groupby("source_image_key", sort=False).head(n_styles)
    sources = list(dict.fromkeys(rows["source_image_key"]))
    ok = cohort.ok().set_index("image_key")
    cols = 1 + max([int((rows["source_image_key"] == s).sum()) for s in sources], default=0)
    fig = Figure(figsize=(TILE * cols, TILE * max(1, len(sources)) + 0.4), layout="constrained")
    axes = _image_axes(fig, max(1, len(sources)), cols)
    for r, key in enumerate(sources):
        first = axes[r][0]
        if key in ok.index:
            src = ok.loc[key]
            first.imshow(cohort.image(src["cache_index"]), cmap="gray", vmin=0, vmax=1)
            first.set_title(f"source ({src['label']})", fontsize=7)
        else:
            first.text(0.5, 0.5, "source not\nin this cohort", ha="center", va="center", fontsize=7)
        first.set_ylabel(key[:8], fontsize=7)
        for c, (_, row) in enumerate(rows[rows["source_image_key"] == key].iterrows(), start=1):
            axes[r][c].imshow(synth.image(row), cmap="gray", vmin=0, vmax=1)
            axes[r][c].set_title(f"style {row['style_index']} · seed {row['seed']}", fontsize=7)
    if not sources:
        axes[0][0].text(0.5, 0.5, "no synthetic images match", ha="center", va="center")
    fig.suptitle("Synthetic images next to their sources (row label: source image_key)", fontsize=9)
    return fig


def source_and_styles(cohort: Cohort, synth: SyntheticSet, source_image_key: str,
                      rows: pd.DataFrame | None = None, max_styles: int = 8) -> Figure:
    """One source and its synthetic images (top) with the change each made (synthetic − source, bottom).

    The difference maps show where the translation altered the image: changes confined to the
    lungs are plausible findings; changes to bones, borders or labels are artefacts.
    """
    rows = filter_synthetic(synth if rows is None else rows, source_image_key=source_image_key).head(max_styles)
    ok = cohort.ok().set_index("image_key")
    if source_image_key not in ok.index:
        raise KeyError(f"source image {source_image_key} is not in this cohort")
    src = cohort.image(ok.loc[source_image_key, "cache_index"])
    cols = 1 + len(rows)
    fig = Figure(figsize=(TILE * cols, TILE * 2 + 0.5), layout="constrained")
    axes = _image_axes(fig, 2, cols)
    axes[0][0].imshow(src, cmap="gray", vmin=0, vmax=1)
    axes[0][0].set_title("source", fontsize=7)
    axes[1][0].text(0.5, 0.5, "synthetic − source\n(red brighter,\nblue darker)", ha="center", va="center",
                    fontsize=7, transform=axes[1][0].transAxes)
    for c, (_, row) in enumerate(rows.iterrows(), start=1):
        img = synth.image(row)
        axes[0][c].imshow(img, cmap="gray", vmin=0, vmax=1)
        axes[0][c].set_title(f"style {row['style_index']} · seed {row['seed']}", fontsize=7)
        diff = img - fit_size(src, img.shape[-1])
        axes[1][c].imshow(diff, cmap="RdBu_r", vmin=-0.5, vmax=0.5)
        axes[1][c].set_title(f"mean |Δ| {np.abs(diff).mean():.3f}", fontsize=7)
    fig.suptitle(f"Source {source_image_key} and its synthetic images", fontsize=9)
    return fig
