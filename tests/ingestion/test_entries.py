"""Cache entries in append-only segments: locations, validity checks, clean-up."""

import numpy as np
import pytest

from xraymunit.ingestion.entries import (
    EntryCheck, SegmentWriter, close_writers, entry_bytes, new_run_token, read_entry, remove_unreferenced, writer_for)


def images(n, size=16, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 65536, (size, size), dtype=np.uint16) for _ in range(n)]


def test_appended_images_read_back_at_their_offsets(tmp_path):
    writer = SegmentWriter(tmp_path, new_run_token())
    imgs = images(3)
    locations = [writer.append(im) for im in imgs]
    writer.close()
    assert [loc["offset"] for loc in locations] == [0, entry_bytes(16), 2 * entry_bytes(16)]
    assert len({loc["entry"] for loc in locations}) == 1 and locations[0]["entry"].startswith("entries/seg-")
    for im, loc in zip(imgs, locations):
        np.testing.assert_array_equal(read_entry(tmp_path, loc, 16), im)
    assert (tmp_path / locations[0]["entry"]).stat().st_size == 3 * entry_bytes(16)


def test_runs_never_share_a_segment(tmp_path):
    a = writer_for(tmp_path, new_run_token()).append(images(1)[0])
    b = writer_for(tmp_path, new_run_token()).append(images(1)[0])
    close_writers()
    assert a["entry"] != b["entry"] and a["offset"] == b["offset"] == 0


def test_one_writer_per_process_and_run(tmp_path):
    token = new_run_token()
    assert writer_for(tmp_path, token) is writer_for(tmp_path, token)
    writer_for(tmp_path, token).append(images(1)[0])
    close_writers()
    assert writer_for(tmp_path, token).fd is None  # a fresh writer after close
    close_writers()


def test_truncated_missing_and_old_style_entries_are_invalid(tmp_path):
    writer = SegmentWriter(tmp_path, new_run_token())
    first, second = (writer.append(im) for im in images(2))
    writer.close()
    check = EntryCheck(tmp_path, 16)
    assert check.is_valid(first) and check.is_valid(second)
    with open(tmp_path / second["entry"], "r+b") as fp:
        fp.truncate(2 * entry_bytes(16) - 1)
    check = EntryCheck(tmp_path, 16)  # sizes are cached per check
    assert check.is_valid(first) and not check.is_valid(second)
    assert not check.is_valid({"entry": "entries/seg-gone-1.bin", "offset": 0})
    assert not check.is_valid({"entry": "entries/a/abc.npy"})  # one .npy per image (earlier versions)
    assert not check.is_valid({"entry": first["entry"], "offset": -1})
    assert not EntryCheck(tmp_path, 32).is_valid(second)  # a different size does not fit


def test_remove_unreferenced_keeps_only_used_segments(tmp_path):
    used = SegmentWriter(tmp_path, new_run_token())
    loc = used.append(images(1)[0])
    used.close()
    orphan = SegmentWriter(tmp_path, new_run_token())
    orphan.append(images(1)[0])
    orphan.close()
    old = tmp_path / "entries" / "a" / "abc.npy"
    old.parent.mkdir(parents=True)
    np.save(old, images(1)[0])
    assert remove_unreferenced(tmp_path, {loc["entry"]}) == 2
    assert [p.relative_to(tmp_path).as_posix() for p in (tmp_path / "entries").rglob("*")] == [loc["entry"]]
    assert remove_unreferenced(tmp_path / "nowhere", set()) == 0


def test_a_failed_write_leaves_no_partial_image_and_true_offsets(tmp_path, monkeypatch):
    import os

    writer = SegmentWriter(tmp_path, new_run_token())
    first = writer.append(images(1)[0])
    real_write = os.write

    def disk_full_halfway(fd, data):
        real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", disk_full_halfway)
    with pytest.raises(OSError, match="No space"):
        writer.append(images(1, seed=1)[0])
    monkeypatch.setattr(os, "write", real_write)
    assert (tmp_path / first["entry"]).stat().st_size == entry_bytes(16)  # the half image is gone
    third_image = images(1, seed=2)[0]
    third = writer.append(third_image)
    writer.close()
    assert third["offset"] == entry_bytes(16)
    np.testing.assert_array_equal(read_entry(tmp_path, third, 16), third_image)
