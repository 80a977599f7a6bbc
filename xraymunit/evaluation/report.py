"""The evaluation report: metrics.json for machines, PNG plots, summary.md for a person.

Every file is written atomically. The text of summary.md is composed in `summary` (its
functions are also reachable from here: headline, overall, summary, caveats).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from xraymunit import config as config_mod
from xraymunit.evaluation.summary import ARM_LABEL, METRIC_LABEL, _ci, caveats, headline, overall, summary
from xraymunit.io import atomic, csvfile

__all__ = ["write", "headline", "overall", "summary", "caveats", "ARM_LABEL", "METRIC_LABEL"]


def write(out: Path, metrics: dict, runs: list[dict], test, val, grid: dict | None, cfg,
          external: dict | None = None) -> None:
    """metrics.json, summary.md, predictions.csv (every score, the test cohorts' too), plots, the config.

    external: the study's test cohorts ({name: ExternalSet}, `--test-cohort`), or None.
    """
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config_mod.save(cfg, out / "evaluate_config.yaml")
    _predictions(out / "predictions.csv", runs, val, test, external or {})
    plots = {"roc": "roc.png", "levels": "metric_vs_real_abnormal.png"}
    _plot_roc(out / plots["roc"], metrics, runs, test)
    _plot_levels(out / plots["levels"], metrics)
    if grid and grid.get("inputs"):
        plots["grid"] = "styles_grid.png"
        plot_styles_grid(out / plots["grid"], grid)
    for level, tq in (metrics.get("training_quality") or {}).items():
        if tq.get("plot"):
            name = "training_quality.png" if level == "all" else f"training_quality_{level}.png"
            atomic.write_bytes(out / name, Path(tq["plot"]).read_bytes())
            plots[f"training_quality_{level}"] = name
    metrics["files"] = {"predictions": "predictions.csv", "config": "evaluate_config.yaml",
                        "summary": "summary.md", "plots": plots}
    atomic.write_json(out / "metrics.json", _clean(metrics))
    atomic.write_text(out / "summary.md", summary(metrics))


def _clean(obj):
    """JSON-safe: NaN/inf become null, numpy scalars become Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if isinstance(obj, (np.floating, float)):
        return float(obj) if np.isfinite(obj) else None
    if isinstance(obj, np.integer):
        return int(obj)
    return obj


def _predictions(path: Path, runs, val, test, external: dict | None = None) -> None:
    """One row per run and scored image; `cohort` is "internal" for the study's own val and test images,
    else the test cohort's name (its `split`: the one --external-split chose)."""
    frames = []
    for r in runs:
        scored = [("internal", "val", val, r["_val_scores"]), ("internal", "test", test, r["_test_scores"])]
        scored += [(name, e.split, e.images, r["_external_scores"][name]) for name, e in (external or {}).items()]
        for cohort, split, s, scores in scored:
            frames.append(pd.DataFrame({
                "level": r["level"], "arm": r["arm"], "generator": r.get("generator"), "seed": r["seed"],
                "cohort": cohort, "split": split,
                "image_key": s.keys, "patient_key": s.patients, "source_dataset": s.sources,
                "label": s.labels, "score": scores,
            }))
    table = pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()
    csvfile.write_csv(table, path, index=False)  # labels / source names come from a user's CSV


def _subplots(rows: int, cols: int, **kwargs):
    """A Figure and its axes without pyplot: the caller's (a notebook's) backend stays as it is."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=kwargs.pop("figsize", None))
    FigureCanvasAgg(fig)
    return fig, fig.subplots(rows, cols, **kwargs)


def _save(fig, path: Path) -> None:
    with atomic.atomic_path(path) as tmp:
        fig.savefig(tmp, dpi=110, bbox_inches="tight", format="png")


def _plot_roc(path: Path, metrics: dict, runs, test) -> None:
    """One panel per level; per arm the ROC averaged over seeds (vertical averaging)."""
    from xraymunit.evaluation.metrics import roc_curve

    levels = [lv["name"] for lv in metrics["levels"]]
    fig, axes = _subplots(1, len(levels), figsize=(4.2 * len(levels), 4.2), squeeze=False)
    grid = np.linspace(0, 1, 201)
    for ax, level in zip(axes[0], levels):
        for arm in metrics["arms"]:
            if arm not in metrics["results"][level]["arms"]:
                continue  # no synthetic folder for this level
            curves = []
            for r in runs:
                if r["level"] == level and r["arm"] == arm:
                    fpr, tpr, _ = roc_curve(test.labels, r["_test_scores"])
                    curves.append(np.interp(grid, fpr, tpr))
            a = metrics["results"][level]["arms"][arm]["auroc"]
            ax.plot(grid, np.mean(curves, 0), label=f"{ARM_LABEL[arm]}: {_ci(a)}")
        ax.plot([0, 1], [0, 1], color="grey", lw=0.8, ls=":")
        n = metrics["results"][level]["n_real_abnormal"]
        ax.set(title=f"real abnormal: {level} (n={n})", xlabel="1 − specificity", ylabel="sensitivity",
               xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"ROC on the test split (mean over {len(metrics['seeds'])} seed(s); AUROC with 95% CI)", fontsize=9)
    _save(fig, path)


def _plot_levels(path: Path, metrics: dict) -> None:
    """AUROC (and the other metrics) against the number of real abnormal training images."""
    names = list(METRIC_LABEL)
    fig, axes = _subplots(1, len(names), figsize=(4.2 * len(names), 3.8), squeeze=False)
    levels = metrics["levels"]
    xs = np.array([lv["n_real_abnormal"] for lv in levels], float)
    for ax, name in zip(axes[0], names):
        for k, arm in enumerate(metrics["arms"]):
            vals = [metrics["results"][lv["name"]]["arms"].get(arm, {}).get(name)
                    or {"value": None, "ci_low": None, "ci_high": None} for lv in levels]
            y = np.array([v["value"] if v["value"] is not None else np.nan for v in vals])
            lo = np.array([v["ci_low"] if v["ci_low"] is not None else np.nan for v in vals])
            hi = np.array([v["ci_high"] if v["ci_high"] is not None else np.nan for v in vals])
            jitter = xs * (1 + 0.02 * (k - 1.5))  # keep overlapping CIs readable
            ax.errorbar(jitter, y, yerr=[y - lo, hi - y], marker="o", capsize=3, label=ARM_LABEL[arm])
        if len(xs) > 1 and xs.min() > 0:
            ax.set_xscale("log")
        ax.set_xticks(xs, [f"{int(x)}" + (" (all)" if lv["name"] == "all" else "") for x, lv in zip(xs, levels)])
        ax.minorticks_off()
        ax.set(xlabel="real abnormal training images", ylabel=METRIC_LABEL[name], ylim=(0, 1.02))
        ax.grid(alpha=0.3)
    axes[0][0].legend(fontsize=7)
    fig.suptitle("Test metrics vs number of real abnormal training images (mean over seeds, 95% CI)", fontsize=9)
    _save(fig, path)


def plot_styles_grid(path: Path, grid: dict) -> None:
    """Per input two rows: the input and its styles, then each style's change map (same colour
    scale for every map: 0 to the largest change shown, so maps compare across styles)."""
    maps = grid.get("change_maps")
    n_inputs, per = len(grid["inputs"]), 2 if maps else 1
    cols = 1 + max(len(s) for s in grid["styles"])
    vmax = max([float(np.max(m)) for row in maps or [] for m in row] + [1e-3])
    fig, axes = _subplots(n_inputs * per, cols, figsize=(1.6 * cols, 1.6 * n_inputs * per), squeeze=False)
    for i in range(n_inputs):
        for c in range(cols):
            ax = axes[i * per][c]
            ax.axis("off")
            img = grid["inputs"][i] if c == 0 else (grid["styles"][i][c - 1] if c - 1 < len(grid["styles"][i]) else None)
            if img is not None:
                ax.imshow(img, cmap="gray", vmin=0, vmax=1)
            if i == 0:
                ax.set_title("input (normal)" if c == 0 else f"style {c}", fontsize=7)
            if maps:
                below = axes[i * per + 1][c]
                below.axis("off")
                if 0 < c <= len(maps[i]):
                    below.imshow(maps[i][c - 1], cmap="magma", vmin=0, vmax=vmax)
                elif c == 0:
                    below.text(0.5, 0.5, f"change map\n(0 to {vmax:.2f})", ha="center", va="center", fontsize=7)
    fig.suptitle("Synthetic abnormal images: each input with several sampled styles, and below each style "
                 "its change map", fontsize=8)
    _save(fig, path)
