"""The generic stage: skip when up to date, set aside outputs made from other settings, resume after a crash."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from xraymunit.pipeline import RunLayout, Stage, State, run_stage
from xraymunit.stopping import Stopped


class Work:
    """A stage's work that writes `folder/out.txt` and counts its calls (or fails when told to)."""

    def __init__(self, folder: Path, fail: bool = False):
        self.folder, self.fail, self.calls = folder, fail, 0

    def __call__(self) -> str:
        self.calls += 1
        if self.fail:
            raise RuntimeError("power cut")
        self.folder.mkdir(parents=True, exist_ok=True)
        (self.folder / "out.txt").write_text(f"call {self.calls}")
        return f"call {self.calls}"


def stage(tmp_path: Path, work: Work, fp: str = "fp1", **kwargs) -> Stage:
    folder = tmp_path / "things"
    return Stage("things", 2, fp, folder / "out.txt", folder, lambda: "→ things", work, **kwargs)


def test_second_run_with_the_same_fingerprint_is_skipped(tmp_path, caplog):
    caplog.set_level("INFO", logger="xraymunit.pipeline")
    work = Work(tmp_path / "things")
    assert run_stage(State(tmp_path), stage(tmp_path, work)) is True
    assert run_stage(State(tmp_path), stage(tmp_path, work)) is False
    assert work.calls == 1
    entry = json.loads((tmp_path / "pipeline_state.json").read_text())["things"]
    assert entry["status"] == "done" and entry["fingerprint"] == "fp1" and "seconds" in entry
    assert "[2/4] things done in" in caplog.text and "[2/4] things: up to date" in caplog.text


def test_missing_output_reruns_even_when_the_state_says_done(tmp_path):
    work = Work(tmp_path / "things")
    run_stage(State(tmp_path), stage(tmp_path, work))
    (tmp_path / "things" / "out.txt").unlink()
    assert run_stage(State(tmp_path), stage(tmp_path, work)) is True and work.calls == 2


def test_a_crash_leaves_running_and_the_rerun_resumes_in_place(tmp_path):
    with pytest.raises(RuntimeError, match="power cut"):
        run_stage(State(tmp_path), stage(tmp_path, Work(tmp_path / "things", fail=True)))
    assert json.loads((tmp_path / "pipeline_state.json").read_text())["things"]["status"] == "running"
    (tmp_path / "things").mkdir()
    (tmp_path / "things" / "partial").write_text("kept for the resume")
    run_stage(State(tmp_path), stage(tmp_path, Work(tmp_path / "things")))
    assert (tmp_path / "things" / "partial").is_file()  # same settings: resumed, not set aside
    assert not (tmp_path / "things.previous").exists()


def test_changed_settings_move_old_outputs_aside(tmp_path):
    run_stage(State(tmp_path), stage(tmp_path, Work(tmp_path / "things")))
    run_stage(State(tmp_path), stage(tmp_path, Work(tmp_path / "things"), fp="fp2"))
    assert (tmp_path / "things.previous" / "out.txt").read_text() == "call 1"
    assert json.loads((tmp_path / "pipeline_state.json").read_text())["things"]["fingerprint"] == "fp2"


def test_every_change_of_settings_keeps_every_previous_output(tmp_path):
    """Issue 23 item 5: a second change of settings used to delete <stage>.previous/ (a cohort's
    salt, a training run). Three changes keep three earlier outputs, numbered, contents intact."""
    for n, fp in enumerate(("fp1", "fp2", "fp3", "fp4"), 1):
        run_stage(State(tmp_path), stage(tmp_path, Work(tmp_path / "things"), fp=fp))
        (tmp_path / "things" / "made_by").write_text(fp)
    kept = {p.name: (p / "made_by").read_text() for p in tmp_path.glob("things.previous*")}
    assert kept == {"things.previous": "fp1", "things.previous.2": "fp2", "things.previous.3": "fp3"}
    assert (tmp_path / "things" / "made_by").read_text() == "fp4"
    assert RunLayout.next_previous(tmp_path / "things") == tmp_path / "things.previous.4"


