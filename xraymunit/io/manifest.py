"""The cohort manifest (`manifest.parquet`): its columns, dtypes and atomic write.

What goes into the rows (pseudonymous keys, labels, splits) is ingest's business:
`xraymunit.ingestion.keys`, `.labels`, `.splits`.
"""

from __future__ import annotations

import math
import os
from typing import Any, Iterable, Mapping

import pandas as pd

from xraymunit.io import atomic

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
