"""Several processes (torchrun, gloo on CPU): the same files and manifest as one process; resume after a
stopped rank; and the SIGTERM stop of one process (exit 143, finished images kept and listed)."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pydicom
import pytest

from xraymunit.distributed import Group
from xraymunit.synthesis import parts


def _args(tiny, out, *extra):
    cohort, ckpt = tiny
    return ["synthesize", "--checkpoint", str(ckpt), "--cohort", str(cohort), "--out", str(out),
            "--no-progress", "--render-threads", "1", *extra]


def _single(tiny, out, *extra, **kw):
    return subprocess.Popen([sys.executable, "-m", "xraymunit", *_args(tiny, out, *extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def _torchrun(tiny, out, *extra):
    return subprocess.Popen([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                             "-m", "xraymunit", *_args(tiny, out, *extra)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _done(proc, timeout=300):
    out, err = proc.communicate(timeout=timeout)
    return proc.returncode, out, err


def _content(path):
    """A PNG's bytes; a DICOM's every element but its creation date and time (which differ between
    any two runs, one process or several)."""
    if path.suffix != ".dcm":
        return path.read_bytes()
    ds = pydicom.dcmread(path)
    for keyword in ("StudyDate", "StudyTime", "ContentDate", "ContentTime"):
        assert keyword in ds
        delattr(ds, keyword)
    return json.dumps(ds.file_meta.to_json_dict()), json.dumps(ds.to_json_dict(), sort_keys=True)


def _files(folder):
    return {p.relative_to(folder): _content(p) for p in (folder / "images").rglob("*") if p.is_file()}


def _wait_for_images(folder, proc, n=1, timeout=120):
    deadline = time.monotonic() + timeout
    while len(list(folder.rglob("*.png"))) < n and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)


def _same_run(a, b):
    assert _files(a) == _files(b) and len(_files(a)) > 0
    pd.testing.assert_frame_equal(pd.read_parquet(a / "manifest.parquet"), pd.read_parquet(b / "manifest.parquet"))
    assert (a / "manifest.parquet").read_bytes() == (b / "manifest.parquet").read_bytes()
    assert json.loads((a / "synthesis.json").read_text()) == json.loads((b / "synthesis.json").read_text())
    assert not list(b.glob("manifest.rank-*"))


def test_parts_merge_in_single_process_order(tmp_path):
    group = Group(0, 2)
    rows = {0: [("b", 0), ("b", 1), ("d", 0)], 1: [("a", 0), ("c", 1), ("c", 0)]}
    for rank, rs in rows.items():
        parts.write_part(tmp_path, Group(rank, 2), [{"source_image_key": k, "style_index": j, "x": 0.1}
                                                          for k, j in rs])
    merged = parts.merge_parts(tmp_path, group, {"a": 0, "b": 1, "c": 2, "d": 3})
    assert [(r["source_image_key"], r["style_index"]) for r in merged] == [
        ("a", 0), ("b", 0), ("b", 1), ("c", 0), ("c", 1), ("d", 0)]
    assert merged[0]["x"] == 0.1
    parts.remove_parts(tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_two_processes_write_what_one_writes(tiny, tmp_path):
    extra = ("--n-styles", "3", "--batch-size", "2", "--format", "both")
    code, _, err = _done(_single(tiny, tmp_path / "one", *extra))
    assert code == 0, err
    code, out, err = _done(_torchrun(tiny, tmp_path / "two", *extra))
    assert code == 0, err
    assert out.count("synthetic images in") == 1  # rank 0's summary only
    _same_run(tmp_path / "one", tmp_path / "two")
    assert not (tmp_path / "two" / ".xraymunit.lock").read_text()  # released


def test_sigterm_finishes_the_batch_keeps_its_rows_and_exits_143_then_the_rerun_completes(tiny, tmp_path):
    extra = ("--n-styles", "200", "--batch-size", "1", "--limit", "3")
    code, _, err = _done(_single(tiny, tmp_path / "ref", *extra))
    assert code == 0, err
    out = tmp_path / "s"
    proc = _single(tiny, out, *extra)
    _wait_for_images(out, proc)
    proc.send_signal(signal.SIGTERM)
    code, _, err = _done(proc)
    lines = [line for line in err.splitlines() if line.strip() and " INFO " not in line]
    assert code == 143 and len(lines) == 1 and lines[0].startswith("xraymunit synthesize: stopped: "), err
    manifest = pd.read_parquet(out / "manifest.parquet")
    assert 0 < len(manifest) < 600 and all((out / p).is_file() for p in manifest["png_path"])
    assert len(list(out.rglob("*.png"))) == len(manifest)  # every finished image is listed
    assert json.loads((out / "synthesis.json").read_text())["status"] == "stopped"
    code, stdout, err = _done(_single(tiny, out, *extra))
    assert code == 0 and f"{len(manifest)} already there" in stdout, err
    _same_run(tmp_path / "ref", out)


def _children(pid):
    try:
        with open(f"/proc/{pid}/task/{pid}/children") as fh:
            return [int(c) for c in fh.read().split()]
    except OSError:
        return []


@pytest.mark.skipif(not os.path.exists("/proc/self/task"), reason="finds the workers through /proc")
def test_a_stopped_rank_then_a_rerun_gives_the_single_process_result(tiny, tmp_path):
    extra = ("--n-styles", "120", "--batch-size", "1", "--limit", "4")
    code, _, err = _done(_single(tiny, tmp_path / "one", *extra))
    assert code == 0, err
    out = tmp_path / "two"
    proc = _torchrun(tiny, out, *extra)
    _wait_for_images(out, proc, n=2)
    workers = _children(proc.pid)
    assert len(workers) == 2, workers
    os.kill(workers[1], signal.SIGTERM)  # one rank only (a scheduler would signal both)
    code, _, err = _done(proc)
    assert code != 0 and len(list(out.rglob("*.png"))) < 480, err
    code, _, err = _done(_torchrun(tiny, out, *extra))
    assert code == 0, err
    _same_run(tmp_path / "one", out)
