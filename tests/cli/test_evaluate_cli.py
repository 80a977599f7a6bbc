"""`xraymunit evaluate` in-process: help, a real run, and one-line user errors (exit 2)."""

import json
from pathlib import Path

import pytest

from helpers.evaluate_data import write_cohort, write_synthetic
from xraymunit.cli import main

TINY = str(Path(__file__).resolve().parents[2] / "configs" / "evaluate_tiny.yaml")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli")
    cohort = write_cohort(root / "cohort", n_patients=40, size=32, seed=5)
    return cohort, write_synthetic(root / "synth", cohort, n_styles=2)


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["evaluate", "--help"])
    assert exc.value.code == 0
    text = capsys.readouterr().out
    for opt in ("--cohort", "--synthetic", "--out", "--config", "--real-abnormal", "--seeds", "--set",
                "--device", "--no-progress", "--fresh"):
        assert opt in text
    assert "real + classical augmentation" in text and "never trained on" in text
    assert "examples:" in text and "--workers 4" in text and "torchrun --nproc_per_node" in text
    assert "143 stopped by SIGTERM" in " ".join(text.split())  # EXIT_CODES_HELP


def _evaluate_parser():
    from xraymunit.cli import build_parser

    return build_parser()._subparsers._group_actions[0].choices["evaluate"]


def test_every_flag_is_a_field_declared_once():
    from xraymunit.config.evaluate import EvaluateConfig, EvaluateInputs
    from xraymunit.options import cli_fields

    declared = [f for cls in (EvaluateInputs, EvaluateConfig) for f in cli_fields(cls)]
    fields = {f.name: f for f in declared}
    assert len(fields) == len(declared)  # no flag declared twice
    dests = {a.dest for a in _evaluate_parser()._actions if a.option_strings} - {"help", "verbose", "quiet", "log_file"}
    assert dests == set(fields), dests ^ set(fields)
    for dest in dests:
        assert fields[dest].metadata["help"], dest  # the help text lives in the field


def test_config_file_values_stand_unless_a_flag_is_given(tmp_path):
    from xraymunit.cli.evaluate import build_config

    parser = _evaluate_parser()
    base = ["--cohort", "c", "--out", "o", "--config", TINY]
    cfg = build_config(parser.parse_args(base))
    assert (cfg.seeds, cfg.real_abnormal, cfg.device, cfg.progress, cfg.workers) == (2, (5, "all"), "auto", None, 1)
    cfg = build_config(parser.parse_args([*base, "--set", "seeds=4", "--seeds", "3", "--real-abnormal", "7,all",
                                          "--no-progress", "--workers", "2", "--device", "cpu"]))
    assert (cfg.seeds, cfg.real_abnormal, cfg.device, cfg.progress, cfg.workers) == (3, (7, "all"), "cpu", False, 2)
    assert build_config(parser.parse_args([*base, "--set", "seeds=4"])).seeds == 4


def test_cli_runs_end_to_end(data, tmp_path, capsys):
    cohort, synth = data
    out = tmp_path / "report"
    rc = main(["evaluate", "--cohort", str(cohort), "--synthetic", str(synth), "--out", str(out),
               "--config", TINY, "--real-abnormal", "3,all", "--seeds", "1", "--no-progress",
               "--set", "classifier.steps=10", "--set", "arms=[real, synthetic]", "--device", "cpu"])
    assert rc == 0
    m = json.loads((out / "metrics.json").read_text())
    assert m["config"]["seeds"] == 1 and m["config"]["classifier"]["steps"] == 10
    assert [lv["name"] for lv in m["levels"]] == ["3", "all"] and m["arms"] == ["real", "synthetic"]
    printed = capsys.readouterr().out
    assert "summary.md" in printed and "Δ AUROC" in printed
    assert "intensity_control, duplicate_real not run" in printed  # the answer says which controls are missing


@pytest.mark.parametrize("extra, message", [
    (["--set", "classifier.stepz=3"], "did you mean 'classifier.steps'"),
    (["--real-abnormal", "ten,all"], "positive integers or 'all'"),
    (["--real-abnormal", "0"], "positive integers or 'all'"),
    (["--seeds", "0"], "seeds"),
    (["--workers", "0"], "workers"),
    (["--device", "tpu"], "device"),
    (["--set", "arms=[real, gan]"], "unknown arm"),
])
def test_bad_options_exit_2_with_one_line(data, tmp_path, capsys, extra, message):
    cohort, synth = data
    rc = main(["evaluate", "--cohort", str(cohort), "--synthetic", str(synth), "--out", str(tmp_path / "r"),
               "--config", TINY, "--no-progress", *extra])
    err = capsys.readouterr().err.strip()
    assert rc == 2 and message in err and len(err.splitlines()) == 1


def test_missing_folders_exit_2(tmp_path, capsys):
    rc = main(["evaluate", "--cohort", str(tmp_path / "nope"), "--out", str(tmp_path / "r"), "--config", TINY])
    err = capsys.readouterr().err
    assert rc == 2 and "is not a cohort folder" in err and "xraymunit ingest" in err


def test_missing_synthetic_folder_exit_2(data, tmp_path, capsys):
    cohort, _ = data
    rc = main(["evaluate", "--cohort", str(cohort), "--synthetic", str(tmp_path / "none"),
               "--out", str(tmp_path / "r"), "--config", TINY])
    assert rc == 2 and "not a synthetic folder" in capsys.readouterr().err


# --------------------------------------------------------------------------- owning --out (issue 13: 1, 7)


def _eval_argv(data, out):
    cohort, synth = data
    return ["evaluate", "--cohort", str(cohort), "--synthetic", str(synth), "--out", str(out), "--config", TINY,
            "--real-abnormal", "all", "--seeds", "1", "--no-progress", "--set", "classifier.steps=5",
            "--set", "arms=[real, synthetic]", "--set", "quality.enabled=false", "--device", "cpu"]


def test_a_second_run_into_a_busy_folder_refuses_in_one_line(data, tmp_path, capsys):
    from helpers.locks import held_elsewhere

    out = tmp_path / "report"
    with held_elsewhere(out, "evaluate") as holder:
        assert main(_eval_argv(data, out)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and str(out) in err and f"evaluate, pid {holder.pid}" in err
    assert not (out / "metrics.json").exists()


def test_disk_full_writing_the_report_is_one_line_and_the_rerun_reuses_the_runs(data, tmp_path, capsys, monkeypatch):
    from helpers.disk import disk_full

    out = tmp_path / "report"
    with disk_full(monkeypatch, lambda path: path.name.startswith(".metrics.json.")):
        assert main(_eval_argv(data, out)) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "no space left on device writing" in err and str(out) in err
    assert not (out / "metrics.json").exists()
    assert main(_eval_argv(data, out)) == 0
    assert json.loads((out / "metrics.json").read_text())["config"]["seeds"] == 1


def test_device_defaults_to_auto_like_the_other_stages():
    from xraymunit.cli.evaluate import build_config

    cfg = build_config(_evaluate_parser().parse_args(["--cohort", "c", "--out", "o"]))  # built-in defaults
    assert cfg.device == "auto"
