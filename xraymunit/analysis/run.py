"""Find a run's stage outputs (cohort/, synth/, report/) from one folder, as the pipeline lays them out
(`xraymunit.pipeline.layout.RunLayout`, the one definition of that layout).

A notebook is pointed at one folder (an environment variable); the synthetic set and the
evaluation report are optional, so the same notebook works on a bare ingested cohort.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from xraymunit.analysis.report import load_metrics
from xraymunit.io.cohort import MANIFEST, Cohort, CohortError, SyntheticSet
from xraymunit.pipeline.layout import RunLayout

ENV_VAR = "XRAYMUNIT_RUN"


@dataclass(frozen=True)
class Run:
    """The readable outputs of one run; `synth` and `metrics` are None when that stage has not run."""

    root: Path
    cohort: Cohort
    synth: SyntheticSet | None
    metrics: dict | None
    report_dir: Path | None

    @property
    def layout(self) -> RunLayout:
        """Where the pipeline puts each stage's outputs in this run folder (train/, synth/, report/, ...)."""
        return RunLayout(self.root)

    def describe(self) -> str:
        """One line per stage output: what was found where (printed at the top of a notebook)."""
        lines = [f"run folder: {self.root}", f"  cohort:    {self.cohort.root}"]
        lines.append(f"  synthetic: {self.synth.root if self.synth else '(none: synthetic sections are skipped)'}")
        lines.append(f"  report:    {self.report_dir if self.metrics else '(none: evaluation numbers are skipped)'}")
        return "\n".join(lines)


def run_folder(default: str | Path = "../runs/default", env: str = ENV_VAR) -> Path:
    """The folder named by the environment variable `env`, else `default` (resolved to an absolute path)."""
    return Path(os.environ.get(env) or default).expanduser().resolve()


def open_run(root: str | Path, *, cohort: str | Path | None = None, synth: str | Path | None = None,
             report: str | Path | None = None) -> Run:
    """Open ROOT/cohort (required), ROOT/synth and ROOT/report (optional).

    Args:
        root: a pipeline output folder (`xraymunit pipeline --out`), or a cohort folder
            itself (a folder with manifest.parquet and cache/).
        cohort, synth, report: explicit folders that override the ROOT/<name> defaults, for stage
            outputs that live elsewhere.
    """
    root = Path(root).expanduser().resolve()
    layout = RunLayout(root)
    if cohort is None:
        is_cohort = (root / MANIFEST).is_file() and (root / "cache").is_dir()
        cohort = root if is_cohort else layout.cohort
    if not Path(cohort).exists():
        raise CohortError(f"no cohort at {cohort}: run the pipeline (`xraymunit pipeline --out {root}`) "
                          f"or `xraymunit ingest ... --out {cohort}`, or point {ENV_VAR} elsewhere")
    co = Cohort.open(cohort)
    synth = Path(synth) if synth is not None else layout.synth()
    syn = SyntheticSet.open(synth) if (synth / MANIFEST).is_file() else None
    report = Path(report) if report is not None else layout.report
    metrics = load_metrics(report)
    return Run(root=root, cohort=co, synth=syn, metrics=metrics, report_dir=report if metrics else None)
