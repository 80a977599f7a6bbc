"""xraymunit.analysis on real stage outputs: the default pipeline run and a cohort with ingest problems.

Every expected number is recomputed here from the manifests / cache / metrics.json, so a
table that drops, double-counts or mislabels rows fails.
"""

from __future__ import annotations

import io
import json
import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from PIL import Image

from fixtures.ingest_fixtures import built, ingested  # noqa: F401 (fixtures)
from xraymunit import analysis as xa
from xraymunit.analysis import review as review_mod
from xraymunit.analysis.figures import fit_size
from xraymunit.io.cohort import Cohort, CohortError

pytestmark = pytest.mark.slow  # every test reads the session's default pipeline run or a real ingest


@pytest.fixture(scope="module")
def run(default_run):
    return xa.open_run(default_run)


@pytest.fixture(scope="module")
def problem_cohort(ingested):  # noqa: F811
    """A real ingest of the fixtures' mixed tree: a few good images plus one file per failure reason."""
    return Cohort.open(ingested[0])


def _images_shown(fig: Figure) -> int:
    return sum(len(ax.images) for ax in fig.axes)


def _png_bytes(fig: Figure) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


# ------------------------------------------------------------------ run folder


def test_open_run_finds_every_stage(run, default_run):
    assert run.cohort.root == default_run / "cohort"
    assert run.synth is not None and run.synth.root == default_run / "synth"
    assert run.metrics is not None and run.metrics["format"] == "xraymunit.evaluate"
    text = run.describe()
    assert str(default_run / "synth") in text and str(default_run / "report") in text


def test_open_run_on_a_bare_cohort_and_on_nothing(problem_cohort, tmp_path):
    bare = xa.open_run(problem_cohort.root)
    assert bare.cohort.root == problem_cohort.root and bare.synth is None and bare.metrics is None
    assert "none" in bare.describe()
    with pytest.raises(CohortError, match="ingest"):
        xa.open_run(tmp_path)


def test_run_folder_reads_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("XRAYMUNIT_RUN", str(tmp_path))
    assert xa.run_folder() == tmp_path.resolve()
    monkeypatch.delenv("XRAYMUNIT_RUN")
    assert xa.run_folder(default=tmp_path / "x") == (tmp_path / "x").resolve()


def test_importing_analysis_does_not_import_torch():
    code = "import sys, xraymunit.analysis; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


# ------------------------------------------------------------------ cohort tables


@pytest.mark.parametrize("which", ["default", "problems"])
def test_balance_per_split_equals_the_manifest(run, problem_cohort, which):
    cohort = run.cohort if which == "default" else problem_cohort
    ok = cohort.manifest[cohort.manifest["status"] == "ok"]
    table = xa.balance(cohort, by="split")
    for split in ("train", "val", "test"):
        rows = ok[ok["split"] == split]
        assert table.loc[split, "images"] == len(rows)
        assert table.loc[split, "patients"] == rows["patient_key"].nunique()
        for label in ("normal", "abnormal"):
            assert table.loc[split, label] == (rows["label"] == label).sum()
        n_abn, n_nor = (rows["label"] == "abnormal").sum(), (rows["label"] == "normal").sum()
        assert table.loc[split, "abnormal_share"] == pytest.approx(n_abn / (n_abn + n_nor), abs=1e-3)
    assert table.loc["all", "images"] == len(ok) == table.drop(index="all")["images"].sum()
    assert table.loc["all", "patients"] == ok["patient_key"].nunique()
    if ok["label"].isna().any():  # unlabelled images are shown, not dropped
        assert table.loc["all", "(none)"] == ok["label"].isna().sum()


def test_balance_per_source_keeps_missing_sources(run):
    ok = run.cohort.ok()
    table = xa.balance(run.cohort, by="source_dataset")
    assert table.drop(index="all")["images"].sum() == len(ok)
    if ok["source_dataset"].isna().any():
        assert table.loc["(none)", "images"] == ok["source_dataset"].isna().sum()


@pytest.mark.parametrize("column", ["sex", "view_position", "manufacturer"])
def test_metadata_by_label_counts_and_shares(run, column):
    ok = run.cohort.ok()
    counts = xa.metadata_by_label(run.cohort, column)
    for label in ("normal", "abnormal"):
        assert counts[label].sum() == (ok["label"] == label).sum()
        expected = ok.loc[ok["label"] == label, column].fillna("(none)").value_counts()
        for value, n in expected.items():
            assert counts.loc[value, label] == n
    shares = xa.metadata_by_label(run.cohort, column, normalize=True)
    np.testing.assert_allclose(shares.sum(axis=0).to_numpy(), 1.0, atol=0.01)


