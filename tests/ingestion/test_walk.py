"""The recursive walk: folders it cannot read are reported, not silently skipped (issue 13: 12)."""

import logging
import os

import numpy as np
from PIL import Image

from xraymunit.ingestion.walk import discover


def _unreadable(monkeypatch, folder):
    """Make os.walk fail to list `folder` as it would without read permission (tests may run as root)."""
    real = os.scandir

    def scandir(path="."):
        if os.fspath(path) == os.fspath(folder):
            raise PermissionError(13, "Permission denied", os.fspath(path))
        return real(path)

    monkeypatch.setattr(os, "scandir", scandir)


def test_an_unreadable_subfolder_is_warned_about_and_listed(tmp_path, monkeypatch, caplog):
    for rel in ("a/1.dcm", "locked/2.dcm", "b/3.dcm"):
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"x")
    _unreadable(monkeypatch, tmp_path.resolve() / "locked")
    unreadable = []
    with caplog.at_level(logging.WARNING, logger="xraymunit.ingestion.walk"):
        rels = discover(tmp_path, unreadable=unreadable)
    assert rels == ["a/1.dcm", "b/3.dcm"]
    assert unreadable == [str(tmp_path.resolve() / "locked")]
    assert any("cannot read folder" in r.getMessage() and "locked" in r.getMessage() for r in caplog.records)
    assert discover(tmp_path) == rels  # without the list: the same files, still warned


def test_the_ingest_report_counts_unreadable_folders(tmp_path, monkeypatch):
    from xraymunit.ingestion import ingest

    src = tmp_path / "in"
    rng = np.random.default_rng(0)
    for rel in ("normal/p1.png", "normal/p2.png", "abnormal/p3.png", "abnormal/p4.png", "normal/locked/p5.png"):
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (64, 64), dtype=np.uint8)).save(src / rel)
    _unreadable(monkeypatch, src.resolve() / "normal" / "locked")
    result = ingest(src, tmp_path / "cohort", size=32, progress=False)
    assert result.report["this_run"]["unreadable_folders"] == 1
