"""The two tools: `domain_profile` (what differs per domain) and `shortcut_test` (can a trivial model tell them apart)."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pandas as pd

from xraymunit.confounds.features import (CATEGORICAL, HIST_BINS, IMAGE_STATS, NUMERIC, PROFILE_NAME, THUMB_SIDE,
                                          _categories, _metadata_blocks, _rows, _sample, image_features)
from xraymunit.confounds.crossval import N_FOLDS, NONE_SEEN, POSSIBLE, SHOWN, Evaluation
from xraymunit.confounds.model import CI_LEVEL, L2, WARN_AUROC, min_patients_to_warn
from xraymunit.confounds.report import _message, _top, cautions, verdict, warnings, write_shortcut_report
from xraymunit.io.cohort import Cohort

N_BOOT = 1000              # patient-bootstrap resamples
MAX_IMAGES = 500           # per domain, from train + val and from test, read for the image tests (seeded sample)
METADATA_MAX_IMAGES = 5000  # per domain, from train + val and from test, for the header test (seeded sample)
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
                  max_images: int = MAX_IMAGES, n_folds: int = N_FOLDS) -> dict:
    """Can a trivial model tell the domains apart without looking at the finding? (JSON-ready dict)

    Cross-validates over the train + val patients (patient-grouped folds; see `crossval`) for
    three feature sets: header metadata (every factor together, and each alone so the warning
    can name it), an 8×8 thumbnail, a 16-bin intensity histogram (the image tests name the
    single image statistic — black-border fraction, mean, p01…p99 — that separates best).
    Each test reports auroc, ci_low, ci_high (cross-validated), tier (shown / possible / none
    seen), warn (= tier shown), test (the test split's AUROC from a model fitted on train +
    val), factor and message. When train + val lacks a domain, no decision is made and `note`
    says why.
    """
    pool = _rows(cohort, domain_a, domain_b, ("train", "val"), source_datasets)
    test = _rows(cohort, domain_a, domain_b, "test", source_datasets)
    doms = (domain_a, domain_b)
    result = _result_header(cohort, pool, test, doms, source_datasets, seed, threshold, ci, n_boot)
    short = [d for d in doms if result["n_cv_patients"][d] < 2]
    if short:
        result["note"] = ("no decision: train + val has fewer than 2 patients of " + ", ".join(f"'{d}'" for d in short)
                          + " (the shortcut test cross-validates over train + val patients, both domains in each)")
        return result
    n_eff = min(result["n_cv_patients"].values())
    n_folds = min(n_folds, n_eff)
    result["n_folds"] = n_folds
    if n_eff < result["min_patients_to_warn"]:
        result["note"] = (f"train + val has only {n_eff} patient(s) in its smaller domain: too few for any test to "
                          f"prove a shortcut at AUROC > {threshold:.2f} ({result['min_patients_to_warn']} needed); "
                          "an AUROC above it is reported as a possible shortcut")
    result["decision"] = True
    # the bootstrap holds n_boot weights per image: a large cohort is sampled (seeded) to bound memory
    pool, test = (_sample(rows, domain_a, domain_b, METADATA_MAX_IMAGES, seed + k)
                  for k, rows in enumerate((pool, test)))
    y_cv = (pool["label"] == domain_b).to_numpy()
    y_test = (test["label"] == domain_b).to_numpy()
    ev = Evaluation(y_cv, pool["patient_key"], y_test, test["patient_key"], n_folds, threshold, ci, n_boot, seed)
    result["tests"]["metadata"] = _metadata_test(pool, test, ev)
    pool_s = _image_tests(cohort, pool, test, doms, result, ev, max_images, seed, (threshold, ci, n_boot, n_folds))
    for name, t in result["tests"].items():
        t["n_cv"] = {d: int(((pool if name == "metadata" else pool_s)["label"] == d).sum()) for d in doms}
        t["n_val"] = t["n_cv"]  # format 1's key, read by older readers: the images the AUROC is over
        t["message"] = _message(name, t, domain_a, domain_b, threshold, ci)
    result["warn"] = any(t["warn"] for t in result["tests"].values())
    result["possible"] = any(t.get("tier") == POSSIBLE for t in result["tests"].values())
    result["verdict"] = verdict(result)
    return result


def _metadata_test(pool: pd.DataFrame, test: pd.DataFrame, ev: Evaluation) -> dict:
    """Every header factor together, and each alone (its design matrices built on each fold's fit rows)."""
    fold_blocks = [_metadata_blocks(pool[ev.folds != f], pool[ev.folds == f]) for f in range(ev.n_folds)]
    final = _metadata_blocks(pool, test)
    names = list(dict.fromkeys(n for blocks in [*fold_blocks, final] for n in blocks))

    sizes = [(int((ev.folds != f).sum()), int((ev.folds == f).sum())) for f in range(ev.n_folds)]

    def pairs(names):
        return [_stack(blocks, names, *n) for blocks, n in zip(fold_blocks, sizes)]

    factors = {n: ev.assess(pairs([n])) for n in names}
    if names:
        joint = ev.assess(pairs(names), _stack(final, names, len(pool), len(test)))
    else:
        joint = {"auroc": None, "ci_low": None, "ci_high": None, "tier": None, "warn": False,
                 "status": "no metadata columns"}
    meta = {**joint, "factors": factors}
    if any(f["warn"] for f in factors.values()) and not joint["warn"]:
        meta["warn"], meta["tier"] = True, SHOWN  # one factor alone proves it
    elif meta.get("tier") == NONE_SEEN and any(f["tier"] == POSSIBLE for f in factors.values()):
        meta["tier"] = POSSIBLE
    meta["factor"] = _top(factors)
    return meta


def _stack(blocks: dict, names, n_fit: int, n_held: int) -> tuple[np.ndarray, np.ndarray]:
    """The (fit, held-out) design matrices of the named header factors side by side (0 columns if none)."""
    chosen = [blocks[n] for n in names if n in blocks]
    if not chosen:
        return np.zeros((n_fit, 0)), np.zeros((n_held, 0))
    return np.hstack([b[0] for b in chosen]), np.hstack([b[1] for b in chosen])


def _result_header(cohort: Cohort, pool: pd.DataFrame, test: pd.DataFrame, doms: tuple[str, str], source_datasets,
                   seed: int, threshold: float, ci: float, n_boot: int) -> dict:
    """The JSON-ready result before any test ran: what was tested, how, and on how many images."""
    domain_a, domain_b = doms
    val = pool[pool["split"] == "val"]

    def count(rows, patients=False):
        return {d: int(rows.loc[rows["label"] == d, "patient_key"].nunique() if patients
                       else (rows["label"] == d).sum()) for d in doms}

    return {
        "format": "xraymunit.shortcut_test", "format_version": 2,
        "domains": {"a": domain_a, "b": domain_b}, "source_datasets": list(source_datasets or []) or None,
        "threshold": threshold, "ci_level": ci, "n_boot": n_boot, "seed": seed,
        "evaluated_on": ("out-of-fold scores of train + val (patient-grouped folds stratified by domain); the test "
                         "split scored separately by a model fitted on all of train + val"),
        "ci_method": ("union of the patient-bootstrap percentile CI and a Wilson score CI with n = the smaller "
                      "number of patients per domain (AUROC max-variance bound); tier 'shown' when ci_low > "
                      "threshold (warn), 'possible' when only the AUROC is, else 'none seen'"),
        "models": (f"L2 logistic regression (penalty {L2}, balanced classes) on: header metadata (one-hot "
                   f"categoricals, standardised numerics + quintile bins); a {THUMB_SIDE}x{THUMB_SIDE} area-shrunk "
                   f"thumbnail; a {HIST_BINS}-bin intensity histogram"),
        "n_train": count(pool[pool["split"] == "train"]), "n_val": count(val), "n_val_patients": count(val, True),
        "n_cv": count(pool), "n_cv_patients": count(pool, True), "n_test": count(test),
        "n_test_patients": count(test, True), "n_folds": None,
        "min_patients_to_warn": min_patients_to_warn(threshold, ci),
        "decision": False, "warn": False, "possible": False, "verdict": None, "note": None,
        "tests": {}, "image_factors": {},
    }


def _image_tests(cohort: Cohort, pool: pd.DataFrame, test: pd.DataFrame, doms: tuple[str, str], result: dict,
                 ev: Evaluation, max_images: int, seed: int, settings: tuple) -> pd.DataFrame:
    """Thumbnail and histogram tests (+ each image statistic alone) into `result`; returns the pool sample.

    At most max_images per domain are read from train + val (and from test), a seeded sample;
    the cross-validation then runs on the sample (its own folds and bootstrap when it is smaller)."""
    domain_a, domain_b = doms
    pool_s = _sample(pool, domain_a, domain_b, max_images, seed)
    test_s = _sample(test, domain_a, domain_b, max_images, seed + 1)
    if len(pool_s) != len(pool) or len(test_s) != len(test):
        threshold, ci, n_boot, n_folds = settings
        ev = Evaluation((pool_s["label"] == domain_b).to_numpy(), pool_s["patient_key"],
                        (test_s["label"] == domain_b).to_numpy(), test_s["patient_key"], n_folds, threshold, ci,
                        n_boot, seed)
    f_cv = image_features(cohort, pool_s["cache_index"].to_numpy())
    f_test = image_features(cohort, test_s["cache_index"].to_numpy())
    image_factors = {name: ev.assess(ev.fold_pairs(f_cv[name])) for name in IMAGE_STATS}
    result["image_factors"] = image_factors
    for name in ("thumbnail", "histogram"):
        test_result = ev.assess(ev.fold_pairs(f_cv[name]), (f_cv[name], f_test[name]))
        test_result["factor"] = _top(image_factors)
        result["tests"][name] = test_result
    return pool_s


def check(cohort: Cohort, path: str | Path, domain_a: str = "normal", domain_b: str = "abnormal",
          source_datasets=None, logger: logging.Logger | None = None) -> dict:
    """Run the shortcut test, write it to `path` and log every warning (what `train` calls first)."""
    logger = logger or logging.getLogger(__name__)
    result = shortcut_test(cohort, domain_a, domain_b, source_datasets=source_datasets)
    write_shortcut_report(result, path)
    for line in warnings(result) + cautions(result):
        logger.warning(line)
    logger.info("shortcut test: %s (%s)", result["verdict"] or result["note"], path)
    if result["note"] and result["verdict"]:
        logger.info("shortcut test: %s", result["note"])
    return result
