"""Quality tracked during training: quality.csv has every column, best.pt follows the criterion,
resume keeps the rows, and synthesize reads RUN/best."""

import csv
import math

import pytest
import torch
from helpers.evaluate_data import write_cohort
from helpers.training import tiny_train_config

from xraymunit import checkpoint
from xraymunit.io.cohort import Cohort
from xraymunit.quality import quality_csv, training_monitor as monitor
from xraymunit.checkpoint import build_networks
from xraymunit.training import train

QUICK = ["quality.judge.classifier.image_size=32", "quality.judge.classifier.steps=30",
         "quality.judge.classifier.eval_every=10", "quality.judge.bootstrap=50",
         "quality.n_inputs=6", "quality.n_reference=6"]


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("monitor-cohort"), n_patients=40, size=64)


@pytest.fixture(scope="module")
def run(cohort, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "run"
    cfg = tiny_train_config("train.steps=6", "train.quality_every=3", *QUICK)
    train(cohort, out, cfg, progress=False)
    return out, cfg


def _rows(path):
    with open(path, newline="") as fh:
        return list(csv.DictReader(fh))


def test_quality_csv_has_every_column_and_yardsticks(run):
    out, _ = run
    rows = _rows(out / "quality.csv")
    assert [int(r["step"]) for r in rows] == [3, 6]
    assert list(rows[0]) == quality_csv.COLUMNS
    for r in rows:
        for key in quality_csv.COLUMNS:
            assert r[key] != "", key  # every number measured, yardsticks included
        assert int(r["images_seen"]) == int(r["step"]) * 2  # batch 2, one process
        assert 0 <= float(r["a2b_success"]) <= 1 and float(r["a2b_fd"]) >= 0
    assert float(rows[1]["seconds"]) > float(rows[0]["seconds"]) > 0
    assert (out / "quality.png").stat().st_size > 10_000


def test_best_checkpoint_is_the_best_row(run):
    out, cfg = run
    rows = _rows(out / "quality.csv")
    best = checkpoint.load(out / "checkpoints" / "best.pt")
    scores = [float(r["score"]) for r in rows]
    assert best["step"] == int(rows[scores.index(max(scores))]["step"])
    assert best["extra"]["quality"]["score"] == pytest.approx(max(scores), abs=1e-5)
    assert checkpoint.resolve(out / "best") == out / "checkpoints" / "best.pt"
    assert checkpoint.resolve(out / "last") == out / "checkpoints" / "last.pt"
    # a run folder means last.pt: best only when asked for (its score favours early, blurry steps)
    assert checkpoint.resolve(out) == out / "checkpoints" / "last.pt"
    assert checkpoint.resolve(out / "checkpoints" / "best.pt") == out / "checkpoints" / "best.pt"


def test_synthesize_takes_run_best_when_asked_and_logs_the_step(run, cohort, tmp_path, caplog):
    from xraymunit.synthesis.stage import synthesize

    out, _ = run
    caplog.set_level("INFO", logger="xraymunit.synthesis.stage")
    res = synthesize(out / "best", cohort, tmp_path / "s", n_styles=1, limit=1, progress=False)
    assert res.manifest["checkpoint_sha256"].iloc[0] == checkpoint.file_sha256(out / "checkpoints" / "best.pt")
    step = checkpoint.load(out / "checkpoints" / "best.pt")["step"]
    assert f"synthesizing from {out / 'checkpoints' / 'best.pt'} (step {step})" in caplog.text
    res = synthesize(out, cohort, tmp_path / "s_last", n_styles=1, limit=1, progress=False)
    assert res.manifest["checkpoint_step"].iloc[0] == 6  # the run folder: last.pt


def test_resume_keeps_earlier_rows_and_continues(cohort, tmp_path):
    out = tmp_path / "run"
    train(cohort, out, tiny_train_config("train.steps=4", "train.quality_every=2", "train.checkpoint_every=2",
                                         *QUICK), progress=False)
    train(cohort, out, tiny_train_config("train.steps=6", "train.quality_every=2", "train.checkpoint_every=2",
                                         *QUICK), resume=True, progress=False)
    rows = _rows(out / "quality.csv")
    assert [int(r["step"]) for r in rows] == [2, 4, 6]
    assert float(rows[2]["seconds"]) > float(rows[1]["seconds"])  # wall-clock continues across the resume


def test_off_when_quality_every_is_0(cohort, tmp_path):
    out = tmp_path / "run"
    train(cohort, out, tiny_train_config("train.steps=2", "train.quality_every=0"), progress=False)
    assert not (out / "quality.csv").exists() and not (out / "checkpoints" / "best.pt").exists()


def test_translations_measured_in_fp32_and_deterministic(cohort):
    cfg = tiny_train_config(*QUICK)
    from xraymunit.quality import judge as J

    co = Cohort.open(cohort)
    j = J.load_or_train(co, cfg.quality.judge)
    gens, _ = build_networks(cfg)
    m = monitor.QualityMonitor(co, cfg, j, torch.device("cpu"), co.root)
    a = m.measure(gens, 1, 1.0, 2)
    b = m.measure(gens, 2, 2.0, 4)
    for key in ("a2b_success", "a2b_fd", "a2b_diversity_lpips", "a2b_content_ssim"):
        assert a[key] == pytest.approx(b[key], rel=1e-6) and math.isfinite(a[key])  # fixed inputs and styles
    assert gens.training  # measuring leaves the networks in the mode it found them


def test_time_limit_stops_with_a_checkpoint_and_a_final_measurement(cohort, tmp_path):
    out = tmp_path / "run"
    res = train(cohort, out, tiny_train_config("train.steps=1000", "train.log_every=2", "train.quality_every=500",
                                               "train.time_limit_minutes=0.0001", *QUICK), progress=False)
    assert res.steps == 2  # the first log step after the (tiny) budget
    assert checkpoint.load(out / "checkpoints" / "last.pt")["step"] == 2
    assert [int(r["step"]) for r in _rows(out / "quality.csv")] == [2]


def test_analysis_reads_quality_csv_and_the_judges(run, cohort, tmp_path):
    import shutil

    from xraymunit import analysis as xa

    out, _ = run
    pipeline_like = tmp_path / "p"
    shutil.copytree(out, pipeline_like / "train")
    table = xa.training_quality(pipeline_like)
    assert list(table["step"]) == [3, 6] and set(table["run"]) == {"train"}
    assert len(xa.training_quality_figure(out).axes) == 2 * len(quality_csv.PANELS)
    judges = xa.judges(Cohort.open(cohort))
    assert len(judges) >= 1 and judges["val_auroc"].between(0, 1).all()


def test_a_read_only_cohort_keeps_the_judge_in_the_run_folder(cohort, tmp_path, caplog):
    """Issue 23 item 7: training with quality tracking on a read-only cohort trained the judge, then crashed
    writing COHORT/judge/. Simulated so that it holds as root too (root ignores permission bits): the cohort's
    `judge` is a regular file, so COHORT/judge/<fingerprint>/ cannot be created, as on a read-only cohort."""
    import shutil

    ro = shutil.copytree(cohort, tmp_path / "cohort", ignore=shutil.ignore_patterns("judge"))
    (ro / "judge").write_text("not a folder")
    out = tmp_path / "run"
    cfg = tiny_train_config("train.steps=3", "train.quality_every=3", *QUICK)
    with caplog.at_level("WARNING", logger="xraymunit.quality.judge"):
        train(ro, out, cfg, progress=False)
    assert len(list((out / "judge").glob("*/judge.pt"))) == 1
    assert (ro / "judge").read_text() == "not a folder"
    assert len(_rows(out / "quality.csv")) == 1 and (out / "checkpoints" / "best.pt").is_file()
    assert "cannot write the cohort's judge folder" in caplog.text and str(out / "judge") in caplog.text
