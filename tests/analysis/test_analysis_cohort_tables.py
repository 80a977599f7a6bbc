"""xraymunit.analysis.cohort_tables: balance, metadata, ages and ingest problems, recomputed from the manifest.

On real stage outputs (the default pipeline run, a cohort with ingest problems); every expected
number is recomputed from the manifests / cache / metrics.json.
"""

import numpy as np
import pytest

from analysis_fixtures import problem_cohort, run  # noqa: F401 (fixtures)
from fixtures.ingest_fixtures import built, ingested  # noqa: F401 (fixtures)
from xraymunit import analysis as xa

pytestmark = pytest.mark.slow  # every test reads the session's default pipeline run or a real ingest


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