def test_age_by_label(run):
    ok = run.cohort.ok()
    table = xa.age_by_label(run.cohort)
    for label in ("normal", "abnormal"):
        ages = ok.loc[ok["label"] == label, "age"].dropna()
        assert table.loc[label, "images"] == (ok["label"] == label).sum()
        assert table.loc[label, "age_known"] == len(ages)
        assert table.loc[label, "mean"] == pytest.approx(ages.mean(), abs=0.06)
        assert table.loc[label, "max"] == pytest.approx(ages.max(), abs=0.06)


def test_ingest_problems_match_manifest_and_report(problem_cohort):
    m = problem_cohort.manifest
    bad = m[m["status"] != "ok"]
    table = xa.ingest_problems(problem_cohort)
    assert table["files"].sum() == len(bad) > 10
    expected = bad.groupby(["status", "reason"]).size()
    got = table.set_index(["status", "reason"])["files"]
    assert got.sort_index().to_dict() == expected.sort_index().to_dict()
    assert got.droplevel(0).to_dict() == problem_cohort.report()["by_reason"]  # manifest and report agree
    assert (table["description"] != "").all()  # every reason explained in words
    assert list(table["files"]) == sorted(table["files"], reverse=True)
    listing = xa.problem_list(problem_cohort)
    assert sorted(listing["image_key"]) == sorted(bad["image_key"])
    assert set(listing["status"]) <= {"skipped", "failed"}


def test_no_ingest_problems_gives_an_empty_table(run):
    assert (run.cohort.manifest["status"] == "ok").all()
    table = xa.ingest_problems(run.cohort)
    assert len(table) == 0 and {"status", "reason", "files"} <= set(table.columns)
    assert len(xa.problem_list(run.cohort)) == 0


# ------------------------------------------------------------------ intensity


def test_sample_per_label_is_capped_and_seeded(run):
    ok = run.cohort.ok()
    a = xa.sample_per_label(run.cohort, 5, seed=1)
    assert a["label"].value_counts().to_dict() == {"normal": 5, "abnormal": 5}
    assert a["image_key"].equals(xa.sample_per_label(run.cohort, 5, seed=1)["image_key"])
    assert not a["image_key"].equals(xa.sample_per_label(run.cohort, 5, seed=2)["image_key"])
    assert len(xa.sample_per_label(run.cohort, None)) == len(ok)
    train = xa.sample_per_label(run.cohort, 3, split="train")
    assert (train["split"] == "train").all()


def test_intensity_by_label_equals_the_cache(run):
    cohort = run.cohort
    table = xa.intensity_by_label(cohort, n_per_label=None)
    ok = cohort.ok()
    for label in ("normal", "abnormal"):
        idx = ok.loc[ok["label"] == label, "cache_index"].to_numpy()
        images = cohort.images[np.sort(idx)].astype(np.float64) / 65535.0
        assert table.loc[label, "images"] == table.loc[label, "sampled"] == len(idx)
        per_image_mean = images.reshape(len(idx), -1).mean(axis=1)
        assert table.loc[label, "mean_mean"] == pytest.approx(per_image_mean.mean(), abs=1e-4)
        assert table.loc[label, "mean_sd"] == pytest.approx(per_image_mean.std(ddof=1), abs=1e-4)
        zero = (images.reshape(len(idx), -1) == 0).mean(axis=1)
        assert table.loc[label, "zero_fraction_mean"] == pytest.approx(zero.mean(), abs=1e-4)
    capped = xa.intensity_by_label(cohort, n_per_label=4, seed=0)
    assert (capped["sampled"] == 4).all() and (capped["images"] == table["images"]).all()


# ------------------------------------------------------------------ figures


def test_real_montage_shows_n_images_per_label(run):
    fig = xa.real_montage(run.cohort, n_per_label=3, seed=0)
    assert isinstance(fig, Figure) and _images_shown(fig) == 6
    assert _png_bytes(fig).startswith(b"\x89PNG")
    one_split = xa.real_montage(run.cohort, n_per_label=2, split="test")
    assert _images_shown(one_split) == 4


def test_metadata_and_intensity_figures_render(run, problem_cohort):
    for fig in (xa.metadata_figure(run.cohort), xa.intensity_histograms(run.cohort, n_per_label=5),
                xa.metadata_figure(problem_cohort)):
        assert isinstance(fig, Figure) and _png_bytes(fig).startswith(b"\x89PNG")
    fig = xa.intensity_histograms(run.cohort, n_per_label=5)
    assert len(fig.axes[0].lines) == 2  # one curve per label


