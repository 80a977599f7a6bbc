"""xraymunit.analysis.run: finding a run's stage outputs (RunLayout) from one folder.

On real stage outputs (the default pipeline run, a cohort with ingest problems); every expected
number is recomputed from the manifests / cache / metrics.json.
"""

import subprocess
import sys

import pytest

from analysis_fixtures import problem_cohort, run  # noqa: F401 (fixtures)
from fixtures.ingest_fixtures import built, ingested  # noqa: F401 (fixtures)
from xraymunit import analysis as xa
from xraymunit.io.cohort import CohortError

pytestmark = pytest.mark.slow  # every test reads the session's default pipeline run or a real ingest


# ------------------------------------------------------------------ run folder


def test_open_run_finds_every_stage(run, default_run):
    assert run.cohort.root == default_run / "cohort"
    assert run.synth is not None and run.synth.root == default_run / "synth"
    assert run.metrics is not None and run.metrics["format"] == "xraymunit.evaluate"
    text = run.describe()
    assert str(default_run / "synth") in text and str(default_run / "report") in text
    assert run.layout.synth() == run.synth.root and run.layout.report == run.report_dir


def test_open_run_on_a_bare_cohort_and_on_nothing(problem_cohort, tmp_path):
    bare = xa.open_run(problem_cohort.root)
    assert bare.cohort.root == problem_cohort.root and bare.synth is None and bare.metrics is None
    assert "none" in bare.describe()
    with pytest.raises(CohortError, match="ingest"):
        xa.open_run(tmp_path)


def test_run_folder_reads_the_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("XRAYMUNIT_RUN", str(tmp_path))
    assert xa.run_folder() == tmp_path.resolve()
    monkeypatch.delenv("XRAYMUNIT_RUN")
    assert xa.run_folder(default=tmp_path / "x") == (tmp_path / "x").resolve()


def test_importing_analysis_does_not_import_torch():
    code = "import sys, xraymunit.analysis; sys.exit('torch' in sys.modules)"
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0


def test_training_runs_and_layout_follow_the_pipeline_layout(tmp_path):
    from xraymunit.pipeline import RunLayout

    layout = RunLayout(tmp_path)
    for folder in (layout.train(), layout.train("5"), layout.train("all"), RunLayout.previous(layout.train())):
        folder.mkdir()
    for folder in (layout.train(), layout.train("5"), RunLayout.previous(layout.train())):
        (folder / "quality.csv").write_text("step\n")
    assert xa.training_runs(tmp_path) == {"train": layout.train(), "train_5": layout.train("5")}
