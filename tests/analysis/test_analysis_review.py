"""xraymunit.analysis.review: the blinded reading set and its unblinding.

On real stage outputs (the default pipeline run, a cohort with ingest problems); every expected
number is recomputed from the manifests / cache / metrics.json.
"""

import json

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from analysis_fixtures import run  # noqa: F401 (fixtures)
from xraymunit import analysis as xa
from xraymunit.analysis import review as review_mod
from xraymunit.analysis.figures import fit_size

pytestmark = pytest.mark.slow  # every test reads the session's default pipeline run or a real ingest


# ------------------------------------------------------------------ blinded review export


@pytest.fixture(scope="module")
def exported(run, tmp_path_factory):
    out = tmp_path_factory.mktemp("review") / "reading"
    return xa.export_review_sheet(run.cohort, run.synth, out, n_real=8, n_synthetic=8, seed=3)


def _key(export) -> pd.DataFrame:
    return pd.read_csv(export.answer_key, dtype={"style_index": "Int64", "seed": "Int64"})


def test_review_layout_and_blank_sheet(exported):
    assert exported.n_real == 8 and exported.n_synthetic == 8
    reviewer = exported.reviewer_dir
    assert sorted(p.name for p in reviewer.iterdir()) == ["INSTRUCTIONS.txt", "images", "review_sheet.csv"]
    assert exported.answer_key.parent == exported.root and not exported.answer_key.is_relative_to(reviewer)
    sheet = pd.read_csv(exported.sheet, dtype=str, keep_default_na=False)
    assert list(sheet.columns) == review_mod.SHEET_COLUMNS  # no truth, no keys
    assert (sheet[["score_realism", "is_synthetic_guess", "comments"]] == "").all().all()
    assert sheet["item_id"].is_unique and sheet["file"].is_unique and len(sheet) == 16
    assert sorted(sheet["file"]) == sorted(f"images/{p.name}" for p in (reviewer / "images").iterdir())
    assert not list(exported.root.parent.glob(".*building*"))  # no temporary folder left behind


def test_reviewer_folder_gives_nothing_away(exported, run):
    m, s = run.cohort.manifest, run.synth.manifest
    secrets = set(m["image_key"]) | set(m["patient_key"]) | set(s["synth_key"]) | set(s["checkpoint_sha256"])
    secrets |= {"real", "synthetic"} - {""}  # as words inside image files or names
    for path in exported.reviewer_dir.rglob("*"):
        if not path.is_file():
            continue
        assert not any(k in path.name for k in secrets)
        data = path.read_bytes()
        if path.suffix == ".png":
            assert b"xraymunit" not in data and b"synthetic" not in data.lower() and b"SYNTHETIC" not in data
            with Image.open(path) as im:
                assert im.text == {} and im.mode == "L"  # no text chunks; same 8-bit mode for every item
        text = data.decode("latin-1")
        assert not any(k in text for k in secrets if len(k) >= 12)  # no key in any file
    sizes = {Image.open(p).size for p in (exported.reviewer_dir / "images").iterdir()}
    assert len(sizes) == 1  # real and synthetic at the same size


def test_answer_key_is_complete_and_matches_the_pixels(exported, run):
    sheet = pd.read_csv(exported.sheet, dtype=str, keep_default_na=False)
    key = _key(exported)
    assert list(key["item_id"]) == list(sheet["item_id"]) and list(key["file"]) == list(sheet["file"])
    assert key["truth"].value_counts().to_dict() == {"real": 8, "synthetic": 8}
    ok = run.cohort.ok().set_index("image_key")
    syn = run.synth.manifest.set_index("synth_key")
    synth_size = int(run.synth.manifest["size"].iloc[0])
    for _, item in key.iterrows():
        shown = np.asarray(Image.open(exported.reviewer_dir / item["file"]), np.float32) / 255.0
        if item["truth"] == "real":
            src = ok.loc[item["image_key"]]
            assert src["label"] == item["label"] == "abnormal" and pd.isna(item["synth_key"])
            expected = run.cohort.image(src["cache_index"])
        else:
            row = syn.loc[item["synth_key"]]
            assert row["source_image_key"] == item["source_image_key"] and pd.isna(item["image_key"])
            assert (row["style_index"], row["seed"]) == (item["style_index"], item["seed"])
            expected = run.synth.image(row)
        assert shown.shape == (synth_size, synth_size)  # exported at the synthetic images' size
        expected = fit_size(expected, synth_size)  # real images are resized to it
        assert np.abs(shown - expected).max() <= 0.5 / 255 + 1e-5  # this file is that image


