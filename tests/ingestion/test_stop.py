"""SIGTERM during ingest: the file in hand is finished, the journal kept, exit 143; the rerun resumes."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

import xraymunit.sample_data
from xraymunit.ingestion import ingest, per_file
from xraymunit.stopping import Stopped

SAMPLE = Path(xraymunit.sample_data.__file__).parent / "nih_cxr_dicom"
KEEP = ["image_key", "patient_key", "label", "split", "cache_index", "status", "reason"]


def _manifest(out: Path) -> pd.DataFrame:
    return pd.read_parquet(out / "manifest.parquet")[KEEP].sort_values("image_key").reset_index(drop=True)


def test_sigterm_in_process_stops_after_the_file_in_hand_and_the_rerun_resumes(tmp_path, monkeypatch):
    calls = []
    real = per_file.decode_task

    def decode_then_terminate(task):
        calls.append(task[1])
        if len(calls) == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # as a batch scheduler would, mid-run
        return real(task)

    import xraymunit.ingestion.stage as stage

    monkeypatch.setattr(stage, "decode_task", decode_then_terminate)
    out = tmp_path / "cohort"
    before = signal.getsignal(signal.SIGTERM)
    try:
        ingest(SAMPLE / "studies", out, labels=SAMPLE / "labels.csv", size=64, progress=False)
    except Stopped as exc:
        assert "SIGTERM" in str(exc) and "decode pass after 3 of" in str(exc) and "rerun" in str(exc)
    else:
        raise AssertionError("expected Stopped")
    assert signal.getsignal(signal.SIGTERM) is before  # the stage's handler is gone again
    assert not (out / "manifest.parquet").exists()
    monkeypatch.setattr(stage, "decode_task", real)
    again = ingest(SAMPLE / "studies", out, labels=SAMPLE / "labels.csv", size=64, progress=False)
    assert again.reused >= 3 and again.decoded >= 1  # the first three kept, the rest decoded now
    ingest(SAMPLE / "studies", tmp_path / "straight", labels=SAMPLE / "labels.csv", size=64,
           progress=False, salt_file=out / "private" / "salt.key")
    pd.testing.assert_frame_equal(_manifest(out), _manifest(tmp_path / "straight"))


def test_sigterm_to_the_cli_with_workers_exits_143_and_the_rerun_finishes(tmp_path):
    out = tmp_path / "cohort"
    cmd = [sys.executable, "-m", "xraymunit", "ingest", str(SAMPLE / "studies"), "--labels",
           str(SAMPLE / "labels.csv"), "--out", str(out), "--size", "256", "--workers", "2", "--no-progress"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    journal = out / "private" / "journal.jsonl"
    while time.monotonic() < deadline and proc.poll() is None:
        if journal.is_file() and b'"type":"image"' in journal.read_bytes():
            break
        time.sleep(0.02)
    assert proc.poll() is None, "ingest finished before the test could stop it"
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "xraymunit ingest: stopped: SIGTERM: ingest stopped in the decode pass" in err
    assert "Traceback" not in err
    assert not (out / "manifest.parquet").exists()
    rerun = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert rerun.returncode == 0, rerun.stderr
    assert "reused from cache" in rerun.stdout and (out / "manifest.parquet").is_file()
