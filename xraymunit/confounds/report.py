"""Words and tables for the shortcut test: messages naming the factor and its remedy, summary rows, JSON."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from xraymunit.confounds.features import HIST_BINS, INTENSITY_PERCENTILES, THUMB_SIDE
from xraymunit.io import atomic

_WINDOW = ("re-ingest with `--window percentile` (in a pipeline config: `ingest.window: percentile`) so every "
           "image gets the same intensity mapping")
_SOURCE = "train within one source with `data.source_datasets: [...]`"
_MATCH = ("matched sampling: label only a subset in which both domains have the same mix of {f} "
          "(images left out of the labels CSV stay unlabelled and are not trained on)")
REMEDY = {
    "window_source": _WINDOW, "photometric": _WINDOW, "bits_stored": _WINDOW,
    "intensity_mean": _WINDOW, **{f"intensity_p{q:02d}": _WINDOW for q in INTENSITY_PERCENTILES},
    "black_border_fraction": "black borders differ: re-ingest with `--fit crop` (pipeline: `ingest.fit: crop`), or "
                             "use matched sampling on detector size",
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


def _interval(t: dict, ci: float) -> str:
    return f"{t['auroc']:.2f} ({int(round(ci * 100))}% CI {t['ci_low']:.2f}–{t['ci_high']:.2f})"


def _fmt(t: dict, ci: float) -> str:
    text = f"cross-validated AUROC {_interval(t, ci)}"
    test = t.get("test") or {}
    if test.get("auroc") is not None:
        text += f", test split AUROC {_interval(test, ci)}"
    return text


def _message(name: str, t: dict, a: str, b: str, threshold: float, ci: float) -> str:
    """One line per test, in the words of its tier (shown / possible / none seen)."""
    label = TEST_LABEL[name]
    if t.get("auroc") is None:
        return f"{label}: not tested ({t.get('status')})"
    factor = t.get("factor") or name
    caveat = ("" if name == "metadata" else " (unless the finding itself changes global intensity, e.g. large "
              "effusions: compare domain_profile)")
    if t["tier"] == "shown":
        by_factor = t["ci_low"] <= threshold  # the header factors together fall short; one alone does not
        proof = (f"{factor} alone: {_fmt(t['factors'][factor], ci)}" if by_factor and factor in t.get("factors", {})
                 else _fmt(t, ci))
        return (f"{label} alone tells '{b}' from '{a}': {proof}; lower bound > {threshold:.2f}; strongest "
                f"factor: {factor}. MUNIT would learn {factor} as the '{b}' style{caveat}. Remedy: {remedy(factor)}")
    if t["tier"] == "possible":
        return (f"{label} may tell '{b}' from '{a}': {_fmt(t, ci)}; the AUROC is above {threshold:.2f} but too few "
                f"patients to prove it (lower bound not above {threshold:.2f}); strongest factor: {factor}. "
                f"Look at domain_profile; if it is a confound: {remedy(factor)}")
    excluded = t["ci_high"] <= threshold
    return (f"{label}: no shortcut seen, {_fmt(t, ci)}; "
            + (f"the interval excludes one above {threshold:.2f}" if excluded else
               f"too few patients to exclude one above {threshold:.2f} (upper bound {t['ci_high']:.2f})"))


def verdict(result: dict) -> str | None:
    """The one-line answer: shown, possible, none found (only when every interval excludes one), or
    none seen but not excluded. None when no decision was made."""
    if not result.get("decision"):
        return None
    tests = [t for t in result["tests"].values() if t.get("auroc") is not None]
    shown = [n for n, t in result["tests"].items() if t.get("tier") == "shown"]
    possible = [n for n, t in result["tests"].items() if t.get("tier") == "possible"]
    thr = result["threshold"]
    if shown:
        return "domain shortcut shown by the " + ", ".join(TEST_LABEL[n] for n in shown)
    if possible:
        return ("possible domain shortcut (" + ", ".join(TEST_LABEL[n] for n in possible)
                + f": AUROC above {thr:.2f}, too few patients to prove it)")
    if tests and all(t["ci_high"] <= thr for t in tests):
        return f"no domain shortcut found (every interval excludes an AUROC above {thr:.2f})"
    top = max((t["ci_high"] for t in tests), default=1.0)
    return (f"no domain shortcut seen, but too few patients to exclude one (an interval reaches {top:.2f} "
            f"> {thr:.2f})")


def remedy(factor: str) -> str:
    """What to do about a confound, by factor (docs/guide/train.md: 'Confounds and the shortcut test')."""
    return REMEDY.get(factor, _MATCH.format(f=factor))


def warnings(result: dict) -> list[str]:
    """One loud line per test whose shortcut is shown, naming the factor and the remedy (empty: none shown)."""
    return [f"SHORTCUT WARNING: {t['message']}" for t in result.get("tests", {}).values() if t.get("warn")]


def cautions(result: dict) -> list[str]:
    """One line per test whose shortcut is possible but not proven (a small cohort's AUROC above the threshold)."""
    return [f"POSSIBLE SHORTCUT: {t['message']}" for t in result.get("tests", {}).values()
            if t.get("tier") == "possible"]


def shortcut_table(result: dict) -> pd.DataFrame:
    """The result as a table: one row per test, then one per single factor (what each alone achieves)."""
    keys = ("auroc", "ci_low", "ci_high", "tier", "warn")
    rows = [{"test": TEST_LABEL[name], "features": "all", **{k: t.get(k) for k in keys},
             "test_auroc": (t.get("test") or {}).get("auroc"), "strongest_factor": t.get("factor")}
            for name, t in result.get("tests", {}).items()]
    singles = (("header factor", result.get("tests", {}).get("metadata", {}).get("factors", {})),
               ("image statistic", result.get("image_factors", {})))
    for group, factors in singles:
        rows += [{"test": group, "features": f, **{k: t.get(k) for k in keys}, "strongest_factor": None}
                 for f, t in factors.items()]
    return pd.DataFrame(rows, columns=["test", "features", *keys, "test_auroc", "strongest_factor"])


def summary_lines(result: dict) -> list[str]:
    """The "Shortcut test" section of a Markdown report: the verdict, loud lines, one table row per test."""
    a, b = result["domains"]["a"], result["domains"]["b"]
    ci = int(round(result["ci_level"] * 100))
    L = ["## Shortcut test", ""]
    if result.get("verdict"):
        L += [f"**Verdict: {result['verdict']}.**", ""]
    L += [f"**⚠ {line}**" for line in warnings(result)] + [f"*{line}*" for line in cautions(result)]
    if L[-1] != "":
        L.append("")
    n_cv, p_cv = result.get("n_cv", {}), result.get("n_cv_patients", {})
    L.append(f"Can a trivial model (L2 logistic regression) tell '{b}' from '{a}' without the finding? "
             f"Cross-validated over train + val ({result.get('n_folds')} patient-grouped folds): "
             f"{n_cv.get(a)} {a} / {n_cv.get(b)} {b} images ({p_cv.get(a)} / {p_cv.get(b)} patients), AUROC "
             f"with a {ci}% CI. Shortcut *shown* when the CI's lower bound is above {result['threshold']:.2f}, "
             f"*possible* when only the AUROC is. The test split (not cross-validated) is scored by a model "
             f"fitted on all of train + val.")
    L.append("")
    if result.get("note"):
        L += [f"Note: {result['note']}.", ""]
    if result["tests"]:
        L.append(f"| features | cross-validated AUROC [{ci}% CI] | test AUROC [{ci}% CI] | strongest factor | "
                 f"shortcut? |")
        L.append("|---|---|---|---|---|")
        for name, t in result["tests"].items():
            flag = {"shown": "**shown**", "possible": "*possible*"}.get(t.get("tier"), "none seen")
            L.append(f"| {TEST_LABEL[name]} | {_cell(t)} | {_cell(t.get('test') or {})} | "
                     f"{t.get('factor') or '—'} | {flag} |")
        L.append("")
    return L


def _cell(t: dict) -> str:
    return "n/a" if t.get("auroc") is None else f"{t['auroc']:.3f} [{t['ci_low']:.3f}, {t['ci_high']:.3f}]"


def write_shortcut_report(result: dict, path: str | Path) -> Path:
    """Write the shortcut test result as JSON, atomically."""
    path = Path(path)
    atomic.write_json(path, result)
    return path
