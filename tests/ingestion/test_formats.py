"""PNG / JPEG folders, labels from a CSV or from normal/ abnormal/ folders, labels that match nothing."""

import json
import shutil

import pytest

from fixtures.dicom_builder import source_pngs
from fixtures.ingest_fixtures import *  # noqa: F401,F403 (fixtures)
from fixtures.ingest_fixtures import DecodeCounter, by_path
from xraymunit.ingestion import ingest
from xraymunit.ingestion.labels import LabelsError


def test_png_folder_with_labels_csv(built, tmp_path):
    out = tmp_path / "cohort"
    result = ingest(built.png_root, out, labels=built.png_csv, progress=False)
    rows = by_path(out)
    assert result.images == 6 and set(rows["source_format"]) == {"png", "jpeg"}
    assert set(rows["label_source"]) == {"csv:path"} and set(rows["source_dataset"]) == {"nih_chestxray14"}
    src = {s.path.stem: s for s in source_pngs()}
    for rel, r in rows.iterrows():
        s = src[rel.split("/")[-1].rsplit(".", 1)[0]]
        assert (r.sex, r.age, r.view_position, r.label) == (s.sex, float(s.age), s.view, s.label)
    steps = ";".join(rows["pixel_steps"])
    assert "rgb_grey" in steps and "grey16" in steps and "load:jpeg" in steps
    assert rows["patient_key"].nunique() == 6  # patient_id column used, no per-file fallback
    report = json.loads((out / "ingest_report.json").read_text())
    assert not any("no patient id" in w for w in report["warnings"])


def test_png_folder_labels_from_normal_abnormal_subfolders(built, tmp_path):
    out = tmp_path / "cohort"
    ingest(built.png_root, out, progress=False)
    rows = by_path(out)
    assert set(rows["label_source"]) == {"folder"}
    assert all(r.label == rel.split("/")[0] for rel, r in rows.iterrows())
    report = json.loads((out / "ingest_report.json").read_text())
    assert any("no patient id" in w for w in report["warnings"])


def test_png_disguised_as_dcm_is_read_as_png(built, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(built.png_root / "normal" / "nih__00001280_004.png", src / "IM0001.dcm")
    ingest(src, tmp_path / "out", progress=False)
    assert by_path(tmp_path / "out").loc["IM0001.dcm", "source_format"] == "png"


def test_labels_that_match_nothing_stop_before_decoding(built, tmp_path, monkeypatch):
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("SOPInstanceUID,label\n1.2.3.4,abnormal\n")
    counter = DecodeCounter(monkeypatch)
    with pytest.raises(LabelsError, match="none of the 1 rows"):
        ingest(built.site.root, tmp_path / "out", labels=wrong, progress=False)
    assert counter.n == 0
