"""Which checkpoint synthesis uses: last.pt by default, best.pt only when asked, and never, per level,
a step picked by a judge that saw more abnormals than the level's K (issue 21)."""

from __future__ import annotations

import logging
from pathlib import Path

import yaml

from xraymunit import checkpoint
from xraymunit.pipeline.config import PipelineConfig, SynthesizeStage
from xraymunit.pipeline.stages import chosen_checkpoint, level_synthesis, synthesize_stage

REPO = Path(__file__).resolve().parents[2]


def fake_run(root: Path) -> Path:
    """A run folder with a best.pt and a last.pt of different content (the stage only hashes them here)."""
    (root / "checkpoints").mkdir(parents=True)
    (root / "checkpoints" / "best.pt").write_bytes(b"step 100")
    (root / "checkpoints" / "last.pt").write_bytes(b"step 500")
    return root


def test_last_is_the_default_everywhere(tmp_path):
    run = fake_run(tmp_path / "run")
    assert SynthesizeStage().checkpoint == PipelineConfig().synthesize.checkpoint == "last"
    shipped = yaml.safe_load((REPO / "configs" / "pipeline_default.yaml").read_text())
    assert shipped["synthesize"]["checkpoint"] == "last"
    assert chosen_checkpoint("synthesize", SynthesizeStage(), run).name == "last.pt"
    assert checkpoint.resolve(run) == run / "checkpoints" / "last.pt"
    # best is an explicit choice: by name or by path
    assert chosen_checkpoint("synthesize", SynthesizeStage(checkpoint="best"), run).name == "best.pt"
    assert checkpoint.resolve(run / "best") == run / "checkpoints" / "best.pt"


def test_per_level_best_is_forced_to_last_with_a_note(tmp_path, caplog):
    run = fake_run(tmp_path / "train_10")
    caplog.set_level(logging.INFO, logger="xraymunit.pipeline")
    asked = SynthesizeStage(checkpoint="best")
    level = level_synthesis(asked, "10")
    assert level.checkpoint == "last" and asked.checkpoint == "best"  # the pipeline's settings stay as written
    assert "synthesize_10: using last.pt, not best.pt" in caplog.text
    stage = synthesize_stage("synthesize_10", tmp_path / "synth_10", level, run, tmp_path / "cohort", "fp", "cpu",
                             False)
    assert "from last.pt" in stage.announce()
    # the 'all' level's generator saw every train abnormal, as the judge did: best stays allowed there
    assert level_synthesis(asked, "all") is asked
    assert level_synthesis(SynthesizeStage(), "10").checkpoint == "last"
