"""The judge: trained once per cohort on real train images, reused, rebuilt when the cohort changes."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from helpers.evaluate_data import write_cohort

from xraymunit import config
from xraymunit import judge as J
from xraymunit.config.evaluate import ClassifierConfig, JudgeConfig
from xraymunit.io.cohort import Cohort


def _cfg(**kw) -> JudgeConfig:
    return JudgeConfig(classifier=ClassifierConfig(image_size=32, steps=60, eval_every=20), bootstrap=100, **kw)


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("judge-cohort"), n_patients=40, size=64)


def test_trains_once_then_reuses(cohort):
    cfg = _cfg()
    judge = J.load_or_train(cohort, cfg)
    folder = J.judge_folder(Cohort.open(cohort), cfg)
    info = json.loads((folder / "judge.json").read_text())
    assert info["val_auroc"]["ci_low"] <= info["val_auroc"]["value"] <= info["val_auroc"]["ci_high"]
    assert info["n_train"]["normal"] > 0 and info["n_train"]["abnormal"] > 0
    assert info["n_train"]["abnormal"] + info["n_train"]["normal"] == int(
        (Cohort.open(cohort).ok()["split"] == "train").sum())  # every labelled train image, nothing else
    stamp = (folder / "judge.pt").stat().st_mtime_ns
    again = J.load_or_train(cohort, cfg)
    assert (folder / "judge.pt").stat().st_mtime_ns == stamp  # loaded, not retrained
    x = torch.rand(5, 1, 64, 64)
    np.testing.assert_allclose(judge.scores(x), again.scores(x), rtol=1e-5, atol=1e-6)
    assert again.threshold == pytest.approx(judge.threshold)
    assert judge.embed(x).shape[0] == 5 and len(judge.feature_maps(x)) >= 2
    assert "judge val AUROC" in again.describe()


def test_other_settings_or_changed_labels_give_another_judge(cohort, tmp_path):
    co = Cohort.open(cohort)
    a = J.judge_folder(co, _cfg())
    assert J.judge_folder(co, _cfg(seed=1)) != a
    # the same cohort with one label flipped is a different cohort for the judge
    import shutil

    copy = tmp_path / "c"
    shutil.copytree(cohort, copy, ignore=shutil.ignore_patterns("judge"))
    m = pd.read_parquet(copy / "manifest.parquet")
    i = m.index[m["label"] == "normal"][0]
    m.loc[i, "label"] = "abnormal"
    m.to_parquet(copy / "manifest.parquet", index=False)
    assert J.judge_folder(Cohort.open(copy), _cfg()).name != a.name


def test_learns_a_real_signal_and_weak_flag(tmp_path):
    judge = J.load_or_train(write_cohort(tmp_path / "c", n_patients=60, size=64, seed=3),
                            JudgeConfig(classifier=ClassifierConfig(image_size=64, steps=150, eval_every=25),
                                        bootstrap=100))
    # the phantoms' abnormal images carry bright lesions a small DenseNet learns in ~100 steps
    assert judge.val_auroc > 0.7
    # ... but 12 val patients cannot prove it: the CI's lower bound (~0.46) is below 0.7, so it is flagged
    assert judge.info["val_auroc"]["ci_low"] < J.WEAK_JUDGE_AUROC and judge.weak and judge.info["weak"]
    assert "WEAK JUDGE" in judge.describe()


def _judge_with(val_auroc: dict) -> J.Judge:
    info = {"val_auroc": val_auroc, "test_auroc": {"value": 0.5, "ci_low": 0.0, "ci_high": 1.0},
            "n_train": {"normal": 20, "abnormal": 5}}
    return J.Judge(model=None, threshold=0.5, info=info, device=torch.device("cpu"))


def test_a_high_point_estimate_with_a_low_lower_bound_is_weak():
    """Issue 21: the default run's judge, val 0.88 [0.58, 1.00] on a few val patients, was not flagged."""
    judge = _judge_with({"value": 0.88, "ci_low": 0.58, "ci_high": 1.0})
    assert judge.weak and "WEAK JUDGE (val AUROC CI lower bound < 0.7)" in judge.describe()
    assert J.is_weak({"value": 0.88, "ci_low": 0.58}) and J.is_weak({"value": 0.95, "ci_low": None})
    strong = _judge_with({"value": 0.9, "ci_low": 0.75, "ci_high": 0.98})
    assert not strong.weak and "WEAK" not in strong.describe()


def test_a_judge_saved_under_the_point_estimate_rule_is_reflagged_on_load(tmp_path):
    cfg = JudgeConfig(classifier=ClassifierConfig(image_size=32, steps=1, eval_every=1), bootstrap=10)
    from xraymunit.evaluation.classifier import build_classifier

    info = {"config": config.to_dict(cfg), "weak": False,
            "val_auroc": {"value": 0.88, "ci_low": 0.58, "ci_high": 1.0}}
    J.save(tmp_path / "j", build_classifier(cfg.classifier, cfg.seed), 0.5, info)
    assert J.load(tmp_path / "j").info["weak"] is True


def test_a_split_without_both_labels_is_a_clear_error(tmp_path):
    root = write_cohort(tmp_path / "c", n_patients=20, size=64)
    m = pd.read_parquet(root / "manifest.parquet")
    m.loc[(m["split"] == "val") & (m["label"] == "abnormal"), "split"] = "test"
    m.to_parquet(root / "manifest.parquet", index=False)
    with pytest.raises(J.JudgeError, match="val split has"):
        J.load_or_train(root, _cfg())


def test_broken_judge_file_is_retrained(cohort):
    cfg = _cfg(seed=5)
    J.load_or_train(cohort, cfg)
    folder = J.judge_folder(Cohort.open(cohort), cfg)
    (folder / "judge.pt").write_bytes(b"not a torch file")
    with pytest.raises(J.JudgeError, match="cannot be loaded"):
        J.load(folder)
    assert J.load_or_train(cohort, cfg).val_auroc == J.load(folder).val_auroc
