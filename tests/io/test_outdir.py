"""Owning an output folder: the lock (busy, nested, stale after kill -9), links, private mode, disk full."""

from __future__ import annotations

import errno
import json
import logging
import os
import signal
import stat
from pathlib import Path

import pytest

from helpers.locks import held_elsewhere, start_holder
from xraymunit.errors import XraymunitError
from xraymunit.ingestion.walk import discover
from xraymunit.io import atomic, diskspace, outdir


# --------------------------------------------------------------------------- the lock


def test_claim_creates_the_folder_records_the_holder_and_empties_the_lock_on_release(tmp_path):
    folder = tmp_path / "a" / "out"
    with outdir.claim(folder, "ingest") as path:
        assert path == folder and folder.is_dir()
        (folder / "keep.txt").write_text("x")  # something written: the folder stays
        record = json.loads((folder / outdir.LOCK_NAME).read_text())
        assert record["stage"] == "ingest" and record["pid"] == os.getpid() and record["started"]
        assert outdir.holder(folder)["pid"] == os.getpid()
    assert (folder / outdir.LOCK_NAME).read_text() == ""  # released cleanly
    assert outdir.holder(folder) is None


def test_a_folder_created_by_a_refused_run_is_removed(tmp_path):
    folder = tmp_path / "out"
    with pytest.raises(XraymunitError):
        with outdir.claim(folder, "synthesize"):
            raise XraymunitError("bad arguments")
    assert not folder.exists()


