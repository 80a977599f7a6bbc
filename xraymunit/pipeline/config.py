"""The pipeline YAML (configs/pipeline_default.yaml): one section per stage, checked before any work."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, Optional

from xraymunit import config

# Relative input paths that do not exist from the working folder are tried from here (the
# repository root in a source checkout), so `pipelines/run_default.sh` works from anywhere.
REPO = Path(__file__).resolve().parents[2]


@dataclass
class IngestStage:
    input: str = "sample"  # a DICOM/PNG folder, or "sample" for the bundled NIH DICOM cohort
    labels: Optional[str] = "sample"  # labels CSV, "sample", or null (labels from normal/abnormal folders)
    size: int = 256
    workers: int = 2
    fit: str = "pad"
    window: str = "auto"  # intensity mapping (ingest --window)
    contrast: str = "none"  # per-image contrast standardisation (ingest --contrast): none, equalize, clahe
    salt_file: Optional[str] = None  # an existing salt (ingest --salt-file): one split shared by every run of a study

    def changed_settings(self) -> dict:
        """The settings beyond size/fit that change the cohort, only where they differ from the defaults
        (so a run made before they existed keeps its fingerprint)."""
        made = {"window": (self.window, "auto"), "contrast": (self.contrast, "none")}
        return {k: v for k, (v, default) in made.items() if v != default}


@dataclass
class TrainStage:
    config: str = "configs/munit_tiny_cpu.yaml"  # a path, or a shipped config's name
    set: list[str] = field(default_factory=list)


@dataclass
class SynthesizeStage:
    n_styles: int = 5
    split: str = "train"
    direction: str = "a2b"
    seed: int = 0
    format: str = "png"
    batch_size: int | Literal["auto"] = "auto"
    checkpoint: Literal["best", "last"] = "last"  # best only when asked: its score favours early, blurry steps
    change_maps: bool = True  # KEY_change.png next to each image (where and how much it changed)

    def validate(self) -> None:  # before hours of ingest and training, not after
        config.require(self.batch_size == "auto" or self.batch_size >= 1, "batch_size", "must be auto or >= 1")


@dataclass
class EvaluateStage:
    config: str = "configs/evaluate_tiny.yaml"  # a path, or a shipped config's name
    set: list[str] = field(default_factory=list)


@dataclass
class PipelineConfig:
    out: str = "runs/default"
    device: str = "auto"
    generators: Literal["single", "per_level"] = "single"
    generators_per_level: int = 1  # per_level: G generators per level (train seeds seed..seed+G-1, same K images)
    ingest: IngestStage = field(default_factory=IngestStage)
    train: TrainStage = field(default_factory=TrainStage)
    synthesize: SynthesizeStage = field(default_factory=SynthesizeStage)
    evaluate: EvaluateStage = field(default_factory=EvaluateStage)

    def validate(self) -> None:
        config.require(self.generators_per_level >= 1, "generators_per_level", "must be >= 1")
        config.require(self.generators_per_level == 1 or self.generators == "per_level", "generators_per_level",
                       "needs generators: per_level (G generators for each low-data level)")


def input_path(value: str) -> Path:
    """Input paths: as given if they exist (relative to the working folder), else relative to the repository."""
    path = Path(value).expanduser()
    return path if path.is_absolute() or path.exists() else REPO / path


def stage_config_path(value: str) -> Path:
    """A stage's config: a path (from the working folder, else the repository), else a shipped name."""
    path = input_path(value)
    return path if path.is_file() else config.find(value)
