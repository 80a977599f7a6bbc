"""Words and tables for the shortcut test: messages naming the factor and its remedy, summary rows, JSON."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xraymunit.confounds.features import HIST_BINS, INTENSITY_PERCENTILES, THUMB_SIDE
from xraymunit.io import atomic

_WINDOW = "re-ingest with `--window percentile` so every image gets the same intensity mapping"
_SOURCE = "train within one source with `data.source_datasets: [...]`"
_MATCH = ("matched sampling: label only a subset in which both domains have the same mix of {f} "
          "(images left out of the labels CSV stay unlabelled and are not trained on)")
REMEDY = {
    "window_source": _WINDOW, "photometric": _WINDOW, "bits_stored": _WINDOW,
    "intensity_mean": _WINDOW, **{f"intensity_p{q:02d}": _WINDOW for q in INTENSITY_PERCENTILES},
    "black_border_fraction": "black borders differ: re-ingest with `--fit crop`, or use matched sampling on "
                             "detector size",
    "source_dataset": _SOURCE,
    "manufacturer": f"{_SOURCE}, or " + _MATCH.format(f="manufacturer"),
    "source_format": f"{_SOURCE}, or " + _MATCH.format(f="source_format"),
    "modality": f"{_SOURCE}, or " + _MATCH.format(f="modality"),
    "transfer_syntax": f"{_SOURCE}, or " + _MATCH.format(f="transfer_syntax"),
}

TEST_LABEL = {"metadata": "header metadata", "thumbnail": f"{THUMB_SIDE}x{THUMB_SIDE} thumbnail",
              "histogram": f"{HIST_BINS}-bin intensity histogram"}


def _top(factors: dict) -> str | None:
    """The factor that separates best: highest CI lower bound, then highest AUROC."""
    scored = [(f["ci_low"], f["auroc"], name) for name, f in factors.items() if f.get("auroc") is not None]
    return max(scored)[2] if scored else None


def _fmt(t: dict, ci: float) -> str:
    return f"val AUROC {t['auroc']:.2f} ({int(round(ci * 100))}% CI {t['ci_low']:.2f}–{t['ci_high']:.2f})"


def _message(name: str, t: dict, a: str, b: str, threshold: float, ci: float) -> str:
    label = TEST_LABEL[name]
    if t.get("auroc") is None:
        return f"{label}: not tested ({t.get('status')})"
    if not t["warn"]:
        return f"{label}: no shortcut shown, {_fmt(t, ci)}; lower bound not above {threshold:.2f}"
    factor = t.get("factor") or name
    caveat = ("" if name == "metadata" else " (unless the finding itself changes global intensity, e.g. large "
              "effusions: compare domain_profile)")
    return (f"{label} alone tells '{b}' from '{a}': {_fmt(t, ci)} > {threshold:.2f}; strongest factor: {factor}. "
            f"MUNIT would learn {factor} as the '{b}' style{caveat}. Remedy: {remedy(factor)}")


def remedy(factor: str) -> str:
    """What to do about a confound, by factor (README: 'Confounds and the shortcut test')."""
    return REMEDY.get(factor, _MATCH.format(f=factor))


def warnings(result: dict) -> list[str]:
    """One loud line per test that warned, naming the factor and the remedy (empty list: nothing to say)."""
    return [f"SHORTCUT WARNING: {t['message']}" for t in result.get("tests", {}).values() if t.get("warn")]


def shortcut_table(result: dict) -> pd.DataFrame:
    """The result as a table: one row per test, then one per single factor (what each alone achieves)."""
    keys = ("auroc", "ci_low", "ci_high", "warn")
    rows = [{"test": TEST_LABEL[name], "features": "all", **{k: t.get(k) for k in keys},
             "strongest_factor": t.get("factor")} for name, t in result.get("tests", {}).items()]
    singles = (("header factor", result.get("tests", {}).get("metadata", {}).get("factors", {})),
               ("image statistic", result.get("image_factors", {})))
    for group, factors in singles:
        rows += [{"test": group, "features": f, **{k: t.get(k) for k in keys}, "strongest_factor": None}
                 for f, t in factors.items()]
    return pd.DataFrame(rows, columns=["test", "features", *keys, "strongest_factor"])


def summary_lines(result: dict) -> list[str]:
    """The "Shortcut test" section of a Markdown report: one table row per test, loud warnings first."""
    a, b = result["domains"]["a"], result["domains"]["b"]
    ci = int(round(result["ci_level"] * 100))
    L = ["## Shortcut test", ""]
    L += [f"**⚠ {line}**" for line in warnings(result)]
    if L[-1] != "":
        L.append("")
    L.append(f"Can a trivial model (L2 logistic regression, fitted on train) tell '{b}' from '{a}' without "
             f"the finding? Val AUROC with a {ci}% CI; it warns when the CI's lower bound is above "
             f"{result['threshold']:.2f}. Val: {result['n_val'][a]} {a} / {result['n_val'][b]} {b} images "
             f"({result['n_val_patients'][a]} / {result['n_val_patients'][b]} patients).")
    L.append("")
    if result.get("note"):
        L += [f"Note: {result['note']}.", ""]
    if result["tests"]:
        L.append(f"| features | val AUROC [{ci}% CI] | strongest factor | shortcut? |")
        L.append("|---|---|---|---|")
        for name, t in result["tests"].items():
            auc = "n/a" if t.get("auroc") is None else f"{t['auroc']:.3f} [{t['ci_low']:.3f}, {t['ci_high']:.3f}]"
            flag = "**yes**" if t["warn"] else "no"
            L.append(f"| {TEST_LABEL[name]} | {auc} | {t.get('factor') or '—'} | {flag} |")
        L.append("")
    return L


def write_shortcut_report(result: dict, path: str | Path) -> Path:
    """Write the shortcut test result as JSON, atomically."""
    path = Path(path)
    atomic.write_json(path, result)
    return path
