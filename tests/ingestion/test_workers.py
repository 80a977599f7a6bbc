"""Ingest's worker processes: a dead worker costs its file (no hang); kill -9 of the run leaves no worker, no lock."""

import json
import multiprocessing as mp
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import xraymunit.sample_data
from xraymunit.ingestion.workers import WorkerPool
from xraymunit.io.child import signal_text
from xraymunit.io import outdir

SAMPLE = Path(xraymunit.sample_data.__file__).parent / "nih_cxr_dicom"
HANG_GUARD_S = 180  # only a guard: a healthy run takes seconds


def _square_or_die(item):
    if item == 3:
        os.kill(os.getpid(), signal.SIGKILL)  # as the OOM killer would
    return item * item


def test_a_dead_worker_costs_exactly_the_task_it_held(tmp_path):
    pool = WorkerPool(2)
    got = sorted(pool.imap(_square_or_die, range(8), on_death=lambda item, code: ("died", item, code)),
                 key=str)
    assert ("died", 3, -signal.SIGKILL) in got
    assert sorted(v for v in got if not isinstance(v, tuple)) == [0, 1, 4, 16, 25, 36, 49]
    assert not mp.active_children()  # every worker, the replacement included, is gone
    assert signal_text(-9) == "signal 9, SIGKILL" and signal_text(1) == "exit status 1"


def _raise_on_two(item):
    if item == 2:
        raise ValueError("bad item")
    return item


def test_an_exception_in_a_task_reaches_the_caller_and_stops_the_workers():
    pool = WorkerPool(2)
    with pytest.raises(ValueError, match="bad item"):
        list(pool.imap(_raise_on_two, range(6), on_death=lambda item, code: None))
    pool.close(abort=True)
    assert not mp.active_children()


_KILLED_RUN = """
import json, os, signal, sys
from pathlib import Path
from xraymunit.ingestion import ingest, journal, stage

root, out, scan_victim, decode_victim = sys.argv[1:5]
main_pid = os.getpid()
real = stage.scan_task, stage.decode_task

def dying(task_fn, victim):
    def run(task):
        if task[1] == victim and os.getpid() != main_pid:
            os.kill(os.getpid(), signal.SIGKILL)  # a worker killed mid-run (GDCM crash, OOM, kill -9)
        return task_fn(task)
    return run

def run():
    result = ingest(root, out, size=64, workers=2, progress=False)
    private = Path(out) / "private"
    state = journal.load_state(private, json.loads((private / "journal.jsonl").open().readline())["fp"])
    return {"decoded": result.decoded, "status": {rel: list(journal.status_of(st)) for rel, st in state.items()}}

stage.scan_task, stage.decode_task = dying(real[0], scan_victim), dying(real[1], decode_victim)
first = run()
stage.scan_task, stage.decode_task = real  # the rerun: nothing kills the workers any more
print(json.dumps([first, run()]))
"""


def test_a_worker_killed_mid_run_fails_its_file_and_the_run_and_rerun_finish(tmp_path):
    root = tmp_path / "in"
    for i, src in enumerate(sorted(p for p in (SAMPLE / "studies").rglob("*") if p.is_file())[:12]):
        (root / f"{i:02d}").mkdir(parents=True)
        shutil.copy(src, root / f"{i:02d}" / "IM0001.dcm")
    rels = sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())
    scan_victim, decode_victim = rels[3], rels[8]
    proc = subprocess.run([sys.executable, "-c", _KILLED_RUN, str(root), str(tmp_path / "cohort"), scan_victim,
                           decode_victim], capture_output=True, text=True, timeout=HANG_GUARD_S)  # hang guard
    assert proc.returncode == 0, proc.stderr[-3000:]
    first, again = json.loads(proc.stdout.strip().splitlines()[-1])
    status = first["status"]
    for victim in (scan_victim, decode_victim):
        assert status[victim][:2] == ["failed", "worker_died"], status[victim]
        assert "signal 9, SIGKILL" in status[victim][2]
    assert all(s[0] == "ok" for rel, s in status.items() if rel not in (scan_victim, decode_victim))
    assert len(status) == len(rels)
    assert again["decoded"] == 0 and again["status"] == status  # the rerun does not try them again


def _children(pid: int) -> list[int]:
    kids = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        kids += [int(k) for k in (task / "children").read_text().split()]
    return kids


def _gone(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0] in ("Z", "X")
    except OSError:
        return True


def _ingest_until_first_image(out: Path, **popen):
    """Start a 2-worker ingest of the sample into `out` and return once it journals its first image:
    (process, journal path, its worker pids, the hang-guard deadline)."""
    cmd = [sys.executable, "-m", "xraymunit", "ingest", str(SAMPLE / "studies"), "--out", str(out),
           "--size", "256", "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, **popen)
    journal = out / "private" / "journal.jsonl"
    deadline = time.monotonic() + HANG_GUARD_S
    while proc.poll() is None and time.monotonic() < deadline:
        if journal.is_file() and b'"type":"image"' in journal.read_bytes():
            break
        time.sleep(0.02)
    return proc, journal, _children(proc.pid), deadline


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the process tree from /proc (Linux)")
def test_kill_9_of_the_run_leaves_no_worker_and_the_rerun_is_accepted_at_once(tmp_path):
    out = tmp_path / "cohort"
    proc, journal, workers, deadline = _ingest_until_first_image(out)
    assert proc.poll() is None and workers, "ingest finished before the test could kill it"
    proc.kill()
    proc.wait()
    proc.stderr.close()
    assert outdir.holder(out) is None  # no orphan holds the folder's lock
    with outdir.claim(out, "ingest"):  # the rerun is accepted at once
        pass
    while not all(_gone(pid) for pid in workers) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert all(_gone(pid) for pid in workers), "orphaned workers still running"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="reads the process tree from /proc (Linux)")
def test_sigterm_to_the_whole_job_stops_promptly_with_no_worker_left_and_no_file_failed(tmp_path):
    """A batch scheduler signals the process group: the workers die of it too, which is no failed file."""
    out = tmp_path / "cohort"
    proc, journal, workers, deadline = _ingest_until_first_image(out, start_new_session=True)
    assert proc.poll() is None and workers, "ingest finished before the test could stop it"
    os.killpg(proc.pid, signal.SIGTERM)
    _, err = proc.communicate(timeout=HANG_GUARD_S)  # hang guard
    assert proc.returncode == 143, err
    assert all(_gone(pid) for pid in workers)
    assert b"worker_died" not in journal.read_bytes()