def test_synthetic_grid_shows_sources_and_their_styles(run):
    styles = run.synth.manifest.groupby("source_image_key").size().min()
    fig = xa.synthetic_grid(run.cohort, run.synth, n_sources=3, n_styles=styles, seed=0)
    assert _images_shown(fig) == 3 * (1 + styles)
    rows = xa.filter_synthetic(run.synth, style_index=0)
    fig = xa.synthetic_grid(run.cohort, run.synth, rows=rows.head(2))
    assert _images_shown(fig) == 2 * 2  # two sources, one style each
    key = rows["source_image_key"].iloc[0]
    detail = xa.source_and_styles(run.cohort, run.synth, key, max_styles=3)
    assert _images_shown(detail) == 1 + 2 * min(3, styles)  # source, styles, difference maps
    assert _png_bytes(detail).startswith(b"\x89PNG")


# ------------------------------------------------------------------ synthetic tables


def test_synthetic_summary_counts(run):
    m = run.synth.manifest
    s = xa.synthetic_summary(run.synth)
    assert s["images"] == len(m) and s["source_images"] == m["source_image_key"].nunique()
    assert s["with_png"] == m["png_path"].notna().sum()


def test_filter_synthetic_by_style_and_seed(run):
    m = run.synth.manifest
    first = xa.filter_synthetic(run.synth, style_index=0)
    assert (first["style_index"] == 0).all() and len(first) == m["source_image_key"].nunique()
    two = xa.filter_synthetic(run.synth, style_index=[0, 1])
    assert len(two) == ((m["style_index"] == 0) | (m["style_index"] == 1)).sum()
    seed = int(m["seed"].iloc[0])
    assert len(xa.filter_synthetic(run.synth, seed=seed)) == (m["seed"] == seed).sum()
    assert len(xa.filter_synthetic(run.synth, seed=seed + 12345)) == 0
    key = m["source_image_key"].iloc[0]
    one = xa.filter_synthetic(run.synth, source_image_key=key)
    assert set(one["source_image_key"]) == {key} and list(one["style_index"]) == sorted(one["style_index"])


def test_with_sources_joins_cohort_metadata(run):
    rows = xa.with_sources(xa.filter_synthetic(run.synth, style_index=0), run.cohort)
    ok = run.cohort.ok().set_index("image_key")
    assert (rows["cache_index"] >= 0).all()
    for _, r in rows.head(5).iterrows():
        assert r["cache_index"] == ok.loc[r["source_image_key"], "cache_index"]
        assert r["source_cohort_label"] == ok.loc[r["source_image_key"], "label"] == "normal"


def test_pick_sources_is_seeded(run):
    a = xa.pick_sources(run.synth, 4, seed=0)
    assert a == xa.pick_sources(run.synth, 4, seed=0) and len(set(a)) == 4
    assert a != xa.pick_sources(run.synth, 4, seed=1)


# ------------------------------------------------------------------ evaluation numbers


def test_quality_table_carries_the_report_numbers(run):
    q = run.metrics["quality"]
    table = xa.quality_table(run.metrics).set_index("measure")
    fd = q["realism"]["synthetic_vs_real_abnormal"]
    row = table.loc["Fréchet distance to real abnormal"]
    assert row["synthetic"] == fd["frechet"]
    assert row["yardstick"] == q["realism"]["yardstick_real_normal_vs_real_abnormal"]["frechet"]
    div = q["diversity"]["synthetic_styles_of_same_input"]["lpips_style"]
    row = table.loc["LPIPS-style between styles of one input"]
    assert (row["synthetic"], row["synthetic_ci_low"], row["synthetic_ci_high"]) == (
        div["mean"], div["ci_low"], div["ci_high"])
    assert row["yardstick"] == q["diversity"]["yardstick_real_abnormal_pairs"]["lpips_style"]["mean"]
    assert set(table["group"]) == {"realism", "diversity", "content", "memorisation"}
    assert len(xa.quality_table(None)) == 0 and len(xa.quality_table({"quality": None})) == 0


def test_classifier_table_has_every_level_and_arm(run):
    m = run.metrics
    table = xa.classifier_table(m)
    assert len(table) == len(m["levels"]) * len(m["arms"])
    lv = m["levels"][0]["name"]
    for arm in m["arms"]:
        row = table[(table["level"] == lv) & (table["arm"] == arm)].iloc[0]
        assert row["auroc"] == m["results"][lv]["arms"][arm]["auroc"]["value"]
    assert table.loc[table["arm"] == "real", "delta_vs_real"].isna().all()


def test_load_metrics(run, tmp_path):
    assert xa.load_metrics(run.report_dir) == json.loads((run.report_dir / "metrics.json").read_text())
    assert xa.load_metrics(tmp_path) is None
    (tmp_path / "metrics.json").write_text('{"format": "something else"}')
    with pytest.raises(ValueError, match="not an xraymunit evaluation"):
        xa.load_metrics(tmp_path)


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
