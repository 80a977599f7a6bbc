"""The run folder of `xraymunit pipeline`, spelled once: what each stage writes where.

The pipeline writes it, and the analysis helpers and notebooks read it, through `RunLayout`,
so renaming a folder is a one-line change here rather than a hunt through the code.

    OUT/cohort/          ingest (manifest.parquet, cache/, ingest_report.json)
    OUT/train/           train (checkpoints/last.pt, best.pt, quality.csv, samples/, tensorboard/)
    OUT/synth/           synthesize (images/, manifest.parquet)
    OUT/report/          evaluate (summary.md, metrics.json, plots)
    OUT/train_K/, OUT/synth_K/   the same per low-data level K (generators: per_level)
    OUT/train_K_gI/, OUT/synth_K_gI/   generator I of level K (generators_per_level >= 2)
    OUT/pipeline_state.json, OUT/pipeline.log
    OUT/<stage>.previous/, .previous.2/, ...   outputs made from earlier settings (never deleted)
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

MANIFEST = "manifest.parquet"
STATE_FILE = "pipeline_state.json"
LOG_FILE = "pipeline.log"


@dataclass(frozen=True)
class RunLayout:
    """Paths inside one pipeline output folder (nothing is created or checked here)."""

    root: Path

    def __post_init__(self) -> None:
        object.__setattr__(self, "root", Path(self.root))

    @property
    def cohort(self) -> Path:
        return self.root / "cohort"

    @property
    def report(self) -> Path:
        return self.root / "report"

    @property
    def summary(self) -> Path:
        return self.report / "summary.md"

    @property
    def metrics(self) -> Path:
        return self.report / "metrics.json"

    @property
    def state(self) -> Path:
        return self.root / STATE_FILE

    @property
    def log(self) -> Path:
        return self.root / LOG_FILE

    def train(self, level: str | None = None) -> Path:
        """The MUNIT run folder: train/, or train_<level>/ for a per-level generator."""
        return self.root / ("train" if level is None else f"train_{level}")

    def synth(self, level: str | None = None) -> Path:
        """The synthetic set: synth/, or synth_<level>/ for a per-level generator."""
        return self.root / ("synth" if level is None else f"synth_{level}")

    def training_runs(self) -> list[Path]:
        """train/ then every train_<level>/ (existing or not for train/, existing for the levels; not the
        train_<level>.previous[.N]/ folders set aside)."""
        return [self.train()] + sorted(p for p in self.root.glob("train_*") if p.is_dir() and ".previous" not in p.name)

    @staticmethod
    def last_checkpoint(run_dir: Path) -> Path:
        return Path(run_dir) / "checkpoints" / "last.pt"

    @staticmethod
    def checkpoint(run_dir: Path, which: str) -> Path:
        """checkpoints/<which>.pt of a run folder (which: best or last)."""
        return Path(run_dir) / "checkpoints" / f"{which}.pt"

    @staticmethod
    def manifest(folder: Path) -> Path:
        return Path(folder) / MANIFEST

    @staticmethod
    def previous(folder: Path, number: int = 1) -> Path:
        """Where outputs made from other settings are moved (never deleted): <name>.previous/ for the
        first set aside, <name>.previous.2/, .3/, ... for the later ones (the highest is the latest)."""
        folder = Path(folder)
        return folder.with_name(folder.name + ".previous" + ("" if number == 1 else f".{number}"))

    @staticmethod
    def next_previous(folder: Path) -> Path:
        """The first <name>.previous[.N]/ not taken yet: setting aside never replaces an earlier one."""
        number = 1
        while os.path.lexists(RunLayout.previous(folder, number)):
            number += 1
        return RunLayout.previous(folder, number)
