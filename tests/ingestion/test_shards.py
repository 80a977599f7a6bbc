"""`--shard I/N` runs and `merge()`: the same cohort as a single run, refusals of unfinished shards."""

import shutil

import pandas as pd
import pytest

from fixtures.ingest_fixtures import *  # noqa: F401,F403 (fixtures)
from xraymunit.ingestion import IngestError, ingest, merge


def test_shards_then_merge_equal_a_single_run(built, tmp_path):
    salt = tmp_path / "salt.key"
    single = tmp_path / "single"
    ingest(built.mixed_root, single, labels=built.mixed_labels, salt_file=salt, progress=False)
    parts = []
    for i in (1, 2, 3):
        part = tmp_path / f"part{i}"
        r = ingest(built.mixed_root, part, shard=f"{i}/3", progress=False)
        assert not r.finalized and not (part / "manifest.parquet").exists()
        parts.append(part)
    sizes = [len((p / "private" / "files.shard-{}-of-3.txt".format(i + 1)).read_text().split()) for i, p in enumerate(parts)]
    assert all(s > 0 for s in sizes)
    merged = tmp_path / "merged"
    result = merge(parts, merged, labels=built.mixed_labels, salt_file=salt, progress=False)
    assert result.finalized and result.decoded == 0
    pd.testing.assert_frame_equal(pd.read_parquet(single / "manifest.parquet"), pd.read_parquet(merged / "manifest.parquet"))
    assert (single / "cache" / "images.npy").read_bytes() == (merged / "cache" / "images.npy").read_bytes()


def test_shards_sharing_one_folder_merge_in_place(built, tmp_path):
    out = tmp_path / "cohort"
    for i in (1, 2):
        ingest(built.site.root, out, shard=(i, 2), progress=False)
    result = merge([], out, labels=built.site.labels_csv, progress=False)
    assert result.images == len(built.site.files)


def test_merge_refuses_incomplete_or_inconsistent_shards(built, tmp_path):
    a, b = tmp_path / "a", tmp_path / "b"
    ingest(built.site.root, a, shard="1/2", progress=False)
    with pytest.raises(IngestError, match="2/2 missing"):
        merge([a], tmp_path / "m", progress=False)
    ingest(built.site.root, b, shard="2/2", size=128, progress=False)
    with pytest.raises(IngestError, match="different settings"):
        merge([a, b], tmp_path / "m", progress=False)
    journal = b / "private" / "journal.shard-2-of-2.jsonl"
    lines = journal.read_text().splitlines()
    journal.write_text("\n".join(l for l in lines if '"type":"done"' not in l) + "\n")
    with pytest.raises(IngestError, match="did not finish"):
        merge([a, b], tmp_path / "m", progress=False)


def test_shard_partition_is_stable_and_complete():
    from xraymunit.ingestion import in_shard

    rels = [f"p{i}/s/IM{i:04d}" for i in range(300)]
    parts = [[r for r in rels if in_shard(r, (i, 4))] for i in range(1, 5)]
    assert sorted(sum(parts, [])) == sorted(rels) and all(len(p) > 40 for p in parts)
    assert [r for r in rels if in_shard(r, (2, 4))] == parts[1]


def test_merge_refuses_shards_of_different_input_folders_with_as_many_files(built, tmp_path):
    """Issue 23 item 10: shards of two sites' folders with the same file count merged as one cohort.
    Site B is site A with one file renamed (same count, other listing); a plain copy of A is the same input."""
    site_a, copy_of_a, site_b = tmp_path / "a", tmp_path / "copy_of_a", tmp_path / "b"
    shutil.copytree(built.site.root, site_a)
    shutil.copytree(site_a, copy_of_a)
    shutil.copytree(site_a, site_b)
    first = sorted(p for p in site_b.rglob("*") if p.is_file())[0]
    first.rename(first.with_name("renamed_" + first.name))
    ingest(site_a, tmp_path / "s1", shard="1/2", progress=False)
    ingest(site_b, tmp_path / "s2", shard="2/2", progress=False)
    with pytest.raises(IngestError, match=r"shards saw different input folders \(the same number of files"):
        merge([tmp_path / "s1", tmp_path / "s2"], tmp_path / "m", progress=False)
    assert not (tmp_path / "m" / "manifest.parquet").exists()
    ingest(copy_of_a, tmp_path / "s2copy", shard="2/2", progress=False)  # moved or copied: the same input
    result = merge([tmp_path / "s1", tmp_path / "s2copy"], tmp_path / "m", progress=False)
    assert result.finalized and result.images == len(built.site.files)


@pytest.mark.parametrize("option, value, shown", [("size", 128, "--size 128 differs from the shards' 64"),
                                                  ("fit", "crop", "--fit crop differs from the shards' pad")])
def test_merge_refuses_an_image_option_it_cannot_apply(built, tmp_path, option, value, shown):
    """Issue 23 item 11: `--merge --size 128` over 64-px shards silently kept 64 px."""
    for i in (1, 2):
        ingest(built.site.root, tmp_path / "part", shard=f"{i}/2", size=64, progress=False)
    with pytest.raises(IngestError, match=shown):
        merge([], tmp_path / "part", progress=False, **{option: value})
    assert not (tmp_path / "part" / "manifest.parquet").exists()
    assert merge([], tmp_path / "part", size=64, progress=False).finalized  # the shards' own value is fine
