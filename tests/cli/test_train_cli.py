import pytest
from helpers.evaluate_data import write_cohort
from helpers.training import FAST, TINY

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
