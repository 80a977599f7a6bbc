"""Typos answered before torch/MONAI import: bad paths, config names and --set keys, one line, exit 2.

The CLI runs in a subprocess (pytest itself has torch imported); a wrapper reports whether the
error path imported torch or monai."""

import json
import subprocess
import sys

import pytest

from xraymunit.cli import precheck
from xraymunit.io.cohort import Cohort, CohortError, SyntheticSet

WRAPPER = """
import json, sys
from xraymunit.cli import main
code = main(sys.argv[1:])
print(json.dumps({"code": code, "heavy": sorted(m for m in ("torch", "monai") if m in sys.modules)}))
"""


def run_cli(*argv):
    done = subprocess.run([sys.executable, "-c", WRAPPER, *argv], capture_output=True, text=True, timeout=120)
    return json.loads(done.stdout.strip().splitlines()[-1]), done.stderr.strip().splitlines()


@pytest.mark.parametrize("argv,message", [
    (["train", "--cohort", "{missing}", "--out", "{tmp}/run"], "is not a cohort folder"),
    (["train", "--cohort", "{tmp}", "--out", "{tmp}/run", "--config", "munit_tiny_cpux"], "config file not found"),
    (["train", "--cohort", "{tmp}", "--out", "{tmp}/run", "--set", "train.stepz=3"], "unknown config key"),
    (["train", "--cohort", "{tmp}", "--out", "{tmp}/run", "--set", "train.steps"], "key=value"),
    (["evaluate", "--cohort", "{missing}", "--out", "{tmp}/r"], "is not a cohort folder"),
    (["evaluate", "--cohort", "{tmp}", "--out", "{tmp}/r", "--set", "classifier.stepz=5"], "unknown config key"),
    (["evaluate", "--cohort", "{cohort}", "--out", "{tmp}/r", "--synthetic", "{missing}"], "not a synthetic folder"),
    (["evaluate", "--cohort", "{cohort}", "--out", "{tmp}/r", "--test-cohort", "{missing}"], "is not a cohort folder"),
    (["synthesize", "--checkpoint", "{missing}/last.pt", "--cohort", "{cohort}", "--out", "{tmp}/s"],
     "checkpoint not found"),
    (["synthesize", "--checkpoint", "{ckpt}", "--cohort", "{missing}", "--out", "{tmp}/s"], "is not a cohort folder"),
    (["train", "--cohort", "{cohort}", "--out", "{done}"], "already holds a run; pass --resume"),
    (["train", "--cohort", "{cohort}", "--out", "{tmp}/fresh", "--resume"], "--resume: no checkpoint at"),
    (["ingest", "{missing}", "--out", "{tmp}/c"], "input folder not found"),
    (["ingest", "{tmp}", "--labels", "{missing}.csv", "--out", "{tmp}/c"], "labels file not found"),
])
def test_errors_come_before_the_heavy_imports(tmp_path, argv, message):
    (tmp_path / "cohort").mkdir()
    (tmp_path / "cohort" / "manifest.parquet").write_bytes(b"")
    (tmp_path / "last.pt").write_bytes(b"")
    (tmp_path / "done" / "checkpoints").mkdir(parents=True)
    (tmp_path / "done" / "checkpoints" / "last.pt").write_bytes(b"")
    names = {"tmp": tmp_path, "missing": tmp_path / "nope", "cohort": tmp_path / "cohort", "ckpt": tmp_path / "last.pt",
             "done": tmp_path / "done"}
    result, stderr = run_cli(*[a.format(**names) for a in argv])
    assert result == {"code": 2, "heavy": []}
    assert len(stderr) == 1 and message in stderr[0]


def test_the_messages_are_the_stages_own(tmp_path):
    """The early checks say what the stages would (their words are kept in step by these asserts)."""
    import inspect

    from xraymunit.ingestion import labels, stage as ingest_stage
    from xraymunit.training import plan

    stage_sources = inspect.getsource(plan) + inspect.getsource(ingest_stage)
    for words in ("already holds a run; pass --resume to continue it or choose another --out",
                  "--resume: no checkpoint at", "input folder not found: "):
        assert words in stage_sources and words in inspect.getsource(precheck)
    with pytest.raises(labels.LabelsError) as stage:
        labels.load_labels(tmp_path / "none.csv")
    with pytest.raises(precheck.PathError) as early:
        precheck.existing_file(tmp_path / "none.csv", "labels file")
    assert str(early.value) == str(stage.value)
    for opened, checked in ((Cohort.open, precheck.cohort_folder), (SyntheticSet.open, precheck.synthetic_folder)):
        with pytest.raises(CohortError) as stage:
            opened(tmp_path)
        with pytest.raises(precheck.PathError) as early:
            checked(tmp_path)
        assert str(early.value) == str(stage.value)


def test_checkpoint_check_accepts_what_the_stage_resolves(tmp_path):
    from xraymunit.checkpoint import resolve

    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "checkpoints" / "last.pt").write_bytes(b"")
    (run / "checkpoints" / "best.pt").write_bytes(b"")
    for spec in (run, run / "last", run / "best", run / "checkpoints" / "last.pt"):
        precheck.checkpoint(spec)
        assert resolve(spec).is_file()
    (run / "checkpoints" / "best.pt").unlink()
    for spec in (run / "best", tmp_path, tmp_path / "x.pt"):
        with pytest.raises(precheck.PathError, match="checkpoint not found"):
            precheck.checkpoint(spec)
