import pytest
from helpers.evaluate_data import write_cohort
from helpers.training import tiny_train_config

from xraymunit.cli import main
from xraymunit.training import train


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("synth-cli")
    cohort = write_cohort(root / "cohort", n_patients=10, size=64)
    return cohort, train(cohort, root / "run", tiny_train_config("train.steps=3"), progress=False).checkpoint


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
    (["--n-styles", "1001"], "--n-styles must be >= 1 and at most 1000, got 1001"),
    (["--limit", "-1"], "--limit must be >= 1 (omit it for every source image), got -1"),
    (["--limit", "0"], "--limit must be >= 1"),
])
def test_bad_arguments_exit_2(trained, tmp_path, capsys, args, message):
    cohort, ckpt = trained
    base = {"--checkpoint": str(ckpt), "--cohort": str(cohort), "--out": str(tmp_path / "s")}
    for i in range(0, len(args), 2):
        base[args[i]] = args[i + 1]
    argv = ["synthesize", "--no-progress"] + [x for kv in base.items() for x in kv]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


# --------------------------------------------------------------------------- owning --out (issue 13: 1, 4, 7)


def _synth_argv(trained, out, *extra):
    cohort, ckpt = trained
    return ["synthesize", "--checkpoint", str(ckpt), "--cohort", str(cohort), "--out", str(out),
            "--n-styles", "3", "--limit", "2", "--no-progress", *extra]


def test_a_second_run_into_a_busy_folder_refuses_in_one_line(trained, tmp_path, capsys):
    from helpers.locks import held_elsewhere

    out = tmp_path / "s"
    with held_elsewhere(out, "synthesize") as holder:
        assert main(_synth_argv(trained, out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and str(out) in err and f"synthesize, pid {holder.pid}" in err
    assert not list(out.rglob("*.png"))


def test_disk_full_writing_pngs_is_one_line_and_the_rerun_resumes(trained, tmp_path, capsys, monkeypatch):
    from helpers.disk import disk_full

    written = []

    def full_after_two(path):
        if path.suffix != ".png":
            return False
        written.append(path)
        return len(written) > 2

    out = tmp_path / "s"
    with disk_full(monkeypatch, full_after_two):
        assert main(_synth_argv(trained, out)) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "no space left on device writing" in err and str(out) in err
    assert len(list(out.rglob("*.png"))) == 2 and not list(out.rglob(".*.tmp*"))
    assert main(_synth_argv(trained, out)) == 0
    assert "2 already there" in capsys.readouterr().out
    assert len(list(out.rglob("*.png"))) == 6


def test_a_planted_images_link_is_refused(trained, tmp_path, capsys):
    out, outside = tmp_path / "s", tmp_path / "outside"
    assert main(_synth_argv(trained, out, "--n-styles", "1")) == 0
    capsys.readouterr()
    key_dir = next((out / "images").iterdir())
    for png in key_dir.iterdir():
        png.unlink()
    key_dir.rmdir()
    outside.mkdir()
    key_dir.symlink_to(outside)  # images/<key> → a folder outside --out
    assert main(_synth_argv(trained, out, "--n-styles", "1")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and key_dir.name in err and "symbolic link" in err
    assert list(outside.iterdir()) == []


def test_out_an_existing_file_is_one_line(trained, tmp_path, capsys):
    (tmp_path / "f").write_text("x")
    assert main(_synth_argv(trained, tmp_path / "f")) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "exists and is not a folder" in err
    assert (tmp_path / "f").read_text() == "x"


def test_a_falsified_checkpoint_is_exit_2_and_one_stderr_line(trained, tmp_path):
    """The installed command, as a user runs it: no traceback, no size-mismatch dump (issue 13: 6)."""
    import subprocess
    import sys

    import torch

    cohort, ckpt = trained
    for name, change in [("n_res", lambda s: s["model"].update(n_res=1e9)),
                         ("dim", lambda s: s["model"].update(dim=12))]:
        state = torch.load(ckpt, weights_only=True)
        change(state)
        bad = tmp_path / f"{name}.pt"
        torch.save(state, bad)
        proc = subprocess.run([sys.executable, "-m", "xraymunit", "synthesize", "--checkpoint", str(bad),
                               "--cohort", str(cohort), "--out", str(tmp_path / f"s_{name}"), "--no-progress"],
                              capture_output=True, text=True, timeout=300)
        lines = [line for line in proc.stderr.splitlines() if line.strip()]
        assert proc.returncode == 2 and len(lines) == 1, proc.stderr
        assert lines[0].startswith("xraymunit synthesize: error: ") and str(bad) in lines[0]
        assert ("model.n_res = 1000000000" if name == "n_res" else "has shape") in lines[0]


# --------------------------------------------------------------------------- options declared once (issue 14)


def _synth_parser():
    from xraymunit.cli import build_parser

    parser = build_parser()
    sub = next(a for a in parser._actions if a.dest == "command")
    return sub.choices["synthesize"]


def test_every_flag_is_a_field_of_synthesize_options():
    import dataclasses

    from xraymunit.synthesis.options import SynthesizeOptions

    dests = {a.dest for a in _synth_parser()._actions} - {"help", "verbose", "quiet", "log_file"}
    assert dests == {f.name for f in dataclasses.fields(SynthesizeOptions)}
    required = {a.dest for a in _synth_parser()._actions if a.required}
    assert required == {"checkpoint", "cohort", "out"}


def test_help_has_an_example_and_the_exit_codes(capsys):
    from xraymunit.cli import EXIT_CODES_HELP

    with pytest.raises(SystemExit):
        main(["synthesize", "--help"])
    text = capsys.readouterr().out
    assert "xraymunit synthesize --checkpoint" in text and "torchrun --nproc_per_node" in text
    assert EXIT_CODES_HELP.split()[0] in text and "143" in text
    assert "(default: 20)" in text  # from the field's default


def test_cli_and_api_build_the_same_options(tmp_path):
    from xraymunit.options import from_args
    from xraymunit.synthesis.options import SynthesizeOptions

    args = _synth_parser().parse_args(["--checkpoint", "c.pt", "--cohort", "co", "--out", "o", "--format", "both",
                                       "--reference", "r1.png", "r2.png", "--no-progress", "--n-styles", "5"])
    opts = from_args(SynthesizeOptions, args)
    assert opts == SynthesizeOptions("c.pt", "co", "o", n_styles=5, formats=("png", "dicom"),
                                     references=["r1.png", "r2.png"], progress=False)
    assert SynthesizeOptions("c", "co", "o").progress is None  # automatic: a bar only on a terminal
