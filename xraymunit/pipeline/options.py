"""The options of `xraymunit pipeline` (and of pipelines/normal_to_abnormal.py), declared once."""

from __future__ import annotations

from dataclasses import dataclass

from xraymunit import config
from xraymunit.options import option
from xraymunit.runtime import THREADS_HELP
from xraymunit.pipeline.config import PipelineConfig

DEFAULT_CONFIG = "pipeline_default"


@dataclass
class PipelineOptions:
    config: str = option(DEFAULT_CONFIG, "pipeline YAML: a path, or a shipped config's name", metavar="YAML")
    out: str | None = option(None, "output folder (overrides the config's `out`)", metavar="DIR")
    overrides: list[str] = option(
        help="override a pipeline key, e.g. --set synthesize.n_styles=20 (repeatable)", flag="--set",
        metavar="KEY=VALUE", default_factory=list, append=True)
    threads: int | None = option(None, THREADS_HELP + "; every stage uses it", parse=int, metavar="N")
    progress: bool | None = option(None, "no progress bars (logs only); default: bars when stderr is a terminal",
                                   flag="--no-progress")

    def load(self) -> PipelineConfig:
        """The pipeline config: the YAML, then --set overrides, then --out."""
        extra = [f"out={self.out}"] if self.out else []
        return config.load(PipelineConfig, self.config, list(self.overrides) + extra)