def test_an_existing_file_is_refused_in_one_line(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(outdir.OutputFolderError, match="exists and is not a folder") as exc:
        with outdir.claim(tmp_path / "f", "synthesize"):
            pass
    assert "\n" not in str(exc.value)


def test_a_second_process_is_refused_at_once_naming_folder_and_holder(tmp_path):
    folder = tmp_path / "cohort"
    with held_elsewhere(folder, "ingest") as proc:
        with pytest.raises(outdir.FolderBusyError) as exc:
            with outdir.claim(folder, "ingest"):
                pytest.fail("claimed a folder another process holds")
        message = str(exc.value)
        assert str(folder) in message and f"ingest, pid {proc.pid}" in message and "\n" not in message
        assert isinstance(exc.value, XraymunitError)
    assert folder.is_dir()  # the refused run did not remove the holder's folder


def test_a_lock_left_by_a_killed_run_is_taken_over(tmp_path, caplog):
    folder = tmp_path / "run"
    proc = start_holder(folder, "train")
    os.kill(proc.pid, signal.SIGKILL)  # no cleanup runs: the kernel drops the flock
    proc.wait()
    proc.stdout.close()
    proc.stderr.close()
    assert json.loads((folder / outdir.LOCK_NAME).read_text())["pid"] == proc.pid  # stale content left
    with caplog.at_level(logging.INFO, logger="xraymunit.io.outdir"):
        with outdir.claim(folder, "train"):
            assert json.loads((folder / outdir.LOCK_NAME).read_text())["pid"] == os.getpid()
    assert "taking over" in caplog.text and f"pid {proc.pid}" in caplog.text


def test_nested_claims_of_one_folder_in_one_process_are_counted_not_refused(tmp_path):
    outer = tmp_path / "pipeline"
    with outdir.claim(outer, "pipeline"):
        with outdir.claim(outer / "cohort", "ingest"):  # a stage's sub-folder: its own lock
            assert outdir.holder(outer / "cohort")["stage"] == "ingest"
            assert outdir.holder(outer)["stage"] == "pipeline"
        with outdir.claim(outer, "evaluate"):  # the same folder again: no deadlock, no refusal
            pass
        assert outdir.holder(outer) is not None  # still held by the outer claim
    assert outdir.holder(outer) is None


def test_owns_claims_the_named_argument_or_its_default(tmp_path, monkeypatch):
    seen = []

    @outdir.owns("demo", "out")
    def stage(cohort, out="default-out", *, flag=False):
        seen.append(outdir.holder(out))
        return out

    assert stage("c", tmp_path / "x") == tmp_path / "x" and seen[-1]["stage"] == "demo"
    monkeypatch.chdir(tmp_path)
    stage("c")
    assert seen[-1]["stage"] == "demo" and not (tmp_path / "default-out").exists()  # left empty: removed

    @outdir.owns("demo", "out", when=lambda: False)
    def other_rank(out):
        return outdir.holder(out)

    assert other_rank(tmp_path / "y") is None


# --------------------------------------------------------------------------- links


def test_links_planted_inside_the_folder_are_refused_before_writing(tmp_path):
    folder, outside = tmp_path / "out", tmp_path / "outside"
    outside.mkdir()
    folder.mkdir()
    (folder / "images").symlink_to(outside)
    with outdir.claim(folder, "synthesize"):
        with pytest.raises(outdir.UnsafeLinkError, match="symbolic link inside the output folder") as exc:
            atomic.write_text(folder / "images" / "k" / "a.png", "x")
        assert "\n" not in str(exc.value)
        atomic.write_text(folder / "manifest.parquet", "fine")  # real paths still work
    assert list(outside.iterdir()) == []
    atomic.write_text(folder / "images" / "b.txt", "x")  # outside a claim: not our folder, not checked
    assert (outside / "b.txt").exists()


def test_guard_refuses_dangling_links_up_front(tmp_path):
    folder = tmp_path / "out"
    (folder / "private").mkdir(parents=True)
    (folder / "private" / "salt.key").symlink_to(tmp_path / "nowhere" / "salt.key")
    with pytest.raises(outdir.UnsafeLinkError, match="salt.key"):
        with outdir.claim(folder, "ingest", guard=("private/salt.key",)):
            pytest.fail("claimed a folder with a planted link")
    assert not (tmp_path / "nowhere").exists()
    assert outdir.holder(folder) is None  # a refused claim releases its lock


def test_the_output_folder_itself_may_be_a_link(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    (tmp_path / "link").symlink_to(real)
    with outdir.claim(tmp_path / "link", "train", guard=("checkpoints",)) as folder:
        atomic.write_text(folder / "checkpoints" / "last.pt", "x")
    assert (real / "checkpoints" / "last.pt").read_text() == "x"


def test_a_planted_lock_file_link_is_refused(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / outdir.LOCK_NAME).symlink_to(tmp_path / "elsewhere")
    with pytest.raises(outdir.UnsafeLinkError):
        with outdir.claim(folder, "ingest"):
            pass
    assert not (tmp_path / "elsewhere").exists()


def test_private_folder_is_forced_to_0700(tmp_path, caplog):
    folder = tmp_path / "out"
    (folder / "private").mkdir(parents=True)
    os.chmod(folder / "private", 0o777)
    with caplog.at_level(logging.WARNING, logger="xraymunit.io.outdir"):
        with outdir.claim(folder, "ingest", private=("private",)):
            assert stat.S_IMODE(os.stat(folder / "private").st_mode) == 0o700
    assert "0777" in caplog.text


# --------------------------------------------------------------------------- disk full


@pytest.mark.parametrize("code, words", [(errno.ENOSPC, "no space left on device"),
                                         (errno.EDQUOT, "disk quota exceeded")])
def test_disk_full_becomes_one_line_naming_the_folder(tmp_path, code, words):
    with pytest.raises(diskspace.DiskFullError) as exc:
        with diskspace.disk_full(tmp_path):
            raise OSError(code, os.strerror(code), str(tmp_path / "cache" / "images.npy"))
    message = str(exc.value)
    assert message.startswith(words) and str(tmp_path) in message and "rerun" in message and "\n" not in message
    assert isinstance(exc.value, XraymunitError)


def test_disk_full_wrapped_by_a_library_is_recognised(tmp_path):
    with pytest.raises(diskspace.DiskFullError):
        with diskspace.disk_full(tmp_path):
            try:
                raise OSError(errno.ENOSPC, "No space left on device")
            except OSError as exc:
                raise ValueError("write failed") from exc


def test_torch_write_failures_count_as_disk_full_only_when_the_disk_is_nearly_full(tmp_path, monkeypatch):
    torch_error = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 704 vs 598")
    with pytest.raises(RuntimeError):  # plenty of space: a real bug, keep the traceback
        with diskspace.disk_full(tmp_path):
            raise torch_error

    class Full:
        f_bavail, f_frsize = 10, 4096

    monkeypatch.setattr(outdir.os, "statvfs", lambda path: Full())
    with pytest.raises(diskspace.DiskFullError):
        with diskspace.disk_full(tmp_path):
            raise torch_error


def test_other_errors_pass_through_unchanged(tmp_path):
    with pytest.raises(PermissionError):
        with diskspace.disk_full(tmp_path):
            raise PermissionError(errno.EACCES, "Permission denied")


def test_claim_translates_disk_full_and_the_atomic_writer_leaves_nothing(tmp_path, monkeypatch):
    folder = tmp_path / "out"
    folder.mkdir()  # (a folder the claim created and left empty would be removed)

    def full(path):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(atomic, "_fsync_file", full)
    with pytest.raises(diskspace.DiskFullError, match=str(folder)):
        with outdir.claim(folder, "evaluate"):
            atomic.write_json(folder / "metrics.json", {"a": 1})
    assert sorted(p.name for p in folder.iterdir()) == [outdir.LOCK_NAME]  # no half file, no temporary


# --------------------------------------------------------------------------- item 10: --out inside the input


def _tree(root: Path) -> None:
    (root / "a").mkdir(parents=True)
    (root / "a" / "img1.dcm").write_bytes(b"x")
    (root / "img0.dcm").write_bytes(b"x")


def test_discover_skips_the_cohorts_own_files_when_out_is_the_input(tmp_path):
    root = tmp_path / "in"
    _tree(root)
    for name in ("private/journal.jsonl", "cache/images.npy", "manifest.parquet", "ingest_report.json"):
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_bytes(b"x")
    assert discover(root, exclude=[root]) == ["a/img1.dcm", "img0.dcm"]
    assert discover(root, exclude=[root / "a" / ".."]) == ["a/img1.dcm", "img0.dcm"]  # reached via ..
    # another folder as --out: the input's top-level files are the user's, not ours
    assert "manifest.parquet" in discover(root, exclude=[tmp_path / "elsewhere"])


def test_discover_skips_output_folders_below_the_input_however_reached(tmp_path):
    root = tmp_path / "in"
    _tree(root)
    for sub, marker in [("synth", outdir.LOCK_NAME), ("old_cohort", "ingest_report.json"),
                        ("shard", "private/journal.shard-1-of-2.jsonl"), ("out", None)]:
        (root / sub / "images").mkdir(parents=True)
        (root / sub / "images" / "x.png").write_bytes(b"x")
        if marker:
            (root / sub / marker).parent.mkdir(parents=True, exist_ok=True)
            (root / sub / marker).write_bytes(b"")
    (root / "a" / "linked.dcm").symlink_to(root / "out" / "images" / "x.png")  # a file link into --out
    via_link = tmp_path / "out_link"
    via_link.symlink_to(root / "out")
    assert discover(root, exclude=[via_link]) == ["a/img1.dcm", "img0.dcm"]


# --------------------------------------------------------------------------- parts: shards of a job array


def test_parts_share_a_folder_but_exclude_a_whole_folder_claim_and_the_same_part(tmp_path):
    folder = tmp_path / "part"
    with held_elsewhere(folder, "ingest", part="shard-1-of-2") as other:
        with outdir.claim(folder, "ingest", part="shard-2-of-2"):  # another shard: fine
            pass
        with pytest.raises(outdir.FolderBusyError, match=f"pid {other.pid}"):
            with outdir.claim(folder, "ingest", part="shard-1-of-2"):  # the same shard twice
                pass
        with pytest.raises(outdir.FolderBusyError, match=f"ingest, pid {other.pid}"):
            with outdir.claim(folder, "ingest --merge"):  # a whole-folder run while a shard runs
                pass
    with held_elsewhere(folder, "ingest --merge") as other:
        with pytest.raises(outdir.FolderBusyError, match=f"ingest --merge, pid {other.pid}"):
            with outdir.claim(folder, "ingest", part="shard-1-of-2"):  # a shard while the merge runs
                pass


# --------------------------------------------------------------------------- lock files that cannot be one


@pytest.mark.parametrize("plant", ["folder", "fifo"])
def test_a_lock_that_is_a_folder_or_a_fifo_is_refused_in_one_line(tmp_path, plant):
    folder = tmp_path / "out"
    folder.mkdir()
    lock = folder / outdir.LOCK_NAME
    lock.mkdir() if plant == "folder" else os.mkfifo(lock)
    with pytest.raises(outdir.OutputFolderError) as exc:  # a FIFO must not block the open either
        with outdir.claim(folder, "ingest"):
            pytest.fail("claimed a folder whose lock is not a file")
    message = str(exc.value)
    assert str(lock) in message and ("a folder" if plant == "folder" else "a FIFO") in message
    assert "\n" not in message and "remove it" in message
    assert outdir.holder(folder) is None  # reading who holds it does not block on a FIFO either


@pytest.mark.parametrize("code", [errno.EROFS, errno.EACCES])
def test_an_output_folder_that_is_not_writable_is_refused_in_one_line(tmp_path, monkeypatch, code):
    """Read-only mounts and folders without write permission (the test runs as any user, root included:
    the open of the lock file is made to fail as the kernel would)."""
    folder = tmp_path / "out"
    folder.mkdir()
    real_open = os.open

    def read_only(path, flags, *args, **kwargs):
        if os.fspath(path).endswith(outdir.LOCK_NAME) and flags & os.O_CREAT:
            raise OSError(code, os.strerror(code), os.fspath(path))
        return real_open(path, flags, *args, **kwargs)

    monkeypatch.setattr(os, "open", read_only)
    with pytest.raises(outdir.OutputFolderError) as exc:
        with outdir.claim(folder, "ingest"):
            pytest.fail("claimed a folder it cannot write")
    message = str(exc.value)
    assert str(folder) in message and os.strerror(code) in message and "\n" not in message


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes in read-only folders")
def test_a_folder_without_write_permission_is_refused_in_one_line(tmp_path):
    folder = tmp_path / "out"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        with pytest.raises(outdir.OutputFolderError, match="cannot write in the output folder"):
            with outdir.claim(folder, "ingest"):
                pass
    finally:
        folder.chmod(0o755)


def test_a_read_only_folder_with_a_writable_lock_file_left_in_it_is_refused_in_one_line(tmp_path, monkeypatch):
    """The lock file of an earlier run opens for writing; the folder itself does not take new files."""
    folder = tmp_path / "out"
    folder.mkdir()
    (folder / outdir.LOCK_NAME).write_text("")
    real_access = os.access
    monkeypatch.setattr(os, "access", lambda path, mode, **kw: False if os.fspath(path) == str(folder)
                        else real_access(path, mode, **kw))  # as for a user without write permission
    with pytest.raises(outdir.OutputFolderError, match="cannot write in the output folder") as exc:
        with outdir.claim(folder, "ingest"):
            pytest.fail("claimed a folder it cannot write")
    assert "\n" not in str(exc.value)
