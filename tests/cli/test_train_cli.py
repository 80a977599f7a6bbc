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
