"""`--threads N` on every stage reaches torch before the stage's work starts (issue 23, contention).

Each stage's first piece of work after its setup is replaced by a probe that records
torch.get_num_threads() and stops the stage with a one-line error: no stage runs for real."""

from __future__ import annotations

import pytest
import torch

from xraymunit.cli import main
from xraymunit.errors import XraymunitError


class _Probed(XraymunitError):
    pass


@pytest.fixture
def probe(monkeypatch):
    seen: list[int] = []

    def install(module, name):
        def record(*args, **kwargs):
            seen.append(torch.get_num_threads())
            raise _Probed("probe reached")
        monkeypatch.setattr(module, name, record)
    saved = torch.get_num_threads()
    torch.set_num_threads(2)
    monkeypatch.setenv("OMP_NUM_THREADS", "2")  # the automatic count, whatever the machine
    yield install, seen
    torch.set_num_threads(saved)


def _args(stage, tmp_path):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "manifest.parquet").touch()  # passes the CLI's path check before the stage: the probe stops it
    (tmp_path / "c.pt").touch()
    return {
        "ingest": ["ingest", str(tmp_path / "in"), "--out", str(tmp_path / "cohort")],
        "train": ["train", "--cohort", str(tmp_path / "in"), "--out", str(tmp_path / "run")],
        "synthesize": ["synthesize", "--checkpoint", str(tmp_path / "c.pt"), "--cohort", str(tmp_path / "in"),
                       "--out", str(tmp_path / "synth")],
        "evaluate": ["evaluate", "--cohort", str(tmp_path / "in"), "--out", str(tmp_path / "report")],
        "pipeline": ["pipeline", "--out", str(tmp_path / "pipe")],
    }[stage]


def _probe_point(stage):
    """Where each stage's work starts, after it has set its threads."""
    if stage == "ingest":
        from xraymunit.ingestion import stage as module
        return module, "discover"
    if stage == "train":
        from xraymunit.training import stage as module
        return module, "plan"
    if stage == "synthesize":
        from xraymunit.synthesis import stage as module
        return module, "prepare"
    if stage == "evaluate":
        from xraymunit.evaluation import stage as module
        return module, "plan_study"
    import importlib

    return importlib.import_module("xraymunit.pipeline.run"), "_run"  # the module (the package exports run())


@pytest.mark.parametrize("stage", ["ingest", "train", "synthesize", "evaluate", "pipeline"])
@pytest.mark.parametrize("threads", [1, None])
def test_threads_reach_torch_in_every_stage(stage, threads, probe, tmp_path, capsys):
    install, seen = probe
    install(*_probe_point(stage))
    rc = main(_args(stage, tmp_path) + ([] if threads is None else ["--threads", str(threads)]))
    assert "probe reached" in capsys.readouterr().err and rc == 2
    assert seen == [threads or 2]  # --threads 1, or the automatic rule (here OMP_NUM_THREADS=2)


def test_a_stage_inside_the_pipeline_keeps_its_threads(probe, tmp_path, capsys):
    """The pipeline calls the stages with no thread request: they keep the pipeline's --threads."""
    from xraymunit.ingestion import stage

    install, seen = probe
    install(stage, "discover")  # reached inside the pipeline's real ingest stage, after its apply_threads
    rc = main(["pipeline", "--out", str(tmp_path / "pipe"), "--threads", "1"])
    assert rc == 2 and "probe reached" in capsys.readouterr().err
    assert seen == [1]


@pytest.mark.parametrize("value", ["0", "-2"])
def test_a_thread_count_below_one_is_one_line(value, tmp_path, capsys):
    (tmp_path / "manifest.parquet").touch()  # a cohort as far as the CLI's path check can tell
    rc = main(["train", "--cohort", str(tmp_path), "--out", str(tmp_path / "run"), "--threads", value])
    err = capsys.readouterr().err
    assert rc == 2 and "--threads must be a positive integer" in err and "Traceback" not in err
