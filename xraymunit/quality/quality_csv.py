"""quality.csv — the training-time quality log — and what reads it: columns, the best.pt score,
the curves figure, a run's summary. No torch, so reports and notebooks can read it anywhere.

`score` (the `quality.best_by: score` criterion of `checkpoints/best.pt`) is the mean of three
terms in [0, 1] — finding: a2b success / success on real val abnormals (capped at 1);
realism: 1 − FD(translations, real B) / FD(inputs, real B), clipped to [0, 1]; diversity:
LPIPS-style distance between styles of one input / the same between real B pairs (capped
at 1) — and it is 0 when the translations keep the input's anatomy no better than an
unrelated patient does (low-pass SSIM at or below that yardstick).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

import numpy as np

from xraymunit.io import atomic

COLUMNS = [
    "step", "seconds", "images_seen", "monitor_seconds", "judge_val_auroc",
    "a2b_success", "a2b_success_real_abnormal", "a2b_success_real_normal",
    "b2a_success", "b2a_success_real_normal", "b2a_success_real_abnormal",
    "a2b_fd", "a2b_fd_inputs", "a2b_kid", "a2b_kid_inputs",
    "a2b_diversity_lpips", "a2b_diversity_ms_ssim", "real_b_pairs_lpips", "real_b_pairs_ms_ssim",
    "a2b_content_ssim", "content_ssim_unrelated",
    "a2b_mask_area", "a2b_change_inside", "a2b_change_outside", "a2b_change_mean",
    "score",
]
"""quality.csv, in order. *_success: share judged abnormal (a2b) / normal (b2a); fd/kid in judge
features; diversity_ms_ssim is 1 − MS-SSIM; content_ssim is low-pass SSIM input ↔ translation.
How global the change is (|translation − input| in [0, 1] image units): mask_area is the mean of the
mask — the model's soft mask m in residual_mask mode, the indicator |translation − input| >
CHANGE_THRESHOLD in image mode, so both modes are measured against a mask; change_inside /
change_outside the mask-weighted mean change in / outside it; change_mean over the whole image."""

CHANGE_THRESHOLD = 0.05  # a change of 5 % of the intensity range: above 8-bit noise, below any visible finding


def format_cell(v):
    if isinstance(v, float):
        return "" if not math.isfinite(v) else f"{v:.6g}"
    return v


def quality_score(row: dict) -> float:
    """The documented best.pt criterion (module docstring): mean of finding, realism, diversity."""
    if not row["a2b_content_ssim"] > row["content_ssim_unrelated"]:
        return 0.0
    finding = min(row["a2b_success"] / max(row["a2b_success_real_abnormal"], 1e-6), 1.0)
    realism = float(np.clip(1.0 - row["a2b_fd"] / max(row["a2b_fd_inputs"], 1e-12), 0.0, 1.0))
    diversity = min(row["a2b_diversity_lpips"] / max(row["real_b_pairs_lpips"], 1e-12), 1.0)
    terms = [finding, realism, diversity]
    return float(np.mean(terms)) if all(math.isfinite(x) for x in terms) else math.nan


PANELS = [  # (title, column, yardsticks: (column, label))
    ("translation success a2b\n(share judged abnormal)", "a2b_success",
     [("a2b_success_real_abnormal", "real abnormal"), ("a2b_success_real_normal", "real normal")]),
    ("realism: FD to real B\n(judge features, lower = better)", "a2b_fd", [("a2b_fd_inputs", "untranslated inputs")]),
    ("diversity: LPIPS-style\nbetween styles of one input", "a2b_diversity_lpips", [("real_b_pairs_lpips", "real B pairs")]),
    ("diversity: 1 − MS-SSIM\nbetween styles of one input", "a2b_diversity_ms_ssim", [("real_b_pairs_ms_ssim", "real B pairs")]),
    ("content kept: low-pass SSIM\ninput ↔ translation", "a2b_content_ssim", [("content_ssim_unrelated", "two patients")]),
    ("how global is the change:\nmask area (share of pixels)", "a2b_mask_area", []),
    ("mean |translation − input|\ninside / outside the mask", "a2b_change_inside",
     [("a2b_change_outside", "outside (last)")]),
    ("translation success b2a\n(share judged normal)", "b2a_success",
     [("b2a_success_real_normal", "real normal"), ("b2a_success_real_abnormal", "real abnormal")]),
    ("best.pt score", "score", []),
]


def quality_figure(rows: list[dict]):
    """Each measure vs step (top row) and vs wall-clock minutes (bottom row), yardsticks dashed
    (a matplotlib Figure made without pyplot)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3.0 * len(PANELS), 6.4))
    fig.subplots_adjust(left=0.04, right=0.99, top=0.84, bottom=0.09, wspace=0.35, hspace=0.35)
    axes = fig.subplots(2, len(PANELS), squeeze=False)
    steps = [r["step"] for r in rows]
    minutes = [r["seconds"] / 60.0 for r in rows]
    for c, (title, col, yards) in enumerate(PANELS):
        for r, (xs, xlabel) in enumerate(((steps, "step"), (minutes, "wall-clock minutes"))):
            ax = axes[r, c]
            ax.plot(xs, [row.get(col, math.nan) for row in rows], "o-", ms=3, color="C0", label="model")
            for k, (ycol, label) in enumerate(yards):
                ax.axhline(rows[-1].get(ycol, math.nan), ls="--", color=f"C{k + 1}", lw=1, label=label)
            ax.set_xlabel(xlabel, fontsize=8)
            ax.tick_params(labelsize=7)
            if r == 0:
                ax.set_title(title, fontsize=8)
                ax.legend(fontsize=6, loc="best")
    fig.suptitle(f"quality on fixed val images (judge val AUROC {rows[-1].get('judge_val_auroc', math.nan):.2f})",
                 fontsize=9)
    return fig


def save_figure(rows: list[dict], path: Path) -> None:
    if rows:
        with atomic.atomic_path(path) as tmp:
            quality_figure(rows).savefig(tmp, format="png", dpi=80)


def read_quality_csv(path: str | Path) -> list[dict]:
    """quality.csv rows as dicts of floats (empty cells → NaN)."""
    with open(path, newline="") as fh:
        return [{k: float(v) if v not in ("", None) else math.nan for k, v in r.items()} for r in csv.DictReader(fh)]


def summarise_run(run_dir: str | Path, best_by: str = "score") -> dict | None:
    """What a training run's quality tracking found: first, best and last measurement (None if untracked)."""
    run_dir = Path(run_dir)
    path = run_dir / "quality.csv"
    if not path.is_file():
        return None
    rows = read_quality_csv(path)
    if not rows:
        return None
    key = {"score": "score", "success": "a2b_success", "fd": "a2b_fd"}[best_by]
    sign = -1.0 if best_by == "fd" else 1.0
    finite = [r for r in rows if math.isfinite(r.get(key, math.nan))]
    best = max(finite, key=lambda r: sign * r[key]) if finite else None
    return {"run": str(run_dir), "n_measurements": len(rows), "best_by": best_by,
            "first": rows[0], "best": best, "last": rows[-1],
            "monitor_share": sum(r.get("monitor_seconds", 0.0) for r in rows) / max(rows[-1]["seconds"], 1e-9),
            "plot": str(run_dir / "quality.png") if (run_dir / "quality.png").is_file() else None}
