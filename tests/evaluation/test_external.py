"""External validation (`--test-cohort`): every arm also scored on another cohort, its own bootstrap."""

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from helpers.evaluate_data import write_cohort
from xraymunit import config
from xraymunit.config.evaluate import EvaluateConfig
from xraymunit.evaluation.stage import EvaluateError, evaluate

TINY = Path(__file__).resolve().parents[2] / "configs" / "evaluate_tiny.yaml"


def small(*overrides):
    return config.load(EvaluateConfig, TINY, ["progress=false", "real_abnormal=[all]", "seeds=1", "arms=[real, classical]",
                                              "classifier.steps=6", "classifier.eval_every=3", "classifier.batch_size=8",
                                              "quality.enabled=false", *overrides])


def other_patients(cohort: Path) -> Path:
    """write_cohort derives keys from patient numbers: give the other site's cohort keys of its own."""
    m = pd.read_parquet(cohort / "manifest.parquet")
    for col in ("image_key", "patient_key", "study_key", "series_key", "sop_key"):
        m[col] = "ext-" + m[col]
    m.to_parquet(cohort / "manifest.parquet", index=False)
    return cohort


@pytest.fixture(scope="module")
def cohorts(tmp_path_factory):
    root = tmp_path_factory.mktemp("external")
    a = write_cohort(root / "site_a", n_patients=36, size=32, seed=3)
    b = other_patients(write_cohort(root / "site_b", n_patients=30, size=32, seed=4))
    return root, a, b


def merged_cohort(root: Path, a: Path, b: Path) -> Path:
    """A's train and val splits with B's test split as its test split: the manual external evaluation."""
    ma, mb = pd.read_parquet(a / "manifest.parquet"), pd.read_parquet(b / "manifest.parquet")
    ia, ib = np.load(a / "cache" / "images.npy"), np.load(b / "cache" / "images.npy")
    ma = ma[ma["split"].isin(["train", "val"])]
    mb = mb[mb["split"] == "test"].assign(cache_index=lambda d: d["cache_index"] + len(ia))
    c = root / "manual"
    (c / "cache").mkdir(parents=True)
    np.save(c / "cache" / "images.npy", np.concatenate([ia, ib]))
    (c / "cache" / "meta.json").write_text((a / "cache" / "meta.json").read_text())
    pd.concat([ma, mb]).to_parquet(c / "manifest.parquet", index=False)
    return c


def test_external_numbers_equal_a_manual_evaluation_on_the_other_cohort(cohorts, tmp_path):
    root, a, b = cohorts
    m = evaluate(a, None, tmp_path / "ext", small(), test_cohorts=[b])
    manual = evaluate(merged_cohort(tmp_path, a, b), None, tmp_path / "manual", small())
    ext = m["external"]["site_b"]
    assert ext["results"]["all"]["arms"] == manual["results"]["all"]["arms"]
    assert ext["results"]["all"]["comparisons"] == manual["results"]["all"]["comparisons"]
    assert (ext["n_images"], ext["n_patients"]) == (manual["data"]["test"]["n_images"], manual["data"]["test"]["n_patients"])
    assert ext["split"] == "test" and ext["patients_shared_with_training_cohort"] == 0
    # internal numbers are those of a study without the test cohort
    plain = evaluate(a, None, tmp_path / "plain", small())
    assert m["results"] == plain["results"]
    summary = (tmp_path / "ext" / "summary.md").read_text()
    assert "## External validation" in summary and "### Test cohort site_b (test images:" in summary
    assert "| (1) real only |" in summary.split("## External validation")[1]
    assert json.loads((tmp_path / "ext" / "metrics.json").read_text())["external"]["site_b"]["results"] == ext["results"]
    # predictions.csv holds the test cohort's scores too: those the manual evaluation scored as its test split
    pred, man = pd.read_csv(tmp_path / "ext" / "predictions.csv"), pd.read_csv(tmp_path / "manual" / "predictions.csv")
    order = ["arm", "seed", "image_key"]
    ext_rows, man_rows = pred[pred["cohort"] == "site_b"].sort_values(order), man[man["split"] == "test"].sort_values(order)
    assert len(ext_rows) == len(man_rows) > 0 and (ext_rows["split"] == "test").all()
    assert list(ext_rows["image_key"]) == list(man_rows["image_key"])
    np.testing.assert_allclose(ext_rows["score"].to_numpy(), man_rows["score"].to_numpy(), rtol=1e-6)
    assert set(pred.loc[pred["cohort"] == "internal", "split"]) == {"val", "test"}
    # a rerun reuses the runs, external scores included
    again = evaluate(a, None, tmp_path / "ext", small(), test_cohorts=[b])
    assert again["resumed_runs"] == len(m["runs"]) and again["external"] == m["external"]


