"""`xraymunit ingest` in-process: exit codes, one-line errors, summary, help, shard/merge."""

import pandas as pd
import pytest

from fixtures.ingest_fixtures import *  # noqa: F401,F403 (fixtures)
from xraymunit.cli import main


def run(capsys, *argv):
    code = main(["ingest", *map(str, argv)])
    out, err = capsys.readouterr()
    return code, out, err


def test_ingest_prints_a_summary_and_exits_0(built, tmp_path, capsys):
    out_dir = tmp_path / "cohort"
    code, out, err = run(capsys, built.mixed_root, "--labels", built.mixed_labels, "--out", out_dir, "--no-progress")
    assert code == 0, err
    assert "ok" in out and "skipped" in out and "failed" in out
    assert "truncated" in out and "modality" in out  # reasons are listed
    assert str(out_dir / "manifest.parquet") in out and "never share" in out
    assert "splits: train" in out
    m = pd.read_parquet(out_dir / "manifest.parquet")
    assert (m["status"] == "ok").sum() == 18


def test_help_explains_every_option(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["ingest", "--help"])
    assert exit_.value.code == 0
    text = capsys.readouterr().out
    for option in ("--labels", "--out", "--size", "--workers", "--shard", "--merge", "--salt-file", "--modalities",
                   "--fit", "--window", "--percentiles", "--split", "--min-side", "--max-side", "--no-progress"):
        assert option in text, option
    assert "SOPInstanceUID" in text and "normal/" in text and "exit status" in text


@pytest.mark.parametrize("argv,message", [
    (["{missing}"], "input folder not found"),
    (["{site}", "--shard", "5/4"], "--shard"),
    (["{site}", "--merge", "{site}"], "either DICOM_DIR or --merge"),
    (["--out", "{tmp}/o"], "DICOM_DIR is required"),
    (["{site}", "--labels", "{missing}.csv"], "labels file not found"),
    (["{site}", "--split", "0.5,0.5,0.5"], "split fractions"),
    (["--merge", "{tmp}/nothing"], "not a shard folder"),
])
def test_bad_input_gives_exit_2_and_one_line(built, tmp_path, capsys, argv, message):
    fill = {"missing": tmp_path / "missing", "site": built.site.root, "tmp": tmp_path}
    argv = [a.format(**fill) for a in argv] + ["--no-progress"]
    if "--out" not in argv:
        argv += ["--out", str(tmp_path / "out")]
    code, out, err = run(capsys, *argv)
    assert code == 2
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("xraymunit ingest: error:") and message in lines[0], err


def test_argparse_errors_exit_2(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["ingest", "x", "--fit", "stretch"])
    assert exit_.value.code == 2


def test_nothing_ingestable_exits_1(built, tmp_path, capsys):
    code, out, err = run(capsys, built.broken_root / "reports", "--out", tmp_path / "o", "--no-progress")
    assert code == 1 and "no image could be ingested" in err and "sr_document" in err


def test_shard_then_merge_via_cli(built, tmp_path, capsys):
    parts = []
    for i in (1, 2):
        part = tmp_path / f"p{i}"
        code, out, _ = run(capsys, built.site.root, "--shard", f"{i}/2", "--out", part, "--no-progress")
        assert code == 0 and "--merge" in out
        parts.append(part)
    code, out, err = run(capsys, "--merge", *parts, "--labels", built.site.labels_csv, "--out", tmp_path / "c", "--no-progress")
    assert code == 0, err
    assert (pd.read_parquet(tmp_path / "c" / "manifest.parquet")["status"] == "ok").sum() == len(built.site.files)


def test_options_reach_the_stage(built, tmp_path, capsys):
    salt = tmp_path / "s.key"
    code, _, err = run(capsys, built.broken_root, "--out", tmp_path / "o", "--modalities", "MR", "--size", "64",
                       "--fit", "crop", "--window", "percentile", "--salt-file", salt, "--min-side", "8",
                       "--workers", "2", "--no-progress")
    assert code == 0, err
    m = pd.read_parquet(tmp_path / "o" / "manifest.parquet").set_index("modality", drop=False)
    ok = m[m["status"] == "ok"]
    assert set(ok["modality"]) == {"MR"} and set(ok["window_source"]) == {"percentile"}
    assert salt.exists() and not (tmp_path / "o" / "private" / "salt.key").exists()
    assert (m["reason"] == "modality").sum() >= 3  # the DX images are now the ones skipped
