"""Each stage refuses another stage's output folder (issue 23 item 6: `ingest --out SYNTH_DIR` replaced
the synthetic set's manifest.parquet, the provenance of every synthetic image).

The folders are real stage outputs (the session's tiny checkpoint, its cohort, a synthesis from it);
every refusal is one line, exit 2, and leaves the folder's files as they were."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from helpers.evaluate_data import write_cohort
from xraymunit.cli import main
from xraymunit.io import folder_kind, outdir

REPO = Path(__file__).resolve().parents[2]


def _snapshot(folder: Path) -> dict:
    return {p.relative_to(folder).as_posix(): p.read_bytes() for p in sorted(folder.rglob("*"))
            if p.is_file() and p.name != outdir.LOCK_NAME}


@pytest.fixture(scope="module")
def folders(tiny, tmp_path_factory):
    """A cohort (ingest's signs), a training run and a synthetic set written by the real stages."""
    cohort, ckpt = tiny
    root = tmp_path_factory.mktemp("kinds")
    synth = root / "synth"
    assert main(["synthesize", "--checkpoint", str(ckpt), "--cohort", str(cohort), "--out", str(synth),
                 "--n-styles", "1", "--limit", "1", "--no-progress"]) == 0
    return {"cohort": cohort, "checkpoint": ckpt, "run": ckpt.parent.parent, "synth": synth}


def _refused(capsys, argv: list[str], folder: Path, found: str, writer: str) -> None:
    before = _snapshot(folder)
    code = main(argv)
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert code == 2 and len(err) == 1, err
    assert err[0].startswith(f"xraymunit {argv[0]}: error: {folder} is a {found} (written by `xraymunit {writer}`)")
    assert _snapshot(folder) == before


def test_ingest_refuses_a_synthetic_set(folders, tmp_path, capsys):
    synth = shutil.copytree(folders["synth"], tmp_path / "synth")
    assert json.loads((synth / folder_kind.MARKER).read_text())["kind"] == "synthetic set"
    _refused(capsys, ["ingest", str(REPO / "xraymunit" / "sample_data"), "--out", str(synth), "--no-progress"],
             synth, "synthetic set", "synthesize")
    (synth / folder_kind.MARKER).unlink()  # a synthetic set written before the marker: recognised by its files
    _refused(capsys, ["ingest", str(REPO / "xraymunit" / "sample_data"), "--out", str(synth), "--no-progress"],
             synth, "synthetic set", "synthesize")


def test_synthesize_refuses_a_cohort(folders, tmp_path, capsys):
    other = write_cohort(tmp_path / "cohort", n_patients=6, size=32)  # ingest_report.json: a cohort
    _refused(capsys, ["synthesize", "--checkpoint", str(folders["checkpoint"]), "--cohort", str(folders["cohort"]),
                      "--out", str(other), "--n-styles", "1", "--limit", "1", "--no-progress"],
             other, "cohort", "ingest")


def test_train_refuses_a_cohort(folders, tmp_path, capsys):
    other = write_cohort(tmp_path / "cohort", n_patients=6, size=32)
    _refused(capsys, ["train", "--config", str(REPO / "configs" / "munit_tiny_cpu.yaml"), "--cohort",
                      str(folders["cohort"]), "--out", str(other), "--no-progress"], other, "cohort", "ingest")


def test_evaluate_refuses_a_training_run(folders, tmp_path, capsys):
    run = shutil.copytree(folders["run"], tmp_path / "run")
    _refused(capsys, ["evaluate", "--cohort", str(folders["cohort"]), "--out", str(run), "--config",
                      str(REPO / "configs" / "evaluate_tiny.yaml"), "--no-progress"], run, "training run", "train")


def test_pipeline_refuses_a_cohort_and_ingest_a_pipeline_run(tmp_path, capsys):
    cohort = write_cohort(tmp_path / "cohort", n_patients=6, size=32)
    _refused(capsys, ["pipeline", "--out", str(cohort), "--no-progress"], cohort, "cohort", "ingest")
    with outdir.claim(tmp_path / "run", "pipeline"):
        (tmp_path / "run" / "pipeline.log").write_text("started")
    _refused(capsys, ["ingest", str(REPO / "xraymunit" / "sample_data"), "--out", str(tmp_path / "run"),
                      "--no-progress"], tmp_path / "run", "pipeline run", "pipeline")


def test_the_same_kind_is_accepted_and_a_refused_run_leaves_no_marker(tmp_path):
    with outdir.claim(tmp_path / "part", "ingest", part="shard-1-of-2"):
        (tmp_path / "part" / "private").mkdir()
    with outdir.claim(tmp_path / "part", "ingest --merge"):  # shards and their merge: one cohort
        pass
    assert folder_kind.kind_of(tmp_path / "part") == "cohort"
    (tmp_path / "empty").mkdir()
    with pytest.raises(RuntimeError):
        with outdir.claim(tmp_path / "empty", "train"):
            raise RuntimeError("refused on its arguments")
    assert not (tmp_path / "empty" / folder_kind.MARKER).exists()  # a later stage may still use it
    with outdir.claim(tmp_path / "empty", "evaluate"):
        pass
