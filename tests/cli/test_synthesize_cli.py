import pytest
from helpers.evaluate_data import write_cohort
from helpers.training import tiny_train_config

from xraymunit.cli import main
from xraymunit.train import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth-cli")
    cohort = write_cohort(root / "cohort", n_patients=10, size=64)
    return cohort, train(cohort, root / "run", tiny_train_config("train.steps=3"), show_progress=False).checkpoint


def test_synthesize_in_process(trained, tmp_path, capsys):
    cohort, ckpt = trained
    out = tmp_path / "s"
    code = main(["synthesize", "--checkpoint", str(ckpt), "--cohort", str(cohort), "--out", str(out),
                 "--n-styles", "3", "--limit", "2", "--format", "both", "--no-progress"])
    assert code == 0
    assert "6 synthetic images" in capsys.readouterr().out
    assert len(list(out.rglob("*.png"))) == 6 and len(list(out.rglob("*.dcm"))) == 6


@pytest.mark.parametrize("args, message", [
    (["--checkpoint", "MISSING"], "checkpoint not found"),
    (["--interpolate", "1"], "--interpolate K needs K >= 2"),
    (["--n-styles", "0"], "must be >= 1"),
    (["--render-threads", "0"], "--render-threads must be at least 1"),
    (["--device", "cuda"], "CUDA is not available"),
])
def test_bad_arguments_exit_2(trained, tmp_path, capsys, args, message):
    cohort, ckpt = trained
    base = {"--checkpoint": str(ckpt), "--cohort": str(cohort), "--out": str(tmp_path / "s")}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    argv = ["synthesize", "--no-progress"] + [x for kv in base.items() for x in kv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err
