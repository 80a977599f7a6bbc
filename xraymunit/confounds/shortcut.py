"""The two tools: `domain_profile` (what differs per domain) and `shortcut_test` (can a trivial model tell them apart)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from xraymunit.confounds.features import (CATEGORICAL, HIST_BINS, IMAGE_STATS, NUMERIC, PROFILE_NAME, THUMB_SIDE,
                                          _categories, _metadata_blocks, _rows, _sample, image_features)
from xraymunit.confounds.model import CI_LEVEL, L2, WARN_AUROC, _scores, auroc_ci, min_val_patients_to_warn
from xraymunit.confounds.report import _message, _top, warnings, write_shortcut_report
from xraymunit.evaluation import metrics as M
from xraymunit.io.cohort import Cohort

N_BOOT = 1000              # patient-bootstrap resamples
MAX_IMAGES = 500           # per domain and split, read for the image tests (seeded sample)
PROFILE_MAX_IMAGES = 200   # per domain, read for domain_profile's image statistics


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
    result = _result_header(train, val, doms, source_datasets, seed, threshold, ci, n_boot)
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
    va_s = _image_tests(cohort, train, val, doms, result, assess, W, max_images, seed, n_boot)
    for name, test in result["tests"].items():
        test["n_val"] = dict(result["n_val"]) if name == "metadata" else {
            d: int((va_s["label"] == d).sum()) for d in doms}
        test["message"] = _message(name, test, domain_a, domain_b, threshold, ci)
    result["warn"] = any(t["warn"] for t in result["tests"].values())
    return result


def _result_header(train: pd.DataFrame, val: pd.DataFrame, doms: tuple[str, str], source_datasets, seed: int,
                   threshold: float, ci: float, n_boot: int) -> dict:
    """The JSON-ready result before any test ran: what was tested, how, and on how many images."""
    domain_a, domain_b = doms
    return {
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


def _image_tests(cohort: Cohort, train: pd.DataFrame, val: pd.DataFrame, doms: tuple[str, str], result: dict,
                 assess, W: np.ndarray, max_images: int, seed: int, n_boot: int) -> pd.DataFrame:
    """Thumbnail and histogram tests (+ each image statistic alone) into `result`; returns the val sample."""
    domain_a, domain_b = doms
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
    return va_s


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
