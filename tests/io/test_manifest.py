"""The manifest schema: columns, dtypes, atomic write, documentation."""

import os

import numpy as np
import pandas as pd

from xraymunit.io import manifest


def test_manifest_schema_roundtrip(tmp_path):
    row = manifest.empty_row()
    row.update(image_key="ab" * 8, status="ok", rows=2048, columns=2500, bits_stored=12, age=64.0,
               cache_index=0, split="train", label="normal")
    bad = manifest.empty_row()
    bad.update(image_key="cd" * 8, status="skipped", reason="modality", reason_detail="Modality MR not in CR,DX")
    df = manifest.to_frame([row, bad])
    path = tmp_path / "manifest.parquet"
    manifest.write_manifest(df, path)
    back = pd.read_parquet(path)
    assert list(back.columns) == list(manifest.COLUMN_NAMES)
    assert str(back["rows"].dtype) == "Int64" and back["rows"].isna().tolist() == [False, True]
    assert back["cache_index"].tolist() == [0, -1] and back["cache_index"].dtype == np.int64
    assert back.loc[1, "reason"] == "modality" and pd.isna(back.loc[0, "reason"])
    assert [p for p in os.listdir(tmp_path) if p != "manifest.parquet"] == []  # no temp file left


def test_manifest_columns_are_documented():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[2] / "xraymunit" / "FORMATS.md").read_text()
    for col in manifest.COLUMN_NAMES:
        assert f"| {col} |" in doc or f"| {col}," in doc or f", {col} |" in doc or f" {col}," in doc, col