def test_same_patients_are_warned_about_and_all_images_can_be_scored(cohorts, tmp_path, caplog):
    root, a, _ = cohorts
    m = evaluate(a, None, tmp_path / "r", small("arms=[real]", "external_split=all"), test_cohorts=[a])
    ext = m["external"]["site_a"]
    labelled = pd.read_parquet(a / "manifest.parquet").query("status == 'ok' and label.notna()")
    assert ext["n_images"] == len(labelled) and ext["split"] == "all"
    assert ext["patients_shared_with_training_cohort"] == labelled["patient_key"].nunique()
    assert any("not independent of the training data" in n for n in m["notes"])
    assert any("patient keys of the training cohort" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("change,message", [
    ({"size": 64}, "size 64 (training cohort: 32)"),
    ({"contrast": "equalize"}, "contrast equalize (training cohort: none)"),
    ({"window": "percentile", "percentiles": [1, 99]}, "window percentile (training cohort: auto), percentiles 1,99"),
])
def test_a_cohort_ingested_otherwise_is_refused_in_one_line(cohorts, tmp_path, change, message):
    root, a, b = cohorts
    other = tmp_path / "other"
    import shutil

    shutil.copytree(b, other)
    meta = json.loads((other / "cache" / "meta.json").read_text())
    (other / "cache" / "meta.json").write_text(json.dumps({**meta, **change}))
    with pytest.raises(EvaluateError, match="re-ingest it with the training cohort's") as err:
        evaluate(a, None, tmp_path / "r", small(), test_cohorts=[other])
    assert message in str(err.value) and "\n" not in str(err.value)
    assert not (tmp_path / "r" / "runs").exists()  # refused before any training


def test_the_cli_options(tmp_path):
    from xraymunit.cli import build_parser
    from xraymunit.cli.evaluate import build_config

    args = build_parser().parse_args(["evaluate", "--cohort", "a", "--out", "r", "--test-cohort", "b",
                                      "--test-cohort", "c", "--external-split", "all"])
    assert args.test_cohort == ["b", "c"] and build_config(args).external_split == "all"
    with pytest.raises(config.ConfigError, match="external_split"):
        small("external_split=holdout").validate()


def test_worker_processes_rebuild_the_plan_with_the_test_cohorts(monkeypatch, tmp_path):
    """--workers: each worker rebuilds the plan; without the test cohorts its run fingerprints would
    not be the main process's and every run would be missing from the cache."""
    from xraymunit.evaluation import parallel, plan

    seen = {}

    class Built(Exception):
        pass

    def fake_plan_study(cohort, synthetic, cfg, test_cohorts=()):
        seen["test_cohorts"] = test_cohorts
        raise Built

    monkeypatch.setattr(plan, "plan_study", fake_plan_study)
    import torch

    task = parallel.WorkerTask("a", None, str(tmp_path), True, False, ("b", "c"))
    threads = torch.get_num_threads()
    try:
        with pytest.raises(Built):
            parallel._worker(0, 1, task, small("device=cpu"))
    finally:
        torch.set_num_threads(threads)  # the worker sets its share of the CPUs
    assert seen["test_cohorts"] == ("b", "c")
