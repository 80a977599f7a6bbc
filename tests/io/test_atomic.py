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


def test_temp_names_are_recognised_exactly():
    assert atomic.is_temp_name(".last.pt.k1ll3d_0.tmp.pt") and atomic.is_temp_name(".a.png.abcdefgh.tmp.png")
    assert atomic.is_temp_name(".files.abcdefgh.tmp")  # a final name without suffix
    for name in ("last.pt", ".last.pt.tmp", ".a.png.ABCDEFGH.tmp.png", ".a.png.abcdefgh.tmp.pt", ".hidden.png",
                 "a.png.abcdefgh.tmp.png", ".a.png.abcdefg.tmp.png"):
        assert not atomic.is_temp_name(name), name


def test_a_killed_writer_leaves_a_temp_name_that_remove_stale_temps_finds(tmp_path):
    """The names atomic_path really makes (not a copy of its pattern) are what gets removed."""
    leftovers = []
    for final in ("last.pt", "images/k/x.png", "metrics.csv", "files"):
        with pytest.raises(KeyboardInterrupt):
            with atomic.atomic_path(tmp_path / final) as tmp:
                tmp.write_bytes(b"half")
                leftovers.append(tmp.parent / ("kept_" + tmp.name))
                os.link(tmp, leftovers[-1])  # what a kill -9 would have left (the cleanup removes `tmp`)
                raise KeyboardInterrupt
        os.replace(leftovers[-1], leftovers[-1].with_name(leftovers[-1].name[len("kept_"):]))
    left = sorted(p for p in tmp_path.rglob("*") if p.is_file())
    assert len(left) == 4 and all(atomic.is_temp_name(p.name) for p in left)
    assert atomic.remove_stale_temps(tmp_path) == 4
    assert not [p for p in tmp_path.rglob("*") if p.is_file()]


def test_remove_stale_temps_touches_only_our_temp_files_inside_the_folder(tmp_path):
    out, outside = tmp_path / "out", tmp_path / "outside"
    (out / "images" / "k").mkdir(parents=True)
    outside.mkdir()
    stale = [out / ".last.pt.abcd_123.tmp.pt", out / "images" / "k" / ".x.png.q1w2e3r4.tmp.png"]
    kept = [out / "last.pt", out / "images" / "k" / "x.png", out / "notes.tmp.png", out / ".x.png.tmp",
            outside / ".y.png.q1w2e3r4.tmp.png"]
    for path in stale + kept:
        path.write_bytes(b"x")
    (out / "linked").symlink_to(outside)  # a folder link: not followed
    (out / ".z.png.zzzzzzzz.tmp.png").symlink_to(outside / ".y.png.q1w2e3r4.tmp.png")  # a link: not a temp file
    assert atomic.remove_stale_temps(out) == 2
    assert not any(p.exists() for p in stale) and all(p.exists() for p in kept)
    assert (out / ".z.png.zzzzzzzz.tmp.png").is_symlink()
    assert atomic.remove_stale_temps(out) == 0
