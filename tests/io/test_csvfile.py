"""CSV files we write are safe to open in a spreadsheet; formula-like labels are refused at the door."""

from types import SimpleNamespace

import numpy as np
import pandas as pd
import pytest

from xraymunit.io import csvfile


@pytest.mark.parametrize("value,expected", [
    ("=HYPERLINK(\"http://x\")", "'=HYPERLINK(\"http://x\")"),
    ("+1+cmd", "'+1+cmd"), ("-2+3", "'-2+3"), ("@SUM(A1)", "'@SUM(A1)"),
    ("\t=1", "'\t=1"), ("\r=1", "'\r=1"),
    ("normal", "normal"), ("", ""), ("-1.5", "-1.5"), ("+3", "+3"), ("-1e-3", "-1e-3"),
    (-1.5, -1.5), (-3, -3), (None, None),
])
def test_safe_cell(value, expected):
    assert csvfile.safe_cell(value) == expected


def test_write_csv_escapes_text_and_keeps_numbers(tmp_path):
    df = pd.DataFrame({"label": ["=cmd|' /c calc'!a0", "normal"], "score": [-0.25, 1.5], "seed": [-1, 2]})
    path = tmp_path / "t.csv"
    csvfile.write_csv(df, path, index=False)
    back = pd.read_csv(path)
    assert list(back["label"]) == ["'=cmd|' /c calc'!a0", "normal"]
    assert back["score"].dtype == np.float64 and list(back["score"]) == [-0.25, 1.5]
    assert list(back["seed"]) == [-1, 2]
    assert list(df["label"])[0].startswith("=")  # the caller's frame is not changed


def test_predictions_csv_cells_cannot_run_as_formulas(tmp_path):
    from xraymunit.evaluation import report

    split = SimpleNamespace(keys=["k1", "k2"], patients=["p1", "p2"], sources=['=HYPERLINK("http://x")', "nih"],
                            labels=["@evil", "abnormal"])
    runs = [{"level": "l", "arm": "real", "seed": 0, "_val_scores": np.array([-0.5, 0.5]),
             "_test_scores": np.array([0.1, -0.1])}]
    report._predictions(tmp_path / "predictions.csv", runs, split, split)
    text = (tmp_path / "predictions.csv").read_text()
    assert "'=HYPERLINK" in text and "'@evil" in text
    assert not any(cell.startswith(("=", "@")) for line in text.splitlines() for cell in line.split(","))
    assert pd.read_csv(tmp_path / "predictions.csv")["score"].tolist() == [-0.5, 0.5, 0.1, -0.1]


def test_formula_label_stops_ingest_with_exit_2_and_one_line(tmp_path, capsys):
    from xraymunit.cli import main

    (tmp_path / "in").mkdir()
    labels = tmp_path / "labels.csv"
    labels.write_text("SOPInstanceUID,label\n1.1,normal\n1.2,\"=cmd|' /c calc'!a0\"\n")
    code = main(["ingest", str(tmp_path / "in"), "--out", str(tmp_path / "out"), "--labels", str(labels),
                 "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1
    assert "row 2, column 'label'" in err and "calc" not in err
