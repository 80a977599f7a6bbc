"""Patient-level train/val/test splits, stratified by label and source, deterministic from the salt."""

from __future__ import annotations

import math
from collections import Counter
from typing import Sequence

import numpy as np
import pandas as pd

from xraymunit.errors import XraymunitError
from xraymunit.ingestion.keys import Pseudonymiser
from xraymunit.ingestion.labels import LabelsError
from xraymunit.ingestion.settings import DEFAULT_FRACTIONS

SPLITS = ("train", "val", "test")


def check_fractions(fractions: Sequence[float]) -> tuple[float, float, float]:
    values = tuple(float(f) for f in fractions)
    if len(values) != 3 or any(not math.isfinite(f) or f < 0 for f in values) or abs(sum(values) - 1.0) > 1e-6 or values[0] <= 0:
        raise XraymunitError(f"split fractions must be three non-negative numbers train,val,test summing to 1 "
                             f"with train > 0, got {','.join(str(f) for f in fractions)}")
    return values  # type: ignore[return-value]


def patient_table(rows: pd.DataFrame) -> pd.DataFrame:
    """One row per patient: its label (abnormal > other labels > normal > unlabelled) and source."""
    def patient_label(labels: pd.Series) -> str:
        present = {l for l in labels if isinstance(l, str)}
        if "abnormal" in present:
            return "abnormal"
        others = sorted(present - {"normal"})
        if others:
            return others[0]
        return "normal" if "normal" in present else "unlabelled"

    def main_source(sources: pd.Series) -> str:
        counts = Counter(s if isinstance(s, str) else "" for s in sources)
        return sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[0][0]

    grouped = rows.groupby("patient_key", sort=True)
    return pd.DataFrame({
        "patient_key": list(grouped.groups.keys()),
        "label": [patient_label(g["label"]) for _, g in grouped],
        "source": [main_source(g["source_dataset"]) for _, g in grouped],
    })


def fixed_patient_splits(fixed: Sequence[tuple[str, str, int]]) -> dict[str, str]:
    """Patient → the split a labels CSV's split column names for it, from (patient_key, split, csv_row)
    per image. A patient whose rows name different splits is one error naming those CSV rows (never
    the patient's identifier): patient-level splits are what keep the test set honest."""
    named: dict[str, dict[str, set[int]]] = {}
    for patient, split, row in fixed:
        named.setdefault(patient, {}).setdefault(split, set()).add(row)
    conflicts = [rows for rows in named.values() if len(rows) > 1]
    if conflicts:
        first = conflicts[0]
        shown = "; ".join(f"{split}: rows {', '.join(map(str, sorted(rows)[:5]))}" for split, rows in sorted(first.items()))
        more = f" ({len(conflicts) - 1} more patient(s) like it)" if len(conflicts) > 1 else ""
        raise LabelsError(f"labels CSV: one patient's images are put in different splits ({shown}){more}; "
                             f"a patient's images must share one split")
    return {patient: next(iter(rows)) for patient, rows in named.items()}


def assign_splits(patients: pd.DataFrame, pseudo: Pseudonymiser,
                  fractions: Sequence[float] = DEFAULT_FRACTIONS) -> dict[str, str]:
    """Patient → split, stratified by patient label and source dataset, deterministic from the salt.

    Within a stratum patients are taken in salted-hash order. Each stratum's rounding
    remainder goes to the split furthest below its target *for that label overall*, so
    many tiny strata (one patient per source) still add up to the fractions. Finally,
    for a label with at least as many patients as there are splits, every split gets
    at least one patient of it (tiny cohorts: val and test need both classes).
    """
    frac = np.asarray(check_fractions(fractions))
    active = [i for i, f in enumerate(frac) if f > 0]
    out: dict[str, str] = {}
    for label in sorted(patients["label"].unique()):
        sub = patients[patients["label"] == label]
        target = frac * len(sub)
        assigned = np.zeros(3)
        members: list[list[tuple[str, str]]] = [[], [], []]  # per split: (order, patient_key)
        for _source, stratum in sorted(sub.groupby("source"), key=lambda kv: kv[0]):
            keys = sorted(stratum["patient_key"], key=lambda k: pseudo.order("split", k))
            n = len(keys)
            counts = np.floor(frac * n).astype(int)
            for _ in range(n - int(counts.sum())):
                deficit = target - assigned - counts
                j = max(active, key=lambda i: (deficit[i], -i))
                counts[j] += 1
            start = 0
            for s in range(3):
                for k in keys[start:start + counts[s]]:
                    members[s].append((pseudo.order("split", k), k))
                start += counts[s]
            assigned += counts
        if len(sub) >= len(active):
            for s in active:
                if not members[s]:
                    donor = max(active, key=lambda i: (len(members[i]), -i))
                    if len(members[donor]) > 1:
                        members[donor].sort()
                        members[s].append(members[donor].pop())
        for s in range(3):
            for _, k in members[s]:
                out[k] = SPLITS[s]
    return out
