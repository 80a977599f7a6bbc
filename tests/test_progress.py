"""Progress without a terminal: a periodic log line (done/total, rate, ETA) instead of silence."""

import logging
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from xraymunit import config
from xraymunit.progress import EVERY_ENV, ProgressLog, every_seconds, progress


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_one_line_per_period_with_rate_eta_and_the_latest_numbers(caplog):
    clock = FakeClock()
    caplog.set_level(logging.INFO, logger="xraymunit.progress")
    bar = progress(100, "train", "it", bar=False, clock=clock, every_s=30)
    for _ in range(100):
        clock.now += 1.0  # one step a second
        bar.update(1)
        bar.set_postfix(g="1.250", d="0.500")
    bar.close()
    lines = [r.getMessage() for r in caplog.records]
    assert len(lines) == 4  # at 30, 60, 90 s and the closing line at 100 s
    assert lines[0] == "train: 30/100 it (30%), 1.00 it/s, ETA 1m10s; g=1.250, d=0.500"
    assert lines[-1] == "train: 100/100 it (100%), 1.00 it/s, in 1m40s; g=1.250, d=0.500"


def test_a_resumed_run_counts_its_rate_from_where_it_started(caplog):
    clock = FakeClock()
    caplog.set_level(logging.INFO, logger="xraymunit.progress")
    bar = ProgressLog(1000, "train", "it", initial=900, clock=clock, every_s=10)
    clock.now = 10.0
    bar.update(20)
    assert caplog.records[-1].getMessage() == "train: 920/1000 it (92%), 2.00 it/s, ETA 40s"


def test_quiet_when_short_when_asked_or_on_other_ranks(caplog):
    clock = FakeClock()
    caplog.set_level(logging.INFO, logger="xraymunit.progress")
    with progress(10, "short", bar=False, clock=clock, every_s=30) as bar:
        clock.now = 29.0
        bar.update(10)
    with progress(10, "rank 1", bar=False, lines=False, clock=clock, every_s=1) as bar:
        clock.now += 100
        bar.update(10)
    assert caplog.records == []


def test_slow_rates_and_the_period_from_the_environment(monkeypatch, caplog):
    clock = FakeClock()
    bar = ProgressLog(0, "evaluate", "run", clock=clock)
    clock.now = 120.0
    bar.update(1)
    assert bar.line() == "evaluate: 1 run, 0.50 run/min, ETA ?"
    monkeypatch.setenv(EVERY_ENV, "5")
    assert every_seconds() == 5.0
    for bad in ("0", "-3", "soon", "inf"):
        monkeypatch.setenv(EVERY_ENV, bad)
        with caplog.at_level("WARNING", logger="xraymunit.progress"):
            assert every_seconds() == 30.0
        assert f"{EVERY_ENV}={bad!r} is not a positive number of seconds" in caplog.text


def test_a_bar_on_a_terminal():
    from tqdm.auto import tqdm

    with progress(3, "x", bar=True, disable=True) as bar:
        assert isinstance(bar, tqdm)


# Every long stage logs such lines when its bars are off: counted on tiny runs, a line per update.

@pytest.fixture
def every_update(monkeypatch, caplog):
    monkeypatch.setenv(EVERY_ENV, "1e-9")
    caplog.set_level(logging.INFO, logger="xraymunit.progress")

    def lines(prefix):
        return [r.getMessage() for r in caplog.records if r.name == "xraymunit.progress"
                and r.getMessage().startswith(prefix)]
    return lines


def test_ingest_logs_progress(tmp_path, every_update):
    from xraymunit.ingestion import ingest

    src = tmp_path / "normal"
    src.mkdir()
    for i in range(3):
        Image.fromarray(np.full((64, 64), 40 * i, np.uint8)).save(src / f"{i}.png")
    ingest(tmp_path, tmp_path / "cohort", size=32, progress=False)
    assert len(every_update("ingest: headers: ")) >= 3 and len(every_update("ingest: decode")) >= 3
    assert every_update("ingest: headers: ")[0].startswith("ingest: headers: 1/3 file (33%)")


def test_train_and_synthesize_log_progress(tiny, tmp_path, every_update):
    from helpers.training import tiny_train_config
    from xraymunit.synthesis import synthesize
    from xraymunit.training import train

    cohort, ckpt = tiny
    cfg = tiny_train_config("data.load_size=32", "data.crop_size=32", "train.steps=2",
                            "train.quality_every=0", "train.shortcut_test=false")
    train(cohort, tmp_path / "run", cfg, progress=False)
    assert [line.split(",")[0] for line in every_update("train: ")][:2] == ["train: 1/2 it (50%)", "train: 2/2 it (100%)"]
    synthesize(ckpt, cohort, tmp_path / "s", n_styles=1, limit=2, progress=False)
    assert len(every_update("synthesize: ")) >= 2


def test_evaluate_logs_progress(tiny, tmp_path, every_update):
    from xraymunit.config.evaluate import EvaluateConfig
    from xraymunit.evaluation.stage import evaluate

    tiny_yaml = Path(__file__).resolve().parents[1] / "configs" / "evaluate_tiny.yaml"
    cfg = config.load(EvaluateConfig, tiny_yaml, ["progress=false", "seeds=1", "arms=[real]", "classifier.steps=3",
                                                  "classifier.image_size=32", "quality.enabled=false"])
    evaluate(tiny[0], None, tmp_path / "report", cfg)
    assert len(every_update("evaluate: training: ")) >= 3


def test_the_cli_with_stderr_redirected_logs_progress_lines(tmp_path):
    """No terminal (a batch job): the bars are off and the log carries the progress instead."""
    import os
    import subprocess
    import sys

    src = tmp_path / "in" / "normal"
    src.mkdir(parents=True)
    for i in range(2):
        Image.fromarray(np.full((64, 64), 50 * i, np.uint8)).save(src / f"{i}.png")
    with open(tmp_path / "stderr.txt", "w") as err:
        subprocess.run([sys.executable, "-m", "xraymunit", "ingest", str(tmp_path / "in"), "--out",
                        str(tmp_path / "cohort"), "--size", "32"], stderr=err, stdout=subprocess.DEVNULL,
                       env={**os.environ, EVERY_ENV: "1e-9"}, check=True, timeout=120)
    log = (tmp_path / "stderr.txt").read_text()
    assert "xraymunit.progress: ingest: headers: 2/2 file (100%)" in log
    assert "\r" not in log  # no bar redrawn into the file
