"""The labels CSV: which columns it may have, how its rows match images, folder labels."""

from __future__ import annotations

import math
import os
import re
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

import pandas as pd

from xraymunit.errors import XraymunitError
from xraymunit.ingestion.demographics import AGE_CAP, parse_age_string


class LabelsError(XraymunitError):
    """The labels CSV cannot be used; the message says which column or rows are wrong."""


KEY_COLUMNS = {
    "sop": ("sopinstanceuid", "sopuid", "sop"),
    "path": ("path", "relativepath", "relpath", "file", "filename", "filepath", "image", "imagepath"),
    "study": ("studyinstanceuid", "studyuid", "study"),
    "patient": ("patientid", "patient"),
}
KEY_PRIORITY = ("sop", "path", "study", "patient")
EXTRA_COLUMNS = {
    "label": ("label",),
    "sex": ("sex", "patientsex", "gender"),
    "age": ("age", "patientage"),
    "view": ("view", "viewposition"),
    "source_dataset": ("sourcedataset", "dataset"),
    "split": ("split",),
}
SPLIT_VALUES = {"train": "train", "val": "val", "valid": "val", "validation": "val", "test": "test"}


def _norm_col(name: str) -> str:
    return re.sub(r"[^a-z0-9]", "", str(name).lower())


def normalise_label(value: Any) -> str | None:
    """'0'/'1' → normal/abnormal; other labels lower-cased and stripped; empty → None."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    s = str(value).strip().lower()
    if s in ("", "nan", "none", "null", "na", "n/a"):
        return None
    if s in ("0", "0.0", "normal"):
        return "normal"
    if s in ("1", "1.0", "abnormal"):
        return "abnormal"
    return s


def normalise_sex(value: Any) -> str | None:
    s = str(value or "").strip().upper()
    return {"M": "M", "MALE": "M", "F": "F", "FEMALE": "F", "O": "O", "OTHER": "O"}.get(s)


def normalise_age(value: Any) -> float | None:
    s = str(value if value is not None else "").strip()
    if not s or s.lower() in ("nan", "none"):
        return None
    try:
        age = float(s)
    except ValueError:
        age = parse_age_string(s)
    if age is None or not math.isfinite(age) or age < 0 or age > 150:
        return None
    return min(age, AGE_CAP)


def normalise_split(value: Any, row: int, column: str, name: str) -> str | None:
    """A split column value: train / val (valid, validation) / test, any case; empty → None (seeded split)."""
    s = str(value if value is not None else "").strip().lower()
    if s in ("", "nan", "none", "null", "na", "n/a"):
        return None
    if s not in SPLIT_VALUES:
        raise LabelsError(f"{name}: row {row}, column '{column}' must be train, val or test (or empty for the "
                          f"seeded split)")  # the value itself is not shown: it may be an identifier put in the wrong column
    return SPLIT_VALUES[s]


def normalise_path(value: str) -> str:
    p = str(value).strip().replace("\\", "/")
    while p.startswith("./"):
        p = p[2:]
    return re.sub(r"/+", "/", p).strip("/")


@dataclass
class LabelRow:
    label: str | None
    row: int  # 1-based data row number in the CSV (for messages)
    sex: str | None = None
    age: float | None = None
    view: str | None = None
    source_dataset: str | None = None
    patient_id: str | None = None
    split: str | None = None  # train/val/test fixed by the CSV's split column; None: the seeded split decides


@dataclass
class LabelTable:
    """A loaded labels CSV, indexed by every key column it has."""

    n_rows: int
    primary: str  # the most specific key column present
    columns: dict[str, str]  # role → CSV column name
    index: dict[str, dict[str, LabelRow]] = field(default_factory=dict)
    ambiguous: dict[str, set] = field(default_factory=dict)
    used_rows: set = field(default_factory=set)

    def match(self, rel_path: str, ids: Mapping[str, str | None]) -> tuple[LabelRow | None, str | None]:
        """Most specific match for a file: SOP UID, then path, then study UID, then PatientID."""
        candidates = {
            "sop": ids.get("sop_uid"), "path": rel_path,
            "study": ids.get("study_uid"), "patient": ids.get("patient_id"),
        }
        for role in KEY_PRIORITY:
            value = candidates[role]
            table = self.index.get(role)
            if not table or not value:
                continue
            value = normalise_path(value) if role == "path" else str(value).strip()
            if value in self.ambiguous.get(role, ()):
                continue
            hit = table.get(value)
            if hit is not None:
                self.used_rows.add(hit.row)
                return hit, f"csv:{role}"
        return None, None


def load_labels(path: str | os.PathLike) -> LabelTable:
    """Read a labels CSV; raise LabelsError naming the problem (never the identifiers).

    Accepted key columns (case and punctuation ignored): SOPInstanceUID, path/file
    (relative to the input folder), StudyInstanceUID, PatientID. Required: label.
    Optional: sex, age, view, source_dataset, patient_id (PNG datasets), split (train/val/test:
    fixes the patient's split; empty cells leave it to the seeded split).
    """
    path = Path(path)
    if not path.is_file():
        raise LabelsError(f"labels file not found: {path}")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8-sig")
    except Exception as exc:
        raise LabelsError(f"{path.name}: not a readable CSV ({type(exc).__name__}: {str(exc).splitlines()[0][:120]})") from None
    normed: dict[str, str] = {}
    for col in df.columns:
        normed.setdefault(_norm_col(col), col)
    columns: dict[str, str] = {}
    for role, aliases in {**KEY_COLUMNS, **EXTRA_COLUMNS}.items():
        for alias in aliases:
            if alias in normed:
                columns[role] = normed[alias]
                break
    if "label" not in columns:
        raise LabelsError(f"{path.name}: no 'label' column (columns: {', '.join(map(str, df.columns))})")
    keys = [r for r in KEY_PRIORITY if r in columns]
    if not keys:
        raise LabelsError(
            f"{path.name}: no key column; give one of SOPInstanceUID, path (relative to the input folder), "
            f"StudyInstanceUID or PatientID (columns: {', '.join(map(str, df.columns))})")
    _refuse_formulas(df, columns, path.name)
    table = LabelTable(n_rows=len(df), primary=keys[0], columns=columns)
    values: dict[str, dict[str, list[LabelRow]]] = {r: defaultdict(list) for r in keys}
    for i, rec in enumerate(df.to_dict("records"), start=1):
        row = LabelRow(
            label=normalise_label(rec[columns["label"]]), row=i,
            sex=normalise_sex(rec.get(columns.get("sex", ""), None)) if "sex" in columns else None,
            age=normalise_age(rec.get(columns["age"])) if "age" in columns else None,
            view=(str(rec.get(columns["view"])).strip().upper() or None) if "view" in columns else None,
            source_dataset=(str(rec.get(columns["source_dataset"])).strip() or None) if "source_dataset" in columns else None,
            patient_id=(str(rec.get(columns["patient"])).strip() or None) if "patient" in columns else None,
            split=normalise_split(rec.get(columns["split"]), i, columns["split"], path.name) if "split" in columns else None,
        )
        for role in keys:
            raw = str(rec[columns[role]]).strip()
            if raw:
                values[role][normalise_path(raw) if role == "path" else raw].append(row)
    _refuse_split_conflicts(values.get("patient", {}), columns, path.name)
    for role in keys:
        index: dict[str, LabelRow] = {}
        ambiguous: set = set()
        for value, rows in values[role].items():
            labels = {r.label for r in rows}
            if len(labels) > 1 or len({r.split for r in rows} - {None}) > 1:
                if role == table.primary:
                    shown = ", ".join(str(r.row) for r in rows[:5])
                    what = "labels" if len(labels) > 1 else "splits"
                    raise LabelsError(
                        f"{path.name}: rows {shown} give different {what} for the same {columns[role]}; "
                        f"fix them or remove the duplicates")
                ambiguous.add(value)  # e.g. one patient with normal and abnormal images
                continue
            index[value] = next((r for r in rows if r.split is not None), rows[0])  # an empty split cell fixes nothing
        table.index[role] = index
        table.ambiguous[role] = ambiguous
    if not any(table.index.values()):
        raise LabelsError(f"{path.name}: no usable rows (every key is empty)")
    return table


def _refuse_split_conflicts(by_patient: Mapping[str, list[LabelRow]], columns: dict[str, str], name: str) -> None:
    """Rows of one PatientID that name different splits: refused before any image is decoded
    (the message names the rows, not the patient)."""
    for rows in by_patient.values():
        named = {r.split for r in rows} - {None}
        if len(named) > 1:
            shown = ", ".join(str(r.row) for r in [r for r in rows if r.split is not None][:6])
            raise LabelsError(f"{name}: rows {shown} put one {columns['patient']} in different splits "
                              f"({', '.join(sorted(named))}); a patient's images must share one split")


TEXT_ROLES = ("label", "source_dataset", "view")  # copied as text into the manifest and the CSVs made from it


def _refuse_formulas(df: pd.DataFrame, columns: dict[str, str], name: str) -> None:
    """A label, source or view that a spreadsheet would run as a formula (`=HYPERLINK(…)`,
    `=cmd|' /c calc'!a0`, `@SUM(…)`) is refused: it would travel into predictions.csv and every
    table made from the manifest. The message names the row and column, not the value."""
    from xraymunit.io.csvfile import is_formula_like

    for role in TEXT_ROLES:
        if role not in columns:
            continue
        col = columns[role]
        for i, value in enumerate(df[col], start=1):
            if isinstance(value, str) and (is_formula_like(value) or is_formula_like(value.strip())):
                raise LabelsError(f"{name}: row {i}, column '{col}' starts with =, +, -, @, a tab or a carriage return "
                                  f"(a spreadsheet formula); labels, sources and views must be plain text")


def folder_label(rel_path: str) -> str | None:
    """'normal' / 'abnormal' from the first folder level of a path, else None."""
    parts = rel_path.split("/")
    if len(parts) < 2:
        return None
    top = parts[0].strip().lower()
    return top if top in ("normal", "abnormal") else None
