"""`xraymunit pipeline`: ingest → train → synthesize → evaluate from one YAML, into one run folder.

Built of generic stages (`stage.Stage`: a fingerprint of its inputs and settings, the output
that shows it finished, the work): a stage whose outputs exist with the same fingerprint is
skipped, so a rerun after a crash or Ctrl-C picks up where it stopped (ingest resumes from its
journal, training from its last checkpoint, synthesis skips images already written, evaluation
reuses finished classifier runs). When a stage's settings change, its old outputs are moved to
`<stage>.previous/` (later ones to `.previous.2/`, `.3/`, ...; never deleted) and the stage runs again. The run folder's layout is
`layout.RunLayout` (also read by `xraymunit.analysis` and the notebooks).

    from xraymunit.pipeline import PipelineOptions, run
    summary = run(PipelineOptions(config="pipeline_default", out="runs/default").load())
"""

from xraymunit.pipeline.config import EvaluateStage, IngestStage, PipelineConfig, SynthesizeStage, TrainStage
from xraymunit.pipeline.layout import RunLayout
from xraymunit.pipeline.options import PipelineOptions
from xraymunit.pipeline.run import PipelineError, run, where_things_are
from xraymunit.pipeline.stage import Stage, run_stage
from xraymunit.pipeline.state import State

__all__ = ["EvaluateStage", "IngestStage", "PipelineConfig", "PipelineError", "PipelineOptions", "RunLayout",
           "Stage", "State", "SynthesizeStage", "TrainStage", "run", "run_stage", "where_things_are"]
