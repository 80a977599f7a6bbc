"""A run's training-time quality (quality.csv, written by xraymunit/quality/training_monitor.py) and the cohort's
judges (COHORT/judge/*/judge.json), as tables and figures for the notebooks."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from xraymunit.io.cohort import Cohort
from xraymunit.pipeline.layout import RunLayout
from xraymunit.quality.quality_csv import quality_figure, read_quality_csv


def training_runs(root: str | Path) -> dict[str, Path]:
    """MUNIT run folders of a pipeline output with quality tracking: train/ (one generator) or
    train_<level>/ (one per level), by name."""
    runs = RunLayout(Path(root)).training_runs()
    return {p.name: p for p in runs if (p / "quality.csv").is_file()}


def training_quality(root: str | Path) -> pd.DataFrame:
    """Every quality measurement of every run folder under `root` (a `run` column names it)."""
    frames = [pd.DataFrame(read_quality_csv(p / "quality.csv")).assign(run=name)
              for name, p in training_runs(root).items()]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame()


def training_quality_figure(run_dir: str | Path):
    """quality.png's figure for one run folder (each measure vs step and vs wall-clock time)."""
    return quality_figure(read_quality_csv(Path(run_dir) / "quality.csv"))


def judges(cohort: Cohort) -> pd.DataFrame:
    """The judges trained on this cohort, with their val/test AUROC (95% CI) and training data; `weak` by
    today's rule (val CI lower bound), also for judges saved under the old point-estimate rule."""
    from xraymunit.quality.judge import is_weak

    rows = []
    for path in sorted((cohort.root / "judge").glob("*/judge.json")):
        info = json.loads(path.read_text())
        v, t = info["val_auroc"], info.get("test_auroc") or {}
        c = info["config"]["classifier"]
        rows.append({"fingerprint": info["fingerprint"], "arch": c["arch"], "image_size": c["image_size"],
                     "steps": c["steps"], "val_auroc": v["value"], "val_ci": (v.get("ci_low"), v.get("ci_high")),
                     "test_auroc": t.get("value"), "test_ci": (t.get("ci_low"), t.get("ci_high")),
                     "threshold": info["threshold"], "n_train_normal": info["n_train"]["normal"],
                     "n_train_abnormal": info["n_train"]["abnormal"], "weak": is_weak(v)})
    return pd.DataFrame(rows)
