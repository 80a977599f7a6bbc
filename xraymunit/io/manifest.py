"""The cohort manifest: schema, pseudonymous keys, labels CSV matching, patient-level splits.

Privacy model: raw identifiers (PatientID, UIDs, file paths) never enter the manifest.
Each becomes a salted HMAC-SHA256 (16 hex chars) under its own namespace; the salt lives
in `cohort/private/salt.key` (mode 0600) or a file the user supplies, so keys are stable
across reruns and cannot be reversed or recomputed from public UIDs without the salt.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import os
import re
import secrets
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from xraymunit.errors import XraymunitError
from xraymunit.io import atomic
from xraymunit.io.dicom import AGE_CAP, parse_age_string

SPLITS = ("train", "val", "test")
DEFAULT_FRACTIONS = (0.7, 0.15, 0.15)
KEY_HEX = 16

# (column, pandas dtype) in manifest order; xraymunit/FORMATS.md describes each one.
COLUMNS: tuple[tuple[str, str], ...] = (
    ("image_key", "object"), ("patient_key", "object"), ("study_key", "object"),
    ("series_key", "object"), ("sop_key", "object"), ("source_format", "object"),
    ("modality", "object"), ("sex", "object"), ("age", "float64"), ("view_position", "object"),
    ("body_part", "object"), ("manufacturer", "object"), ("photometric", "object"),
    ("bits_stored", "Int64"), ("transfer_syntax", "object"), ("rows", "Int64"), ("columns", "Int64"),
    ("spacing_row_mm", "float64"), ("spacing_col_mm", "float64"), ("spacing_source", "object"),
    ("window_source", "object"), ("pixel_steps", "object"), ("label", "object"),
    ("label_source", "object"), ("source_dataset", "object"), ("split", "object"),
    ("cache_index", "int64"), ("status", "object"), ("reason", "object"), ("reason_detail", "object"),
)
COLUMN_NAMES = tuple(c for c, _ in COLUMNS)


class LabelsError(XraymunitError):
    """The labels CSV cannot be used; the message says which column or rows are wrong."""


class SaltError(XraymunitError):
    """The salt file is missing, unreadable or too short."""


# ------------------------------------------------------------------------ pseudonymisation

def read_salt(path: Path) -> bytes:
    try:
        text = path.read_bytes()
    except OSError as exc:
        raise SaltError(f"cannot read salt file {path}: {exc.strerror or exc}") from None
    stripped = text.strip()
    try:
        salt = bytes.fromhex(stripped.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        salt = stripped
    if len(salt) < 16:
        raise SaltError(f"salt file {path} holds {len(salt)} bytes; use at least 16 random bytes "
                        f"(e.g. `python -c 'import secrets; print(secrets.token_hex(32))' > {path.name}`)")
    return salt


def create_salt(path: Path) -> bytes:
    """Write 32 random bytes (hex) to a new file readable by its owner only (mode 0600)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    salt = secrets.token_bytes(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.write(fd, (salt.hex() + "\n").encode("ascii"))
        os.fsync(fd)
    finally:
        os.close(fd)
    return salt


def load_or_create_salt(private_dir: Path, salt_file: str | os.PathLike | None = None) -> tuple[bytes, str]:
    """The cohort's salt and where it came from ('created', 'private/salt.key', 'salt-file').

    With `salt_file`, that file is used (and created, mode 0600, if it does not exist):
    share one salt file between cohorts that must produce the same patient keys.
    """
    if salt_file is not None:
        path = Path(salt_file)
        if not path.exists():
            return create_salt(path), "salt-file (created)"
        return read_salt(path), "salt-file"
    path = Path(private_dir) / "salt.key"
    if path.exists():
        return read_salt(path), "private/salt.key"
    return create_salt(path), "private/salt.key (created)"


@dataclass(frozen=True)
class Pseudonymiser:
    """Salted HMAC-SHA256 keys; the namespace keeps e.g. a study UID and a SOP UID apart."""

    salt: bytes

    def key(self, namespace: str, value: str | None) -> str | None:
        if value is None or str(value).strip() == "":
            return None
        msg = _utf8(f"{namespace}\x00{str(value).strip()}")
        return hmac.new(self.salt, msg, hashlib.sha256).hexdigest()[:KEY_HEX]

    def order(self, namespace: str, value: str) -> str:
        """A full-length keyed hash, for deterministic salt-dependent orderings."""
        return hmac.new(self.salt, _utf8(f"{namespace}\x00{value}"), hashlib.sha256).hexdigest()


def _utf8(text: str) -> bytes:
    """UTF-8, with file-name bytes that are not UTF-8 (surrogate-escaped by Python) restored as
    they are on disk: a key of such a name is the key of its bytes."""
    return text.encode("utf-8", "surrogateescape")


def display_path(rel: str) -> str:
    """A relative path as it may be shown or stored as text: file names are bytes on Linux, and
    bytes that are not UTF-8 are written as backslash escapes (b"bad\\xff.dcm" → "bad\\xff.dcm")."""
    return os.fsencode(rel).decode("utf-8", "backslashreplace")


# ------------------------------------------------------------------------------ labels

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
}


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
    Optional: sex, age, view, source_dataset, patient_id (PNG datasets).
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
        )
        for role in keys:
            raw = str(rec[columns[role]]).strip()
            if raw:
                values[role][normalise_path(raw) if role == "path" else raw].append(row)
    for role in keys:
        index: dict[str, LabelRow] = {}
        ambiguous: set = set()
        for value, rows in values[role].items():
            labels = {r.label for r in rows}
            if len(labels) > 1:
                if role == table.primary:
                    shown = ", ".join(str(r.row) for r in rows[:5])
                    raise LabelsError(
                        f"{path.name}: rows {shown} give different labels for the same {columns[role]}; "
                        f"fix them or remove the duplicates")
                ambiguous.add(value)  # e.g. one patient with normal and abnormal images
                continue
            index[value] = rows[0]
        table.index[role] = index
        table.ambiguous[role] = ambiguous
    if not any(table.index.values()):
        raise LabelsError(f"{path.name}: no usable rows (every key is empty)")
    return table


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


# ------------------------------------------------------------------------------ splits

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


# ---------------------------------------------------------------------------- manifest

def empty_row() -> dict[str, Any]:
    row = {c: None for c in COLUMN_NAMES}
    row["cache_index"] = -1
    return row


def to_frame(rows: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Rows (dicts with the manifest columns) → DataFrame with the manifest's dtypes."""
    records = [{c: r.get(c) for c in COLUMN_NAMES} for r in rows]
    df = pd.DataFrame.from_records(records, columns=list(COLUMN_NAMES))
    for col, dtype in COLUMNS:
        if dtype == "object":
            df[col] = pd.Series([None if v is None or (isinstance(v, float) and math.isnan(v)) else str(v)
                                 for v in df[col]], dtype=object, index=df.index)
        elif dtype == "Int64":
            df[col] = pd.array([None if v is None or (isinstance(v, float) and math.isnan(v)) else int(v)
                                for v in df[col]], dtype="Int64")
        else:
            df[col] = df[col].astype(dtype)
    return df


def write_manifest(df: pd.DataFrame, path: str | os.PathLike) -> None:
    """Atomic parquet write (a killed run leaves the old manifest or the new one)."""
    missing = [c for c in COLUMN_NAMES if c not in df.columns]
    if missing:
        raise ValueError(f"manifest is missing columns {missing}")
    with atomic.atomic_path(path) as tmp:
        df.loc[:, list(COLUMN_NAMES)].to_parquet(tmp, index=False)
