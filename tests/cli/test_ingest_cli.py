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


# --------------------------------------------------------------------------- owning --out (issue 13: 1, 4, 7, 10)


def _one_error_line(err: str) -> str:
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("xraymunit ingest: error:"), err
    return lines[0]


def _snapshot(folder):
    return {p.relative_to(folder).as_posix(): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*")) if p.is_file() and p.name != ".xraymunit.lock"}


def test_a_second_ingest_into_a_busy_out_refuses_and_leaves_the_cohort_untouched(built, ingested, tmp_path, capsys):
    from helpers.locks import held_elsewhere

    cohort = copy_tree(ingested[0], tmp_path / "cohort")
    before = _snapshot(cohort)
    with held_elsewhere(cohort, "ingest") as holder:
        code, out, err = run(capsys, built.mixed_root, "--labels", built.mixed_labels, "--out", cohort,
                             "--no-progress")
    assert code == 2
    line = _one_error_line(err)
    assert str(cohort) in line and f"ingest, pid {holder.pid}" in line
    assert _snapshot(cohort) == before


@pytest.mark.parametrize("plant", ["folder", "fifo"])
def test_a_lock_file_that_is_a_folder_or_a_fifo_is_one_line_exit_2(built, tmp_path, capsys, plant):
    import os

    cohort = tmp_path / "cohort"
    cohort.mkdir()
    lock = cohort / ".xraymunit.lock"
    lock.mkdir() if plant == "folder" else os.mkfifo(lock)
    code, out, err = run(capsys, built.site.root, "--out", cohort, "--no-progress")
    assert code == 2
    line = _one_error_line(err)
    assert str(lock) in line and ("a folder" if plant == "folder" else "a FIFO") in line
    assert sorted(p.name for p in cohort.iterdir()) == [".xraymunit.lock"]  # nothing written


def test_a_read_only_out_is_one_line_exit_2(built, tmp_path, capsys, monkeypatch):
    import errno
    import os

    real_open = os.open

    def read_only(path, flags, *args, **kwargs):  # as on a read-only mount (root ignores chmod)
        if os.fspath(path).startswith(str(tmp_path / "cohort")) and flags & os.O_CREAT:
            raise OSError(errno.EROFS, os.strerror(errno.EROFS), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    (tmp_path / "cohort").mkdir()
    monkeypatch.setattr(os, "open", read_only)
    code, out, err = run(capsys, built.site.root, "--out", tmp_path / "cohort", "--no-progress")
    assert code == 2
    assert "Read-only file system" in _one_error_line(err)


def test_disk_full_in_finalize_is_one_line_and_the_rerun_completes(built, tmp_path, capsys, monkeypatch):
    from helpers.disk import disk_full

    cohort = tmp_path / "cohort"
    with disk_full(monkeypatch, lambda path: "manifest.parquet" in path.name):
        code, out, err = run(capsys, built.site.root, "--labels", built.site.labels_csv, "--out", cohort,
                             "--no-progress")
    assert code == 2
    line = _one_error_line(err)
    assert "no space left on device writing" in line and str(cohort) in line and "rerun" in line
    assert not (cohort / "manifest.parquet").exists()
    assert not [p for p in cohort.rglob("*.tmp*")]  # no half-written temporary left
    code, out, err = run(capsys, built.site.root, "--labels", built.site.labels_csv, "--out", cohort, "--no-progress")
    assert code == 0, err
    m = pd.read_parquet(cohort / "manifest.parquet")
    assert len(m) >= len(built.site.files) and (m["status"] == "ok").sum() > 0
    assert "decoded 0" in out  # resumed: every image came from the first run's journal


@pytest.mark.parametrize("planted", ["private/journal.jsonl", "private/salt.key", "private/entries", "cache"])
def test_links_planted_in_out_are_refused_and_nothing_is_written_through_them(built, tmp_path, capsys, planted):
    cohort, outside = tmp_path / "cohort", tmp_path / "outside"
    outside.mkdir()
    (cohort / "private").mkdir(parents=True)
    target = outside / "target"  # dangling for files, a folder for folders
    if planted in ("private/entries", "cache"):
        target.mkdir()
    (cohort / planted).symlink_to(target)
    code, out, err = run(capsys, built.site.root, "--out", cohort, "--no-progress")
    assert code == 2
    line = _one_error_line(err)
    assert planted.split("/")[-1] in line and "symbolic link" in line
    assert [p.name for p in outside.rglob("*")] == (["target"] if target.is_dir() else [])


def test_private_is_made_0700_and_out_itself_may_be_a_link(built, tmp_path, capsys):
    import stat

    real = tmp_path / "real"
    (real / "private").mkdir(parents=True)
    real.joinpath("private").chmod(0o777)
    (tmp_path / "cohort").symlink_to(real)
    code, out, err = run(capsys, built.site.root, "--out", tmp_path / "cohort", "--no-progress")
    assert code == 0, err
    assert stat.S_IMODE((real / "private").stat().st_mode) == 0o700
    assert (real / "manifest.parquet").is_file()


@pytest.mark.parametrize("where", ["same", "inside", "dotdot"])
def test_out_in_the_input_is_never_ingested_as_input(built, tmp_path, capsys, where):
    inp = copy_tree(built.site.root, tmp_path / "in")
    out_dir = {"same": inp, "inside": inp / "cohort", "dotdot": inp / "sub" / ".." / "cohort"}[where]
    rows = []
    for _ in range(2):  # the rerun sees the first run's outputs in its input
        code, out, err = run(capsys, inp, "--labels", built.site.labels_csv, "--out", out_dir, "--no-progress")
        assert code == 0, err
        m = pd.read_parquet(out_dir / "manifest.parquet")
        assert "not_dicom" not in set(m["reason"].dropna()), m[m["reason"] == "not_dicom"]
        rows.append(sorted(m["image_key"]))
    assert rows[0] == rows[1] and len(rows[0]) >= len(built.site.files)


def test_shards_of_one_job_array_may_share_out_but_not_with_a_whole_run(built, tmp_path, capsys):
    from helpers.locks import held_elsewhere

    part = tmp_path / "part"
    with held_elsewhere(part, "ingest", part="shard-1-of-2") as holder:
        code, out, err = run(capsys, built.site.root, "--shard", "2/2", "--out", part, "--no-progress")
        assert code == 0, err
        code, out, err = run(capsys, built.site.root, "--out", part, "--no-progress")
        assert code == 2 and f"pid {holder.pid}" in _one_error_line(err)
    assert (part / "private" / "journal.shard-2-of-2.jsonl").is_file()
    assert not (part / "manifest.parquet").exists()  # the refused whole run wrote nothing
