"""Tables that describe a cohort: who is in it, how the labels balance, what could not be ingested.

Counts come from the manifest (the authoritative record of every file seen); images are the
ingested rows (status ok), problems the other rows. Missing values are shown as "(none)" rather
than dropped, because an unlabelled or source-less image is itself worth seeing.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from xraymunit.io.cohort import Cohort

MISSING = "(none)"
SPLIT_ORDER = ["train", "val", "test"]


def _filled(rows: pd.DataFrame, column: str) -> pd.Series:
    return rows[column].astype(object).where(rows[column].notna(), MISSING).astype(str)


def _order(values, preferred: list[str]) -> list[str]:
    values = list(dict.fromkeys(values))
    return [v for v in preferred if v in values] + sorted(v for v in values if v not in preferred)


def _labels(rows: pd.DataFrame) -> list[str]:
    return _order(_filled(rows, "label").unique(), ["normal", "abnormal"])


def balance(cohort: Cohort, by: str = "split") -> pd.DataFrame:
    """Images per label, total images, patients and abnormal share for each value of `by`.

    Args:
        by: a manifest column, usually "split" or "source_dataset" (or "manufacturer", ...).
    Returns:
        One row per value of `by` plus a final "all" row; columns: one per label, "images",
        "patients", "abnormal_share" (abnormal / labelled as normal or abnormal).
    """
    rows = cohort.ok()
    if len(rows) == 0:
        return pd.DataFrame(columns=["images", "patients", "abnormal_share"])
    key, label = _filled(rows, by), _filled(rows, "label")
    labels = _labels(rows)
    table = pd.crosstab(key, label).reindex(columns=labels, fill_value=0)
    table = table.reindex(_order(table.index, SPLIT_ORDER if by == "split" else []))
    table.loc["all"] = table.sum()
    table["images"] = table[labels].sum(axis=1)
    patients = rows.groupby(key)["patient_key"].nunique()
    table["patients"] = [int(patients.get(k, 0)) if k != "all" else rows["patient_key"].nunique() for k in table.index]
    abn = table["abnormal"] if "abnormal" in table else 0
    nor = table["normal"] if "normal" in table else 0
    denom = (abn + nor).replace(0, np.nan)
    table["abnormal_share"] = (abn / denom).round(3)
    table.index.name, table.columns.name = by, None
    return table


def metadata_by_label(cohort: Cohort, column: str, normalize: bool = False) -> pd.DataFrame:
    """Counts (or, with normalize, shares within each label) of a metadata column per label.

    Useful for sex, view_position, manufacturer, modality, window_source: a value that occurs
    only with one label is a shortcut a classifier can learn instead of the disease.
    """
    rows = cohort.ok()
    labels = _labels(rows)
    table = pd.crosstab(_filled(rows, column), _filled(rows, "label")).reindex(columns=labels, fill_value=0)
    table = table.loc[table.sum(axis=1).sort_values(ascending=False, kind="stable").index]
    if normalize:
        table = (table / table.sum(axis=0).replace(0, np.nan)).round(3)
    table.index.name, table.columns.name = column, "label"
    return table


def age_by_label(cohort: Cohort) -> pd.DataFrame:
    """Age summary per label: images, known ages, mean, SD, min, quartiles, max (years)."""
    rows = cohort.ok()
    label = _filled(rows, "label")
    out = {}
    for lab in _labels(rows):
        age = pd.to_numeric(rows.loc[label == lab, "age"], errors="coerce")
        known = age.dropna()
        out[lab] = {"images": int(len(age)), "age_known": int(len(known)),
                    "mean": known.mean(), "sd": known.std(), "min": known.min(), "q25": known.quantile(0.25),
                    "median": known.median(), "q75": known.quantile(0.75), "max": known.max()}
    table = pd.DataFrame(out).T
    table[["images", "age_known"]] = table[["images", "age_known"]].astype(int)
    table.index.name = "label"
    return table.round(1)


def ingest_problems(cohort: Cohort) -> pd.DataFrame:
    """Files that were not ingested, counted by status and reason, with the reason in words.

    The counts come from the manifest; the descriptions from ingest_report.json when present.
    An empty table (with the columns) means every file was ingested.
    """
    m = cohort.manifest
    bad = m[m["status"] != "ok"]
    columns = ["status", "reason", "files", "description", "example_detail"]
    if len(bad) == 0:
        return pd.DataFrame(columns=columns)
    described = cohort.report().get("reason_descriptions", {})
    reason = _filled(bad, "reason")
    groups = bad.assign(reason=reason).groupby(["status", "reason"], sort=True)
    table = groups.agg(files=("image_key", "size"),
                       example_detail=("reason_detail", lambda s: next((v for v in s if isinstance(v, str)), "")))
    table = table.reset_index()
    table["description"] = table["reason"].map(lambda r: described.get(r, ""))
    return table.sort_values(["files", "status", "reason"], ascending=[False, True, True])[columns].reset_index(drop=True)


def problem_list(cohort: Cohort) -> pd.DataFrame:
    """Every file that was not ingested: image_key (pseudonymous), status, reason, detail."""
    m = cohort.manifest
    bad = m[m["status"] != "ok"]
    return bad[["image_key", "status", "reason", "reason_detail", "source_format"]].reset_index(drop=True)
