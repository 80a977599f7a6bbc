"""Confounds caught before training: what, besides the finding, separates the two domains.

MUNIT learns *whatever* tells domain A from domain B. If the abnormal images come from
another hospital, scanner, intensity window or view, the "abnormal style" it learns is that
acquisition difference, not the disease. Two tools, both on an opened `Cohort`:

- `domain_profile`: per domain, the distribution of each acquisition factor (source, vendor,
  window, view, photometric, bits stored, original size, black borders, intensity percentiles).
- `shortcut_test`: how well a *trivial* model separates the domains from (a) header metadata
  alone, (b) an 8×8 thumbnail alone, (c) a 16-bin intensity histogram alone. Each model is an
  L2-regularised logistic regression fitted on the train split and scored on the val split.

Decision rule. A test warns when the *lower* bound of its val AUROC confidence interval
exceeds `WARN_AUROC` (0.70, "acceptable discrimination" by the usual reading of AUROC): the
warning needs evidence that the shortcut is strong, not a lucky draw. The interval is the
union of a patient-level bootstrap percentile CI and a Wilson score interval with n = the
smaller number of val patients per domain. The Wilson part rests on AUROC's maximum-variance
bound, Var ≤ AUROC(1 − AUROC)/min(n_a, n_b) (Birnbaum & Klose 1957), so, unlike the bootstrap
or DeLong, it does not collapse to a point when a small val set happens to separate
perfectly. A consequence, on purpose: with fewer than `min_val_patients_to_warn` (9 at the
defaults) val patients in a domain nothing can warn, and the result says so.

The thumbnail and histogram tests see the images as cached (after windowing), so they also
see the disease itself when it changes global intensity (large effusions, white-outs): a
warning there is a prompt to look at `domain_profile`, not proof of a scanner artefact.
No torch: numpy, pandas and scipy only.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import norm

from xraymunit.evaluation import metrics as M
from xraymunit.io import atomic
from xraymunit.io.cohort import Cohort

WARN_AUROC = 0.70          # warn when the val AUROC CI's lower bound is above this
CI_LEVEL = 0.95            # two-sided confidence level of the AUROC interval
N_BOOT = 1000              # patient-bootstrap resamples
THUMB_SIDE = 8             # thumbnail side (area-averaged from the cache)
HIST_BINS = 16             # intensity histogram bins on [0, 1]
BLACK_LEVEL = 0.01         # a pixel at or below this display intensity counts as black border
MAX_IMAGES = 500           # per domain and split, read for the image tests (seeded sample)
PROFILE_MAX_IMAGES = 200   # per domain, read for domain_profile's image statistics
L2 = 1.0                   # ridge penalty of the logistic regressions (like scikit-learn's C = 1)
MISSING = "(none)"

# Header factors: what the acquisition, not the patient, decides. Age and sex are left out on
# purpose (they are biology and legitimately differ between normal and abnormal cohorts).
CATEGORICAL = ("source_dataset", "source_format", "manufacturer", "modality", "window_source",
               "view_position", "photometric", "bits_stored", "transfer_syntax")
NUMERIC = {"original_size": ("rows", "columns"), "pixel_spacing": ("spacing_row_mm", "spacing_col_mm")}
PROFILE_NAME = {"rows": "original_rows", "columns": "original_columns"}
INTENSITY_PERCENTILES = (1, 5, 50, 95, 99)
IMAGE_STATS = ("black_border_fraction", "intensity_mean", *(f"intensity_p{q:02d}" for q in INTENSITY_PERCENTILES))

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


# --------------------------------------------------------------------------- rows and features


def _rows(cohort: Cohort, domain_a: str, domain_b: str, split: str | None,
          source_datasets=None) -> pd.DataFrame:
    rows = cohort.ok()
    if split is not None:
        rows = rows[rows["split"] == split]
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


# --------------------------------------------------------------------------- the trivial model


def _standardise(train: np.ndarray, val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, sd = train.mean(axis=0), train.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    return (train - mu) / sd, (val - mu) / sd


def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float = L2) -> np.ndarray:
    """L2-regularised logistic regression, classes weighted equally, intercept unpenalised.

    Returns [intercept, *weights]. A trivial, convex model on purpose: if *it* separates the
    domains, so will any generator. Minimises Σ cᵢ log(1 + exp(−sᵢ zᵢ)) + l2/2 ‖w‖² with L-BFGS.
    """
    X, y = np.asarray(X, float), np.asarray(y).astype(bool)
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    c = np.where(y, len(y) / (2 * n_pos), len(y) / (2 * n_neg))
    s = np.where(y, 1.0, -1.0)

    def loss(theta):
        z = X @ theta[1:] + theta[0]
        m = -s * z
        g = -c * s * expit(m)
        w = theta[1:]
        return (np.sum(c * np.logaddexp(0.0, m)) + 0.5 * l2 * w @ w,
                np.r_[g.sum(), X.T @ g + l2 * w])

    return minimize(loss, np.zeros(X.shape[1] + 1), jac=True, method="L-BFGS-B").x


def _scores(X_tr, y_tr, X_va) -> np.ndarray | None:
    """Val scores of the model fitted on train; None when no train feature varies."""
    X_tr, X_va = _standardise(np.asarray(X_tr, float), np.asarray(X_va, float))
    if not np.any(X_tr.std(axis=0) > 1e-12):
        return None
    theta = fit_logistic(X_tr, y_tr)
    return X_va @ theta[1:] + theta[0]


def _wilson(p: float, n: int, z: float) -> tuple[float, float]:
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def auroc_ci(y, scores, W: np.ndarray, n_eff: int, ci: float = CI_LEVEL) -> dict:
    """Val AUROC with the union of its patient-bootstrap CI and the max-variance Wilson CI."""
    point = M.auroc(y, scores)
    boot = M.auroc_weighted(y, scores, W)
    boot = boot[np.isfinite(boot)]
    z = float(norm.ppf(0.5 + ci / 2))
    lo, hi = _wilson(point, n_eff, z)
    if boot.size:
        a = (1 - ci) / 2
        lo, hi = min(lo, float(np.quantile(boot, a))), max(hi, float(np.quantile(boot, 1 - a)))
    return {"auroc": round(float(point), 4), "ci_low": round(float(lo), 4), "ci_high": round(float(hi), 4)}


def min_val_patients_to_warn(threshold: float = WARN_AUROC, ci: float = CI_LEVEL) -> int:
    """Fewest val patients per domain for which even a perfect AUROC can clear the threshold."""
    z2 = float(norm.ppf(0.5 + ci / 2)) ** 2
    return int(np.floor(z2 * threshold / (1 - threshold)) + 1)


# --------------------------------------------------------------------------- public API


def domain_profile(cohort: Cohort, domain_a: str = "normal", domain_b: str = "abnormal", split: str | None = None,
                   source_datasets=None, max_images: int = PROFILE_MAX_IMAGES, seed: int = 0) -> pd.DataFrame:
    """Per domain, the distribution of every acquisition factor: a table to read before training.

    Rows are indexed by (factor, value): categorical factors give each value's share of the
    domain's images; original size and pixel spacing their median / p05 / p95; the image
    statistics (black-border fraction = share of pixels ≤ BLACK_LEVEL, intensity percentiles
    p01…p99) the median over a seeded sample of at most `max_images` images per domain.
    Columns: one per domain. A factor whose shares differ between the columns is a confound.
    """
    rows = _rows(cohort, domain_a, domain_b, split, source_datasets)
    label = rows["label"].to_numpy()
    table: dict[tuple[str, str], dict[str, float]] = {}

    def put(factor, value, per_domain):
        table[(factor, str(value))] = per_domain

    put("images", "count", {d: float((label == d).sum()) for d in (domain_a, domain_b)})
    put("patients", "count", {d: float(rows.loc[label == d, "patient_key"].nunique()) for d in (domain_a, domain_b)})
    for name in CATEGORICAL:
        if name not in rows:
            continue
        values = _categories(rows[name])
        for v in values.value_counts().index:
            put(name, v, {d: float((values[label == d] == v).mean()) if (label == d).any() else np.nan
                          for d in (domain_a, domain_b)})
    for cols in NUMERIC.values():
        for c in cols:
            if c not in rows:
                continue
            x = pd.to_numeric(rows[c], errors="coerce")
            for stat, q in (("median", 0.5), ("p05", 0.05), ("p95", 0.95)):
                put(PROFILE_NAME.get(c, c), stat, {d: float(x[label == d].quantile(q)) for d in (domain_a, domain_b)})
    sample = _sample(rows, domain_a, domain_b, max_images, seed)
    feats = image_features(cohort, sample["cache_index"].to_numpy())
    slabel = sample["label"].to_numpy()
    put("image_sample", "count", {d: float((slabel == d).sum()) for d in (domain_a, domain_b)})
    for name in IMAGE_STATS:
        factor, value = ("black_border_fraction", "median") if name == "black_border_fraction" else \
            ("intensity", name.removeprefix("intensity_"))
        put(factor, value, {d: float(np.median(feats[name][slabel == d])) if (slabel == d).any() else np.nan
                            for d in (domain_a, domain_b)})
    out = pd.DataFrame.from_dict(table, orient="index")[[domain_a, domain_b]]
    out.index = pd.MultiIndex.from_tuples(out.index, names=["factor", "value"])
    return out.round(4)


def shortcut_test(cohort: Cohort, domain_a: str = "normal", domain_b: str = "abnormal", source_datasets=None,
                  seed: int = 0, threshold: float = WARN_AUROC, ci: float = CI_LEVEL, n_boot: int = N_BOOT,
                  max_images: int = MAX_IMAGES) -> dict:
    """Can a trivial model tell the domains apart without looking at the finding? (JSON-ready dict)

    Fits on the train split, scores the val split, for three feature sets: header metadata
    (every factor together, and each alone so the warning can name it), an 8×8 thumbnail, a
    16-bin intensity histogram (the image tests name the single image statistic — black-border
    fraction, mean, p01…p99 — that separates best). Each test reports auroc, ci_low, ci_high,
    n_val, warn, factor and message; `warn` is ci_low > threshold (see the module docstring).
    When val (or train) lacks a domain, no decision is made and `note` says why.
    """
    train = _rows(cohort, domain_a, domain_b, "train", source_datasets)
    val = _rows(cohort, domain_a, domain_b, "val", source_datasets)
    doms = (domain_a, domain_b)
    result = {
        "format": "xraymunit.shortcut_test", "format_version": 1,
        "domains": {"a": domain_a, "b": domain_b}, "source_datasets": list(source_datasets or []) or None,
        "threshold": threshold, "ci_level": ci, "n_boot": n_boot, "seed": seed,
        "ci_method": ("union of the patient-bootstrap percentile CI and a Wilson score CI with n = the smaller "
                      "number of val patients per domain (AUROC max-variance bound); warn when ci_low > threshold"),
        "models": (f"L2 logistic regression (penalty {L2}, balanced classes) on: header metadata (one-hot "
                   f"categoricals, standardised numerics + quintile bins); a {THUMB_SIDE}x{THUMB_SIDE} area-shrunk "
                   f"thumbnail; a {HIST_BINS}-bin intensity histogram"),
        "n_train": {d: int((train["label"] == d).sum()) for d in doms},
        "n_val": {d: int((val["label"] == d).sum()) for d in doms},
        "n_val_patients": {d: int(val.loc[val["label"] == d, "patient_key"].nunique()) for d in doms},
        "min_val_patients_to_warn": min_val_patients_to_warn(threshold, ci),
        "decision": False, "warn": False, "note": None, "tests": {}, "image_factors": {},
    }
    missing = [f"{s} has no '{d}' image" for s, rows in (("train", train), ("val", val)) for d in doms
               if not (rows["label"] == d).any()]
    if missing:
        result["note"] = ("no decision: the " + "; the ".join(missing)
                          + " (the shortcut test fits on train and scores on val, with both domains in each)")
        return result
    n_eff = min(result["n_val_patients"].values())
    if n_eff < result["min_val_patients_to_warn"]:
        result["note"] = (f"the val split has only {n_eff} patient(s) in its smaller domain: too few for any "
                          f"test to warn at AUROC > {threshold:.2f} ({result['min_val_patients_to_warn']} needed); "
                          "the AUROCs below are shown but cannot prove a shortcut")
    result["decision"] = True
    y_tr = (train["label"] == domain_b).to_numpy()
    y_va = (val["label"] == domain_b).to_numpy()
    W = M.bootstrap_weights(y_va, val["patient_key"].astype(str).to_numpy(), n_boot, seed)

    def assess(X_tr, y_tr_, X_va, y_va_, W_, n_eff_) -> dict:
        s = _scores(X_tr, y_tr_, X_va)
        if s is None:
            return {"auroc": None, "ci_low": None, "ci_high": None, "warn": False, "status": "constant in train"}
        out = auroc_ci(y_va_, s, W_, n_eff_, ci)
        return {**out, "warn": bool(out["ci_low"] > threshold), "status": "ok"}

    # (a) header metadata
    blocks = _metadata_blocks(train, val)
    factors = {name: assess(tr, y_tr, va, y_va, W, n_eff) for name, (tr, va) in blocks.items()}
    if blocks:
        joint = assess(np.hstack([b[0] for b in blocks.values()]), y_tr,
                       np.hstack([b[1] for b in blocks.values()]), y_va, W, n_eff)
    else:
        joint = {"auroc": None, "ci_low": None, "ci_high": None, "warn": False, "status": "no metadata columns"}
    meta = {**joint, "factors": factors}
    meta["warn"] = bool(joint["warn"] or any(f["warn"] for f in factors.values()))
    meta["factor"] = _top(factors)
    result["tests"]["metadata"] = meta

    # (b) thumbnail, (c) histogram: on a seeded sample of at most max_images per domain and split
    tr_s = _sample(train, domain_a, domain_b, max_images, seed)
    va_s = _sample(val, domain_a, domain_b, max_images, seed + 1)
    y_ts = (tr_s["label"] == domain_b).to_numpy()
    y_vs = (va_s["label"] == domain_b).to_numpy()
    W_s = W if len(va_s) == len(val) else M.bootstrap_weights(y_vs, va_s["patient_key"].astype(str).to_numpy(),
                                                                n_boot, seed)
    n_eff_s = min(va_s.loc[va_s["label"] == d, "patient_key"].nunique() for d in doms)
    f_tr = image_features(cohort, tr_s["cache_index"].to_numpy())
    f_va = image_features(cohort, va_s["cache_index"].to_numpy())
    image_factors = {name: assess(f_tr[name], y_ts, f_va[name], y_vs, W_s, n_eff_s) for name in IMAGE_STATS}
    result["image_factors"] = image_factors
    for name in ("thumbnail", "histogram"):
        test = assess(f_tr[name], y_ts, f_va[name], y_vs, W_s, n_eff_s)
        test["factor"] = _top(image_factors)
        result["tests"][name] = test

    for name, test in result["tests"].items():
        test["n_val"] = dict(result["n_val"]) if name == "metadata" else {
            d: int((va_s["label"] == d).sum()) for d in doms}
        test["message"] = _message(name, test, domain_a, domain_b, threshold, ci)
    result["warn"] = any(t["warn"] for t in result["tests"].values())
    return result


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


def check(cohort: Cohort, path: str | Path, domain_a: str = "normal", domain_b: str = "abnormal",
          source_datasets=None, logger: logging.Logger | None = None) -> dict:
    """Run the shortcut test, write it to `path` and log every warning (what `train` calls first)."""
    logger = logger or logging.getLogger(__name__)
    result = shortcut_test(cohort, domain_a, domain_b, source_datasets=source_datasets)
    write_shortcut_report(result, path)
    lines = warnings(result)
    for line in lines:
        logger.warning(line)
    if not lines:
        logger.info("shortcut test: %s (%s)", result["note"] or "no domain shortcut found", path)
    elif result["note"]:
        logger.info("shortcut test: %s", result["note"])
    return result


__all__ = ["domain_profile", "shortcut_test", "warnings", "write_shortcut_report", "shortcut_table", "summary_lines",
           "check", "remedy", "fit_logistic", "auroc_ci", "image_features", "min_val_patients_to_warn",
           "WARN_AUROC", "CI_LEVEL"]
