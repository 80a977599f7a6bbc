import pytest
from helpers.evaluate_data import write_cohort
from helpers.training import FAST, REPO, TINY

from xraymunit.cli import main


@pytest.fixture(scope="module")
def cohort(tmp_path_factory):
    return write_cohort(tmp_path_factory.mktemp("cohort"), n_patients=12, size=64)


def _sets(*extra):
    args = []
    for item in [*FAST, *extra]:
        args += ["--set", item]
    return args


def test_train_then_resume_in_process(cohort, tmp_path, capsys):
    out = tmp_path / "run"
    code = main(["train", "--config", str(TINY), "--cohort", str(cohort), "--out", str(out), "--no-progress",
                 *_sets("train.steps=2")])
    assert code == 0
    assert "trained to step 2" in capsys.readouterr().out
    code = main(["train", "--cohort", str(cohort), "--out", str(out), "--resume", "--no-progress",
                 "--set", "train.steps=3"])
    assert code == 0
    assert "trained to step 3" in capsys.readouterr().out


@pytest.mark.parametrize("args, message", [
    (["--set", "model.dimm=3"], "unknown config key 'model.dimm' (did you mean 'model.dim'?)"),
    (["--set", "optim.lr=0"], "'optim.lr' must be > 0"),
    (["--set", "data.crop_size=62"], "'data.crop_size' must be divisible by"),
    (["--resume"], "no checkpoint"),
    (["--device", "cuda:3"], "CUDA is not available"),
])
def test_bad_usage_exits_2_with_one_line(cohort, tmp_path, capsys, args, message):
    code = main(["train", "--config", str(TINY), "--cohort", str(cohort), "--out", str(tmp_path / "r"),
                 "--no-progress", "--set", "train.steps=1", *args])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and err.count("\n") == 1


def test_missing_cohort(tmp_path, capsys):
    assert main(["train", "--cohort", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 2
    assert "xraymunit ingest" in capsys.readouterr().err


# --------------------------------------------------------------------------- owning --out (issue 13: 1, 4, 7)


def _train_argv(cohort, out, *extra):
    return ["train", "--config", str(TINY), "--cohort", str(cohort), "--out", str(out), "--no-progress",
            *_sets("train.steps=2", *extra)]


def test_a_second_run_into_a_busy_folder_refuses_in_one_line(cohort, tmp_path, capsys):
    from helpers.locks import held_elsewhere

    out = tmp_path / "run"
    with held_elsewhere(out, "train") as holder:
        assert main(_train_argv(cohort, out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("xraymunit train: error:")
    assert str(out) in err and f"train, pid {holder.pid}" in err
    assert not (out / "checkpoints").exists()


def test_disk_full_writing_a_checkpoint_is_one_line_and_the_rerun_completes(cohort, tmp_path, capsys, monkeypatch):
    from helpers.disk import disk_full
    from xraymunit import checkpoint

    out = tmp_path / "run"
    with disk_full(monkeypatch, lambda path: path.name.startswith(".last.pt.")):
        assert main(_train_argv(cohort, out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no space left on device writing" in err and str(out) in err
    assert not list((out / "checkpoints").glob("*.pt*"))  # nothing half-written
    assert main(_train_argv(cohort, out)) == 0, capsys.readouterr().err
    assert checkpoint.load(out / "checkpoints" / "last.pt")["step"] == 2


def test_a_planted_checkpoints_link_is_refused(cohort, tmp_path, capsys):
    out, outside = tmp_path / "run", tmp_path / "outside"
    outside.mkdir()
    out.mkdir()
    (out / "checkpoints").symlink_to(outside)
    assert main(_train_argv(cohort, out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "checkpoints" in err and "symbolic link" in err
    assert list(outside.iterdir()) == []


# --------------------------------------------------------------------------- SIGTERM (issue 14)


def _metrics_steps(out):
    import csv

    path = out / "metrics.csv"
    if not path.is_file():
        return []
    with open(path, newline="") as fh:
        return [int(r["step"]) for r in csv.DictReader(fh) if r.get("step")]


def test_sigterm_finishes_the_step_saves_last_pt_exits_143_and_resume_completes(cohort, tmp_path, capsys):
    import os
    import re
    import signal
    import subprocess
    import sys
    import time

    from xraymunit import checkpoint

    out = tmp_path / "run"
    argv = [sys.executable, "-m", "xraymunit", *_train_argv(cohort, out, "train.steps=100000",
                                                            "train.checkpoint_every=100000")]
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
    proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=REPO)
    try:
        deadline = time.monotonic() + 300
        while not _metrics_steps(out) or max(_metrics_steps(out)) < 2:  # a few steps done, none saved
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()[1][-2000:]
            time.sleep(0.2)
        seen = max(_metrics_steps(out))
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 143, err[-2000:]
    lines = [line for line in err.splitlines() if "stopped:" in line]
    assert len(lines) == 1 and lines[0].startswith("xraymunit train: stopped: SIGTERM at step "), err[-2000:]
    step = int(re.search(r"at step (\d+) of 100000", lines[0]).group(1))
    assert "--resume" in lines[0] and str(out / "checkpoints" / "last.pt") in lines[0]
    assert step >= seen > 0
    assert checkpoint.load(out / "checkpoints" / "last.pt")["step"] == step  # the stop saved it: no periodic one
    assert not list((out / "checkpoints").glob("step_*.pt")) and max(_metrics_steps(out)) == step
    assert not list(out.rglob("*.tmp*"))  # written atomically, nothing half-written

    code = main(["train", "--cohort", str(cohort), "--out", str(out), "--resume", "--no-progress",
                 "--set", f"train.steps={step + 2}"])
    assert code == 0 and f"trained to step {step + 2}" in capsys.readouterr().out
    assert _metrics_steps(out) == list(range(1, step + 3))  # each step logged once across the two sittings


def test_a_lock_file_that_is_a_folder_is_one_line_exit_2(cohort, tmp_path, capsys):
    """The lock code is shared by every stage: train refuses as ingest does (tests/io/test_outdir.py)."""
    out = tmp_path / "run"
    (out / ".xraymunit.lock").mkdir(parents=True)
    assert main(_train_argv(cohort, out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("xraymunit train: error:") and "is a folder" in err
    assert not (out / "checkpoints").exists()
