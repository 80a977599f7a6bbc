"""The evaluation's numbers as tables: realism and diversity of the synthetic images, classifier arms.

Reads report/metrics.json (written by `xraymunit evaluate`, see xraymunit/evaluation/report.py)
as plain JSON; every synthetic number is shown next to its real-image yardstick, because
these cohort-trained feature distances mean nothing on their own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

METRICS = "metrics.json"


def load_metrics(report: str | Path) -> dict | None:
    """metrics.json of a report folder (or the file itself); None when the evaluation has not run."""
    path = Path(report)
    path = path / METRICS if path.is_dir() or path.suffix != ".json" else path
    if not path.is_file():
        return None
    metrics = json.loads(path.read_text())
    if metrics.get("format") != "xraymunit.evaluate":
        raise ValueError(f"{path} is not an xraymunit evaluation report (format {metrics.get('format')!r})")
    return metrics


def _ci(d: dict | None) -> tuple:
    d = d or {}
    return d.get("mean"), d.get("ci_low"), d.get("ci_high")


def quality_table(metrics: dict | None) -> pd.DataFrame:
    """One row per quality measure: the synthetic value (with CI where there is one) and its yardstick.

    Columns: group (realism/diversity/content/memorisation), measure, better (↑/↓), synthetic,
    synthetic_ci_low, synthetic_ci_high, yardstick, yardstick_is. Empty when the report has no
    quality section (no synthetic set, or quality disabled).
    """
    columns = ["group", "measure", "better", "synthetic", "synthetic_ci_low", "synthetic_ci_high",
               "yardstick", "yardstick_is"]
    q = (metrics or {}).get("quality")
    if not q:
        return pd.DataFrame(columns=columns)
    r, dv, c, m = q["realism"], q["diversity"], q["content_preservation"], q["memorisation"]
    s, y, i = r["synthetic_vs_real_abnormal"], r["yardstick_real_normal_vs_real_abnormal"], r["inputs_vs_real_abnormal"]
    ds, dr = dv["synthetic_styles_of_same_input"], dv["yardstick_real_abnormal_pairs"]
    rows = [
        ("realism", "Fréchet distance to real abnormal", "↓", s.get("frechet"), s.get("frechet_ci_low"),
         s.get("frechet_ci_high"), y.get("frechet"), "real normal ↔ real abnormal"),
        ("realism", "Fréchet distance of the inputs (before translation)", "↓", i.get("frechet"),
         i.get("frechet_ci_low"), i.get("frechet_ci_high"), y.get("frechet"), "real normal ↔ real abnormal"),
        ("realism", "KID to real abnormal", "↓", s.get("kid"), None, None, y.get("kid"),
         "real normal ↔ real abnormal"),
        ("diversity", "LPIPS-style between styles of one input", "↑", *_ci(ds.get("lpips_style")),
         _ci(dr.get("lpips_style"))[0], "pairs of real abnormal images"),
        ("diversity", "1 − MS-SSIM between styles of one input", "↑", *_ci(ds.get("one_minus_ms_ssim")),
         _ci(dr.get("one_minus_ms_ssim"))[0], "pairs of real abnormal images"),
        ("content", "low-pass SSIM input ↔ translation", "↑", *_ci(c.get("ssim_input_vs_translation")),
         _ci(c.get("yardstick_ssim_unrelated_inputs"))[0], "two different patients"),
        ("memorisation", "share of images closer to a training image than any two real ones", "↓",
         (m["n_flagged"] / m["n_synthetic"]) if m.get("n_synthetic") else None, None, None, 0.0,
         "no near-copies"),
    ]
    return pd.DataFrame(rows, columns=columns)


def classifier_table(metrics: dict | None) -> pd.DataFrame:
    """Test AUROC (mean over seeds, CI) per level and arm, with the paired ΔAUROC vs real-only."""
    columns = ["level", "n_real_abnormal", "arm", "auroc", "auroc_ci_low", "auroc_ci_high",
               "delta_vs_real", "delta_ci_low", "delta_ci_high", "verdict"]
    if not metrics:
        return pd.DataFrame(columns=columns)
    rows = []
    for lv in metrics["levels"]:
        res = metrics["results"][lv["name"]]
        for arm in metrics["arms"]:
            if arm not in res["arms"]:
                continue  # per-level generators: no synthetic folder for this level
            a = res["arms"][arm]["auroc"]
            d = res["comparisons"].get(f"{arm} vs real", {}).get("auroc") or {}
            rows.append((lv["name"], lv["n_real_abnormal"], arm, a.get("value"), a.get("ci_low"), a.get("ci_high"),
                         d.get("delta"), d.get("ci_low"), d.get("ci_high"), d.get("verdict")))
    return pd.DataFrame(rows, columns=columns)
