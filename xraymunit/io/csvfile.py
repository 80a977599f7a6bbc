"""CSV files xraymunit writes, safe to open in a spreadsheet (no formula injection).

A text cell that starts with `=`, `+`, `-`, `@`, a tab or a carriage return is run as a formula
by Excel, LibreOffice and Google Sheets (`=HYPERLINK(...)`, `=cmd|' /c calc'!a0`). Such text can
reach our CSVs from inputs (a labels CSV's label or source_dataset, a folder name). Every CSV
we write goes through `safe_cell`: such a string gets a leading single quote (the spreadsheet
convention for "this is text"); numbers, and strings that are plain numbers ("-1.5"), are kept.
"""

from __future__ import annotations

import os
import re
from typing import Any, Mapping

import pandas as pd

from xraymunit.io import atomic

FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?|[+-]?(inf|nan)", re.IGNORECASE)


def is_formula_like(text: str) -> bool:
    """True for text a spreadsheet would run as a formula (a plain number is not one)."""
    return bool(text) and text.startswith(FORMULA_START) and not _NUMBER.fullmatch(text.strip())


def safe_cell(value: Any) -> Any:
    """`value`, with a leading `'` when it is a string a spreadsheet would run as a formula."""
    if isinstance(value, str) and is_formula_like(value):
        return "'" + value
    return value


def safe_row(row: Mapping[str, Any]) -> dict[str, Any]:
    """A csv.DictWriter row with every cell made safe."""
    return {k: safe_cell(v) for k, v in row.items()}


def safe_frame(df: pd.DataFrame) -> pd.DataFrame:
    """A copy of `df` whose text cells are safe; numeric columns are untouched."""
    out = df.copy()
    for col in out.columns:
        if out[col].dtype == object or pd.api.types.is_string_dtype(out[col].dtype):
            out[col] = out[col].map(safe_cell)
    out.columns = [safe_cell(c) if isinstance(c, str) else c for c in out.columns]
    return out


def write_csv(df: pd.DataFrame, path: str | os.PathLike, **kwargs: Any) -> None:
    """`df.to_csv(path, **kwargs)`, atomically, with every text cell made safe (see `safe_cell`)."""
    with atomic.atomic_path(path) as tmp:
        safe_frame(df).to_csv(tmp, **kwargs)
