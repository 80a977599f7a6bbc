"""The README's main job, end to end (slow: it trains the tiny model of the default config)."""

import json
import sys

import pandas as pd
import pytest

from conftest import REPO
from xraymunit import checkpoint

pytestmark = pytest.mark.slow


def test_default_pipeline_produces_every_stage_output(default_run):
    out = default_run
    manifest = pd.read_parquet(out / "cohort" / "manifest.parquet")
    ok = manifest[manifest["status"] == "ok"]
    assert len(ok) == 60 and set(ok["label"]) == {"normal", "abnormal"}
    assert set(ok["source_dataset"]) == {"nih_chestxray14"}
    assert (out / "train" / "checkpoints" / "last.pt").is_file()
    assert any((out / "train" / "samples").glob("a2b_*.png"))
    synth = pd.read_parquet(out / "synth" / "manifest.parquet")
    train_normals = ok[(ok["split"] == "train") & (ok["label"] == "normal")]
    assert len(synth) == 5 * len(train_normals)
    assert (out / "report" / "summary.md").is_file()
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    assert metrics  # the evaluation wrote its numbers
    state = json.loads((out / "pipeline_state.json").read_text())
    assert [state[s]["status"] for s in ("ingest", "train", "synthesize", "evaluate")] == ["done"] * 4
    assert "pipeline finished" in (out / "pipeline.log").read_text()


def test_default_report_shows_training_quality_and_the_shortcut_test(default_run):
    out = default_run
    summary = (out / "report" / "summary.md").read_text()
    assert "## Quality during training" in summary and "## Shortcut test" in summary
    assert (out / "report" / "training_quality.png").stat().st_size > 10_000
    metrics = json.loads((out / "report" / "metrics.json").read_text())
    tq = metrics["training_quality"]["all"]
    assert tq["n_measurements"] == 2  # steps 100 and 200 of the tiny config
    assert metrics["shortcut_test"]["tests"]
    # the judge that tracked training is the one evaluate measured with (trained once, reused)
    judges = list((out / "cohort" / "judge").glob("*/judge.json"))
    assert len(judges) == 1
    assert metrics["quality"]["judge"]["fingerprint"] == judges[0].parent.name
    # synthesis used last.pt (the pipeline default: best.pt's score favours early, blurry steps) and says so
    synth = pd.read_parquet(out / "synth" / "manifest.parquet")
    last = checkpoint.load(out / "train" / "checkpoints" / "last.pt")
    assert set(synth["checkpoint_step"]) == {last["step"]} == {200}
    log = (out / "pipeline.log").read_text()
    assert "from last.pt (step 200)" in log and "synthesizing from" in log


def test_rerun_skips_up_to_date_stages(default_run, capsys):
    sys.path.insert(0, str(REPO / "pipelines"))
    import normal_to_abnormal

    mtime = (default_run / "train" / "checkpoints" / "last.pt").stat().st_mtime_ns
    code = normal_to_abnormal.main(["--config", str(REPO / "configs" / "pipeline_default.yaml"),
                                    "--out", str(default_run), "--no-progress"])
    assert code == 0
    log = (default_run / "pipeline.log").read_text()
    for stage in ("ingest", "train", "synthesize", "evaluate"):
        assert f"{stage}: up to date" in log
    assert (default_run / "train" / "checkpoints" / "last.pt").stat().st_mtime_ns == mtime
    assert "summary.md" in capsys.readouterr().out


def test_crash_then_rerun_resumes_and_changed_settings_set_old_outputs_aside(tmp_path, monkeypatch):
    sys.path.insert(0, str(REPO / "pipelines"))
    import normal_to_abnormal

    quick = ["--set", "train.set=[train.steps=4, train.checkpoint_every=2, train.quality_every=0, "
             "train.shortcut_test=false]",
             "--set", "evaluate.set=[seeds=1, 'real_abnormal=[all]', quality.enabled=false]",
             "--set", "synthesize.n_styles=2", "--out", str(tmp_path), "--no-progress"]
    import xraymunit

    real = xraymunit.synthesize  # the pipeline calls the public function

    def crash(*args, **kwargs):
        raise RuntimeError("power cut during synthesis")

    monkeypatch.setattr(xraymunit, "synthesize", crash)
    with pytest.raises(RuntimeError, match="power cut"):
        normal_to_abnormal.main(quick)
    state = json.loads((tmp_path / "pipeline_state.json").read_text())
    assert (state["ingest"]["status"], state["train"]["status"], state["synthesize"]["status"]) == (
        "done", "done", "running")

    monkeypatch.setattr(xraymunit, "synthesize", real)
    assert normal_to_abnormal.main(quick) == 0
    log = (tmp_path / "pipeline.log").read_text()
    assert "ingest: up to date" in log and "train: up to date" in log
    assert (tmp_path / "report" / "summary.md").is_file()

    changed = [a if a != "synthesize.n_styles=2" else "synthesize.n_styles=3" for a in quick]
    assert normal_to_abnormal.main(changed) == 0
    assert (tmp_path / "synth.previous" / "manifest.parquet").is_file()  # old outputs kept aside
    n_old = len(pd.read_parquet(tmp_path / "synth.previous" / "manifest.parquet"))
    assert len(pd.read_parquet(tmp_path / "synth" / "manifest.parquet")) == n_old // 2 * 3
    # a longer training (more steps, or a larger time budget) continues the run; other settings set it aside
    longer = [a.replace("train.steps=4", "train.steps=6") for a in changed]
    assert normal_to_abnormal.main(longer) == 0
    assert checkpoint.load(tmp_path / "train" / "checkpoints" / "last.pt")["step"] == 6
    assert not (tmp_path / "train.previous").exists()
    assert "(6 steps, resuming)" in (tmp_path / "pipeline.log").read_text()
    other = [a.replace("train.steps=6", "train.steps=6, loss.cycle=1.0") for a in longer]
    assert normal_to_abnormal.main(other) == 0
    assert (tmp_path / "train.previous" / "checkpoints" / "last.pt").is_file()


def test_a_second_pipeline_into_a_busy_out_refuses_in_one_line(tmp_path, capsys):
    sys.path.insert(0, str(REPO / "pipelines"))
    import normal_to_abnormal

    from helpers.locks import held_elsewhere

    with held_elsewhere(tmp_path, "pipeline") as holder:
        code = normal_to_abnormal.main(["--out", str(tmp_path), "--no-progress"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith("xraymunit pipeline: error:")
    assert str(tmp_path) in err and f"pipeline, pid {holder.pid}" in err
    assert not (tmp_path / "pipeline_state.json").exists() and not (tmp_path / "cohort").exists()