@pytest.mark.parametrize("message, kept", [
    ("SIGTERM at step 3 of 40; saved run/checkpoints/last.pt (step 3); rerun with --resume to continue",
     "SIGTERM at step 3 of 40; saved run/checkpoints/last.pt (step 3)"),
    ("SIGTERM: ingest stopped in the decode pass after 2 of 9 files; everything journalled is kept — rerun the "
     "same command to resume", "SIGTERM: ingest stopped in the decode pass after 2 of 9 files; everything "
                               "journalled is kept"),
    ("SIGTERM: 1 of 4 classifier run(s) finished and kept in report/runs; rerun the same command to resume",
     "SIGTERM: 1 of 4 classifier run(s) finished and kept in report/runs"),
    ("12 new images written to synth (12 listed in its manifest); rerun the same command to resume",
     "12 new images written to synth (12 listed in its manifest)"),
])
def test_a_stopped_stage_gives_the_pipelines_advice(tmp_path, message, kept):
    """Issue 23 item 15: each stage's own advice ("rerun with --resume") is replaced by the pipeline's."""
    def stopped():
        raise Stopped(message)

    with pytest.raises(Stopped) as exc:
        run_stage(State(tmp_path), stage(tmp_path, stopped))
    assert str(exc.value) == (f"[2/4] things stopped: {kept}; its progress is kept — rerun the same pipeline command "
                              f"to resume (finished stages are skipped)")
    assert json.loads((tmp_path / "pipeline_state.json").read_text())["things"]["status"] == "running"


def test_core_fingerprint_lets_a_longer_run_continue(tmp_path):
    run_stage(State(tmp_path), stage(tmp_path, Work(tmp_path / "things"), core="c1"))
    run_stage(State(tmp_path), stage(tmp_path, Work(tmp_path / "things"), fp="fp2", core="c1"))
    assert not (tmp_path / "things.previous").exists()
    run_stage(State(tmp_path), stage(tmp_path, Work(tmp_path / "things"), fp="fp3", core="c2"))
    assert (tmp_path / "things.previous").is_dir()
    assert json.loads((tmp_path / "pipeline_state.json").read_text())["things"]["core"] == "c2"


def test_unknown_existing_outputs_are_set_aside_only_when_asked(tmp_path):
    (tmp_path / "things").mkdir()
    (tmp_path / "things" / "foreign").write_text("x")
    run_stage(State(tmp_path), stage(tmp_path, Work(tmp_path / "things"), aside="stale"))
    assert (tmp_path / "things" / "foreign").is_file()
    other = tmp_path / "other"
    other.mkdir()
    (other / "things").mkdir()
    (other / "things" / "foreign").write_text("x")
    run_stage(State(other), stage(other, Work(other / "things"), aside="unknown"))
    assert (other / "things.previous" / "foreign").is_file() and not (other / "things" / "foreign").exists()


def test_never_set_aside(tmp_path):
    run_stage(State(tmp_path), stage(tmp_path, Work(tmp_path / "things"), aside="never"))
    run_stage(State(tmp_path), stage(tmp_path, Work(tmp_path / "things"), fp="fp2", aside="never"))
    assert not (tmp_path / "things.previous").exists()


def test_run_layout_spells_the_run_folder(tmp_path):
    layout = RunLayout(tmp_path)
    assert layout.cohort == tmp_path / "cohort" and layout.report == tmp_path / "report"
    assert layout.train() == tmp_path / "train" and layout.train("10") == tmp_path / "train_10"
    assert layout.synth() == tmp_path / "synth" and layout.synth("all") == tmp_path / "synth_all"
    assert layout.summary == tmp_path / "report" / "summary.md" and layout.metrics.name == "metrics.json"
    assert layout.state.name == "pipeline_state.json" and layout.log.name == "pipeline.log"
    assert RunLayout.last_checkpoint(layout.train()) == tmp_path / "train" / "checkpoints" / "last.pt"
    assert RunLayout.previous(layout.synth()) == tmp_path / "synth.previous"
    (tmp_path / "train_5").mkdir()
    (tmp_path / "train_all").mkdir()
    (tmp_path / "train_all.previous").mkdir()  # set aside: not a training run of this pipeline
    (tmp_path / "train_all.previous.2").mkdir()
    assert layout.training_runs() == [tmp_path / "train", tmp_path / "train_5", tmp_path / "train_all"]
