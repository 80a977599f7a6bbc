"""Resume and reruns: the journal and cache entries make a rerun decode only what changed."""

import os

import numpy as np
import pandas as pd
import pytest

from fixtures.ingest_fixtures import *  # noqa: F401,F403 (fixtures)
from fixtures.ingest_fixtures import DecodeCounter, copy_tree, image_records
from xraymunit.ingestion import ingest
from xraymunit.io.cohort import Cohort


def test_rerun_decodes_nothing_and_gives_the_same_cohort(built, tmp_path, monkeypatch):
    out = tmp_path / "cohort"
    first = DecodeCounter(monkeypatch)
    r1 = ingest(built.site.root, out, labels=built.site.labels_csv, progress=False)
    assert first.n == r1.decoded == len(built.site.files)
    m1 = pd.read_parquet(out / "manifest.parquet")
    cache1 = (out / "cache" / "images.npy").read_bytes()
    second = DecodeCounter(monkeypatch)
    r2 = ingest(built.site.root, out, labels=built.site.labels_csv, progress=False)
    assert second.n == 0 and r2.decoded == 0 and r2.reused == len(built.site.files)
    pd.testing.assert_frame_equal(m1, pd.read_parquet(out / "manifest.parquet"))
    assert (out / "cache" / "images.npy").read_bytes() == cache1


def test_interrupted_run_resumes_where_it_stopped(built, tmp_path, monkeypatch):
    salt = tmp_path / "salt.key"
    reference = tmp_path / "reference"
    ingest(built.site.root, reference, labels=built.site.labels_csv, salt_file=salt, progress=False)
    out = tmp_path / "cohort"
    DecodeCounter(monkeypatch, stop_after=5)
    with pytest.raises(KeyboardInterrupt):
        ingest(built.site.root, out, labels=built.site.labels_csv, salt_file=salt, progress=False)
    assert not (out / "manifest.parquet").exists()
    segments = [e for e in (out / "private" / "entries").rglob("*") if e.is_file()]
    assert sum(e.stat().st_size for e in segments) == 5 * 256 * 256 * 2  # five whole entries, nothing else
    assert len(image_records(out)) == 5
    counter = DecodeCounter(monkeypatch)
    result = ingest(built.site.root, out, labels=built.site.labels_csv, salt_file=salt, progress=False)
    assert counter.n == len(built.site.files) - 5 and result.reused == 5
    pd.testing.assert_frame_equal(pd.read_parquet(reference / "manifest.parquet"), pd.read_parquet(out / "manifest.parquet"))
    assert (reference / "cache" / "images.npy").read_bytes() == (out / "cache" / "images.npy").read_bytes()


def test_changed_or_lost_entries_and_changed_settings_are_redone(built, tmp_path, monkeypatch):
    src = copy_tree(built.site.root, tmp_path / "site")
    out = tmp_path / "cohort"
    ingest(src, out, progress=False)
    f = built.site.by_name("mono2_12bit_rle")
    with open(src / f.rel, "ab") as fp:  # a re-exported file (trailing padding changes size and mtime)
        fp.write(b"\0\0")
    last = max((r for r in image_records(out) if r["status"] == "ok"), key=lambda r: r["offset"])
    assert last["rel"] != f.rel
    with open(out / "private" / last["entry"], "r+b") as fp:  # the last entry of its segment lost a byte
        fp.truncate(last["offset"] + 256 * 256 * 2 - 1)
    counter = DecodeCounter(monkeypatch)
    ingest(src, out, progress=False)
    assert counter.n == 2
    counter = DecodeCounter(monkeypatch)
    result = ingest(src, out, size=128, progress=False)
    assert counter.n == len(built.site.files) and result.decoded == counter.n
    assert Cohort.open(out).images.shape[1:] == (128, 128)


def test_unused_entries_are_cleaned_up_and_the_cohort_is_unchanged(built, tmp_path, monkeypatch):
    out = tmp_path / "cohort"
    ingest(built.site.root, out, progress=False)
    cache = (out / "cache" / "images.npy").read_bytes()
    entries = out / "private" / "entries"
    kept = sorted(p.name for p in entries.iterdir())
    (entries / "seg-killed-run-123.bin").write_bytes(b"\1" * 1000)  # bytes a killed run appended
    (entries / "3").mkdir()
    np.save(entries / "3" / "3f00.npy", np.zeros((256, 256), np.uint16))  # an earlier version's entry
    counter = DecodeCounter(monkeypatch)
    ingest(built.site.root, out, progress=False)
    assert counter.n == 0
    assert sorted(p.name for p in entries.iterdir()) == kept
    assert (out / "cache" / "images.npy").read_bytes() == cache
    ingest(built.site.root, out, size=128, progress=False)  # new settings: the 256² segment goes
    assert not set(p.name for p in entries.iterdir()) & set(kept)


def test_cache_packed_without_copy_file_range_is_the_same(built, tmp_path, monkeypatch):
    salt = tmp_path / "salt.key"
    ingest(built.site.root, tmp_path / "kernel", salt_file=salt, progress=False)
    monkeypatch.delattr(os, "copy_file_range")  # not on macOS / Windows: packed through a memmap
    ingest(built.site.root, tmp_path / "memmap", salt_file=salt, progress=False)
    assert (tmp_path / "kernel" / "cache" / "images.npy").read_bytes() == \
        (tmp_path / "memmap" / "cache" / "images.npy").read_bytes()


def test_two_workers_match_one_worker(built, tmp_path):
    salt = tmp_path / "salt.key"
    ingest(built.mixed_root, tmp_path / "w1", labels=built.mixed_labels, salt_file=salt, progress=False)
    r2 = ingest(built.mixed_root, tmp_path / "w2", labels=built.mixed_labels, salt_file=salt, workers=2, progress=False)
    assert r2.decoded > 0
    pd.testing.assert_frame_equal(pd.read_parquet(tmp_path / "w1" / "manifest.parquet"),
                                  pd.read_parquet(tmp_path / "w2" / "manifest.parquet"))
    assert (tmp_path / "w1" / "cache" / "images.npy").read_bytes() == (tmp_path / "w2" / "cache" / "images.npy").read_bytes()
