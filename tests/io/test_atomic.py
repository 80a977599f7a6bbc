import os
import stat

import numpy as np
import pytest

from xraymunit.io import atomic


def test_atomic_write_replaces_whole_file_and_leaves_no_temp(tmp_path):
    path = tmp_path / "a.json"
    atomic.write_json(path, {"x": 1})
    atomic.write_json(path, {"x": 2})
    assert path.read_text().strip().endswith("}") and '"x": 2' in path.read_text()
    assert [p.name for p in tmp_path.iterdir()] == ["a.json"]


def test_failed_write_keeps_the_old_file(tmp_path):
    path = tmp_path / "a.npy"
    atomic.write_npy(path, np.arange(3))
    with pytest.raises(RuntimeError):
        with atomic.atomic_path(path) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("killed")
    assert np.array_equal(np.load(path), np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["a.npy"]


def test_file_modes_follow_the_umask_unless_private(tmp_path):
    old = os.umask(0o022)
    try:
        atomic.write_text(tmp_path / "public.txt", "x")
        with atomic.atomic_path(tmp_path / "secret.txt", mode=0o600) as tmp:
            tmp.write_text("s")
    finally:
        os.umask(old)
    assert stat.S_IMODE((tmp_path / "public.txt").stat().st_mode) == atomic._FILE_MODE
    assert stat.S_IMODE((tmp_path / "secret.txt").stat().st_mode) == 0o600