def test_review_items_never_share_anatomy(exported):
    key = _key(exported)
    syn, real = key[key["truth"] == "synthetic"], key[key["truth"] == "real"]
    assert syn["patient_key"].is_unique  # one synthetic image per source patient
    assert not set(real["patient_key"]) & set(syn["patient_key"])


def test_review_export_is_seeded(run, exported, tmp_path):
    again = xa.export_review_sheet(run.cohort, run.synth, tmp_path / "again", n_real=8, n_synthetic=8, seed=3)
    assert again.answer_key.read_bytes() == exported.answer_key.read_bytes()
    for f in pd.read_csv(again.sheet)["file"]:
        assert (again.reviewer_dir / f).read_bytes() == (exported.reviewer_dir / f).read_bytes()
    other = xa.export_review_sheet(run.cohort, run.synth, tmp_path / "other", n_real=8, n_synthetic=8, seed=4)
    a, b = _key(exported), _key(other)
    assert list(a["file"]) != list(b["file"])
    assert list(a["truth"]) != list(b["truth"]) or list(a["synth_key"]) != list(b["synth_key"])


def test_review_export_respects_filters_and_never_clobbers(run, tmp_path):
    rows = xa.filter_synthetic(run.synth, style_index=1)
    out = tmp_path / "styles1"
    first = xa.export_review_sheet(run.cohort, run.synth, out, n_real=2, n_synthetic=3, synthetic_rows=rows)
    key = _key(first)
    assert (key.loc[key["truth"] == "synthetic", "style_index"] == 1).all()
    with pytest.raises(FileExistsError):
        xa.export_review_sheet(run.cohort, run.synth, out, n_real=2, n_synthetic=3)
    assert _key(first).equals(key)  # untouched
    replaced = xa.export_review_sheet(run.cohort, run.synth, out, n_real=1, n_synthetic=1, overwrite=True)
    assert len(_key(replaced)) == 2 and len(list((out / "for_reviewer" / "images").iterdir())) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["styles1"]  # old copy and temp folders gone
    meta = json.loads((out / "export.json").read_text())
    assert meta["exported"] == {"real": 1, "synthetic": 1} and meta["seed"] == 0


def test_review_results_unblinds_a_filled_sheet(exported):
    sheet = pd.read_csv(exported.sheet, dtype=str, keep_default_na=False)
    truth = _key(exported).set_index("item_id")["truth"]
    perfect = sheet.assign(is_synthetic_guess=[("yes" if truth[i] == "synthetic" else "no") for i in sheet["item_id"]],
                           score_realism=[("2" if truth[i] == "synthetic" else "5") for i in sheet["item_id"]])
    res = xa.review_results(perfect, exported.answer_key)
    assert res.loc["all", "correct"] == 1.0 and res.loc["synthetic", "called_synthetic"] == 1.0
    assert res.loc["real", "mean_realism"] == 5.0 and res.loc["synthetic", "mean_realism"] == 2.0
    wrong = perfect.assign(is_synthetic_guess=perfect["is_synthetic_guess"].map({"yes": "no", "no": "yes"}))
    assert xa.review_results(wrong, exported.answer_key).loc["all", "correct"] == 0.0
    blank = xa.review_results(exported.sheet, exported.answer_key)
    assert blank.loc["all", "items"] == 16 and blank.loc["all", "scored"] == 0 and blank.loc["all", "called"] == 0
    with pytest.raises(ValueError, match="answer key"):
        xa.review_results(sheet.assign(item_id="item_999"), exported.answer_key)
