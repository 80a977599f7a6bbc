"""The judge: trained once per cohort on real train images, reused, rebuilt when the cohort changes."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from helpers.evaluate_data import write_cohort

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
    assert judge.val_auroc > 0.7 and not judge.weak
    judge.info["val_auroc"]["value"] = 0.6
    assert judge.weak and "WEAK JUDGE" in judge.describe()


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


def _read_only_copy(cohort, tmp_path):
    import shutil

    return shutil.copytree(cohort, tmp_path / "cohort", ignore=shutil.ignore_patterns("judge"))


def test_an_unwritable_cohort_keeps_the_judge_in_the_fallback_and_reuses_it(cohort, tmp_path, caplog):
    """Issue 23 item 7 (the decision): COHORT/judge/ cannot be created (here: `judge` is a regular file, which
    stops root too) → the judge is trained into the fallback with a warning, then reused from there, also by
    another run that names that folder in look_in. Without a fallback the cohort must be writable."""
    ro = _read_only_copy(cohort, tmp_path)
    (ro / "judge").write_text("not a folder")
    assert not J.writable(J.judge_folder(Cohort.open(ro), _cfg()))
    with caplog.at_level("WARNING", logger="xraymunit.judge"):
        J.load_or_train(ro, _cfg(), fallback=tmp_path / "run" / "judge")
    assert "cannot write the cohort's judge folder" in caplog.text
    saved = list((tmp_path / "run" / "judge").glob("*/judge.pt"))
    assert len(saved) == 1 and (ro / "judge").read_text() == "not a folder"
    stamp = saved[0].stat().st_mtime_ns
    J.load_or_train(ro, _cfg(), fallback=tmp_path / "report" / "judge", look_in=[tmp_path / "run" / "judge"])
    assert saved[0].stat().st_mtime_ns == stamp and not (tmp_path / "report" / "judge").exists()  # reused


def test_a_chmod_read_only_cohort_is_not_writable(cohort, tmp_path):
    """The same decision on real permission bits (skipped where they do not bind: root ignores them)."""
    import os
    import stat

    ro = _read_only_copy(cohort, tmp_path)
    os.chmod(ro, stat.S_IRUSR | stat.S_IXUSR)
    try:
        try:
            (ro / "probe").touch()
            can_write = True
        except PermissionError:
            can_write = False
        if can_write:
            pytest.skip("permission bits do not stop this user (root): covered by the regular-file test above")
        assert not J.writable(J.judge_folder(Cohort.open(ro), _cfg()))
        assert J.writable(J.judge_folder(Cohort.open(cohort), _cfg()))
    finally:
        os.chmod(ro, stat.S_IRWXU)
