"""End-to-end `ingest` on built DICOM studies, a broken corpus, a real CR and PNG folders."""

import json
import os
import shutil
import stat

import numpy as np
import pandas as pd
import pytest

from fixtures.dicom_builder import INSTITUTION, REFERRING, source_pngs
from fixtures.ingest_fixtures import *  # noqa: F401,F403 (fixtures)
from xraymunit.data import transforms as T
from xraymunit.ingestion import IngestError, ingest, merge
from xraymunit.io import dicom, manifest, raster
from xraymunit.io.cohort import Cohort

BROKEN_EXPECTED = {
    "empty_file": ("failed", "empty_file"), "not_dicom": ("skipped", "not_dicom"),
    "truncated": ("failed", "truncated"), "truncated_encapsulated": ("failed", "truncated"),
    "no_pixel_data": ("failed", "no_pixel_data"), "sr_document": ("skipped", "sr_document"),
    "rt_object": ("skipped", "rt_object"), "non_image_object": ("skipped", "non_image_object"),
    "modality": ("skipped", "modality"), "colour": ("skipped", "colour"),
    "multi_frame": ("skipped", "multi_frame"), "zero_size": ("failed", "zero_size"),
    "absurd_dimensions": ("failed", "absurd_dimensions"), "absurd_dimensions_tiny": ("failed", "absurd_dimensions"),
    "unsupported_transfer_syntax": ("failed", "unsupported_transfer_syntax"),
    "unsupported_transfer_syntax_private": ("failed", "unsupported_transfer_syntax"),
    "unsupported_pixel_format": ("failed", "unsupported_pixel_format"),
    "header_error": ("failed", "header_error"), "decode_error": ("failed", "decode_error"),
    "dicomdir": ("skipped", "dicomdir"), "missing_file": ("failed", "missing_file"),
    "duplicate": ("skipped", "duplicate"), "duplicate_original": ("ok", None),
    "decompression_bomb": ("failed", "decompression_bomb"),
}


def by_path(cohort_dir):
    """Manifest rows indexed by relative path, through the private key map."""
    m = pd.read_parquet(cohort_dir / "manifest.parquet")
    keys = pd.read_parquet(cohort_dir / "private" / "keys.parquet")[["image_key", "rel_path"]]
    return m.merge(keys, on="image_key", how="left").set_index("rel_path")


def image_records(cohort_dir):
    """The journal's decode records (what makes a cache entry exist)."""
    lines = (cohort_dir / "private" / "journal.jsonl").read_text().splitlines()
    return [r for r in map(json.loads, lines) if r["type"] == "image"]


READERS = {(dicom, "read_stored_pixels"): dicom.read_stored_pixels, (raster, "read_raster"): raster.read_raster}


class DecodeCounter:
    """Counts real pixel decodes (wraps, does not replace, the readers); optionally interrupts."""

    def __init__(self, monkeypatch, stop_after=None):
        self.n = 0
        self.stop_after = stop_after
        for (module, name), original in READERS.items():

            def wrapper(*args, _original=original, **kwargs):
                if self.stop_after is not None and self.n >= self.stop_after:
                    raise KeyboardInterrupt
                self.n += 1
                return _original(*args, **kwargs)

            monkeypatch.setattr(module, name, wrapper)


# ------------------------------------------------------------------ the mixed tree

def test_every_file_gets_the_right_status_and_reason(built, ingested):
    out, result = ingested
    rows = by_path(out)
    for case, rel in built.broken.items():
        status, reason = BROKEN_EXPECTED[case]
        row = rows.loc[f"broken/{rel}"]
        assert (row.status, None if pd.isna(row.reason) else row.reason) == (status, reason), (case, row.reason_detail)
        if status != "ok":
            assert row.cache_index == -1 and pd.isna(row.split)
    for f in built.site.files:
        assert rows.loc[f"site/{f.rel}", "status"] == "ok", f.variant.name
    assert rows.loc["site/media/DICOMDIR", "reason"] == "dicomdir"
    assert rows.loc["CR-MONO1-10-chest", "status"] == "ok"
    assert result.images == len(built.site.files) + 3  # + the real CR, the disc image its DICOMDIR still has,
    # and the first of the two copies of one instance
    assert set(dicom.SKIP_REASONS) <= set(result.by_reason)
    assert set(dicom.FAIL_REASONS) - {"unreadable", "changed_during_ingest"} <= set(result.by_reason)


def test_report_counts_match_the_manifest_and_list_problems_by_key(ingested):
    out, result = ingested
    m = pd.read_parquet(out / "manifest.parquet")
    report = json.loads((out / "ingest_report.json").read_text())
    assert report["files"] == len(m) == result.files
    assert report["by_status"] == {k: int(v) for k, v in m["status"].value_counts().items()}
    assert sum(report["by_reason"].values()) == int((m["status"] != "ok").sum())
    assert {p["image_key"] for p in report["problems"]} == set(m.loc[m["status"] != "ok", "image_key"])
    assert all(k in report["reason_descriptions"] for k in report["by_reason"])
    assert report["labels"]["matched_by"] == {"csv:sop": 15}
    assert report["this_run"]["decoded"] == report["images"] + 2  # + the junk J2K, + the duplicate copy


def test_cache_holds_the_right_images_in_manifest_order(built, ingested):
    out, _ = ingested
    cohort = Cohort.open(out)
    rows = by_path(out)
    assert cohort.images.dtype == np.uint16 and cohort.images.shape == (len(cohort.ok()), 256, 256)
    assert cohort.cache_meta["size"] == 256 and cohort.cache_meta["fit"] == "pad"
    assert sorted(cohort.ok()["cache_index"]) == list(range(len(cohort.ok())))
    for f in built.site.files:
        img = cohort.image(rows.loc[f"site/{f.rel}", "cache_index"])
        err = np.abs(img - T.square_fit(f.expected, "pad"))
        if f.variant.window is not None and f.variant.syntax in ("explicit", "rle", "j2k", "jpeg_lossless", "implicit_nometa"):
            assert err.max() < (0.01 if f.variant.voi_function else 0.002), f.variant.name
        else:
            assert np.corrcoef(img.ravel(), T.square_fit(f.expected, "pad").ravel())[0, 1] > 0.99, f.variant.name


def test_manifest_metadata(built, ingested):
    out, _ = ingested
    rows = by_path(out)
    f = built.site.by_name("cr_mono1_15bit")
    r = rows.loc[f"site/{f.rel}"]
    src = f.source
    assert (r.modality, r.photometric, r.bits_stored, r.sex, r.age, r.view_position) == ("CR", "MONOCHROME1", 15, src.sex, float(src.age), src.view)
    assert (r.spacing_row_mm, r.spacing_source) == (0.143, "PixelSpacing")
    assert r.label == src.label and r.label_source == "csv:sop" and r.window_source == "window"
    assert "invert:MONOCHROME1" in r.pixel_steps
    r = rows.loc[f"site/{built.site.by_name('mono2_12bit_window').rel}"]
    assert (r.spacing_row_mm, r.spacing_source, r.manufacturer) == (0.572, "ImagerPixelSpacing", "Carestream Health")
    r = rows.loc[f"site/{built.site.by_name('overlay_bits_birthdate').rel}"]
    assert r.age == float(built.site.by_name("overlay_bits_birthdate").source.age)  # from the birth date
    r = rows.loc[f"site/{built.site.by_name('mono2_12bit_j2k_lossless').rel}"]
    assert r.transfer_syntax == "JPEG 2000 Image Compression (Lossless Only)"
    r = rows.loc["CR-MONO1-10-chest"]
    assert pd.isna(r.label) and r.transfer_syntax == "Implicit VR Little Endian" and r.manufacturer.startswith("FUJI")
    # same study and patient → same keys; different images → different sop keys
    a = rows.loc[f"site/{built.site.by_name('mono2_12bit_window').rel}"]
    b = rows.loc[f"site/{built.site.by_name('mono2_12bit_rle').rel}"]
    assert a.patient_key == b.patient_key and a.study_key == b.study_key and a.sop_key != b.sop_key


def test_no_identifier_or_path_leaves_the_private_folder(built, ingested):
    out, _ = ingested
    m = pd.read_parquet(out / "manifest.parquet")
    shared = "\n".join(str(v) for v in m.to_numpy().ravel()) + "\n".join(m.columns)
    for name in ("ingest_report.json", "cache/meta.json"):
        shared += (out / name).read_text()
    secrets = {INSTITUTION, REFERRING, "Fixture^", str(built.base), "site/", "broken/", "ST0000"}
    for f in built.site.files:
        secrets |= {f.source.patient_id, f.sop_uid, f.study_uid, f.rel}
    secrets |= {f"{2019 - s.age - 1}0601" for s in source_pngs()}  # birth dates written into the headers
    leaked = [s for s in secrets if s in shared]
    assert not leaked, leaked
    private = out / "private"
    assert stat.S_IMODE(private.stat().st_mode) == 0o700
    assert stat.S_IMODE((private / "salt.key").stat().st_mode) == 0o600
    keys = pd.read_parquet(private / "keys.parquet")
    assert set(keys["patient_id"].dropna()) >= {f.source.patient_id for f in built.site.files}


def test_patient_level_split_with_both_labels_everywhere(ingested):
    out, _ = ingested
    ok = Cohort.open(out).ok()
    assert ok.groupby("patient_key")["split"].nunique().max() == 1
    labelled = ok[ok["label"].notna()]
    table = labelled.groupby(["split", "label"])["patient_key"].nunique().unstack(fill_value=0)
    assert set(table.index) == {"train", "val", "test"}
    assert (table[["normal", "abnormal"]] >= 1).all().all()


# ------------------------------------------------------------------ resume and reruns

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


def test_dicomdir_files_are_found_and_missing_ones_reported(built, ingested):
    out, _ = ingested
    rows = by_path(out)
    media = [f for f in built.site.files if f.rel.startswith("media/")]
    assert len(media) == 2 and all(rows.loc[f"site/{f.rel}", "status"] == "ok" for f in media)
    assert rows.loc[f"broken/{built.broken['missing_file']}", "reason"] == "missing_file"


# ------------------------------------------------------------------ PNG / JPEG folders and labels

def test_png_folder_with_labels_csv(built, tmp_path):
    out = tmp_path / "cohort"
    result = ingest(built.png_root, out, labels=built.png_csv, progress=False)
    rows = by_path(out)
    assert result.images == 6 and set(rows["source_format"]) == {"png", "jpeg"}
    assert set(rows["label_source"]) == {"csv:path"} and set(rows["source_dataset"]) == {"nih_chestxray14"}
    src = {s.path.stem: s for s in source_pngs()}
    for rel, r in rows.iterrows():
        s = src[rel.split("/")[-1].rsplit(".", 1)[0]]
        assert (r.sex, r.age, r.view_position, r.label) == (s.sex, float(s.age), s.view, s.label)
    steps = ";".join(rows["pixel_steps"])
    assert "rgb_grey" in steps and "grey16" in steps and "load:jpeg" in steps
    assert rows["patient_key"].nunique() == 6  # patient_id column used, no per-file fallback
    report = json.loads((out / "ingest_report.json").read_text())
    assert not any("no patient id" in w for w in report["warnings"])


def test_png_folder_labels_from_normal_abnormal_subfolders(built, tmp_path):
    out = tmp_path / "cohort"
    ingest(built.png_root, out, progress=False)
    rows = by_path(out)
    assert set(rows["label_source"]) == {"folder"}
    assert all(r.label == rel.split("/")[0] for rel, r in rows.iterrows())
    report = json.loads((out / "ingest_report.json").read_text())
    assert any("no patient id" in w for w in report["warnings"])


def test_png_disguised_as_dcm_is_read_as_png(built, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    shutil.copy(built.png_root / "normal" / "nih__00001280_004.png", src / "IM0001.dcm")
    ingest(src, tmp_path / "out", progress=False)
    assert by_path(tmp_path / "out").loc["IM0001.dcm", "source_format"] == "png"


def test_labels_that_match_nothing_stop_before_decoding(built, tmp_path, monkeypatch):
    wrong = tmp_path / "wrong.csv"
    wrong.write_text("SOPInstanceUID,label\n1.2.3.4,abnormal\n")
    counter = DecodeCounter(monkeypatch)
    with pytest.raises(manifest.LabelsError, match="none of the 1 rows"):
        ingest(built.site.root, tmp_path / "out", labels=wrong, progress=False)
    assert counter.n == 0


def test_output_inside_input_is_not_ingested(built, tmp_path):
    src = copy_tree(built.png_root, tmp_path / "pngs")
    ingest(src, src / "cohort", progress=False)
    result = ingest(src, src / "cohort", progress=False)
    assert result.files == 6


def test_crop_fit_and_bad_arguments(built, tmp_path):
    out = tmp_path / "crop"
    ingest(built.site.root, out, fit="crop", size=64, progress=False)
    assert Cohort.open(out).cache_meta["fit"] == "crop"
    assert any("crop_square" in s for s in pd.read_parquet(out / "manifest.parquet")["pixel_steps"].dropna())
    for kwargs, message in [({"size": 4}, "--size"), ({"fit": "stretch"}, "--fit"), ({"workers": 0}, "--workers"),
                            ({"shard": "3/2"}, "--shard"), ({"shard": "x"}, "--shard"), ({"modalities": []}, "--modalities")]:
        with pytest.raises(IngestError, match=message):
            ingest(built.site.root, tmp_path / "bad", progress=False, **kwargs)
    with pytest.raises(IngestError, match="not found"):
        ingest(tmp_path / "nope", tmp_path / "bad", progress=False)


def test_duplicate_instances_are_kept_once(built, tmp_path):
    src = copy_tree(built.site.root, tmp_path / "site")
    f = built.site.by_name("mono2_12bit_rle")
    shutil.copy(src / f.rel, src / "zz_second_export.dcm")
    ingest(src, tmp_path / "out", progress=False)
    rows = by_path(tmp_path / "out")
    assert rows.loc[f.rel, "status"] == "ok"
    dup = rows.loc["zz_second_export.dcm"]
    assert (dup.status, dup.reason, dup.cache_index) == ("skipped", "duplicate", -1)
    assert rows.loc[f.rel, "image_key"] in dup.reason_detail
    assert Cohort.open(tmp_path / "out").images.shape[0] == len(built.site.files)


def test_raw_for_processing_images_are_flagged(built, tmp_path):
    import pydicom

    src = copy_tree(built.site.root, tmp_path / "site")
    f = built.site.by_name("mono2_12bit_window")
    ds = pydicom.dcmread(src / f.rel)
    ds.PresentationIntentType = "FOR PROCESSING"
    ds.save_as(src / f.rel)
    report = ingest(src, tmp_path / "out", progress=False).report
    assert any("1 images are DX 'FOR PROCESSING'" in w for w in report["warnings"])


def test_empty_input_folder_makes_an_empty_cohort(tmp_path):
    (tmp_path / "in").mkdir()
    result = ingest(tmp_path / "in", tmp_path / "out", progress=False)
    assert result.files == 0 and Cohort.open(tmp_path / "out").images.shape == (0, 256, 256)


def test_shard_partition_is_stable_and_complete():
    from xraymunit.ingestion import in_shard

    rels = [f"p{i}/s/IM{i:04d}" for i in range(300)]
    parts = [[r for r in rels if in_shard(r, (i, 4))] for i in range(1, 5)]
    assert sorted(sum(parts, [])) == sorted(rels) and all(len(p) > 40 for p in parts)
    assert [r for r in rels if in_shard(r, (2, 4))] == parts[1]


def test_bundled_sample_cohort_ingests_cleanly(tmp_path):
    """The default data of the main job: 60 multi-vendor DICOM studies, 30 normal / 30 abnormal."""
    from xraymunit import sample_data

    out = tmp_path / "cohort"
    result = ingest(sample_data.path(), out, labels=sample_data.labels_csv(), progress=False)
    assert result.files == result.images == 60
    m = Cohort.open(out).ok()
    assert m["label"].value_counts().to_dict() == {"normal": 30, "abnormal": 30}
    assert m["patient_key"].nunique() == 60 and set(m["label_source"]) == {"csv:sop"}
    assert set(m["modality"]) == {"CR", "DX"} and set(m["photometric"]) == {"MONOCHROME1", "MONOCHROME2"}
    assert set(m["window_source"]) == {"window", "percentile"}
    assert set(m["transfer_syntax"]) >= {"RLE Lossless", "JPEG 2000 Image Compression (Lossless Only)"}
    assert set(m["spacing_row_mm"]) == {0.572} and m["age"].notna().all() and m["sex"].notna().all()
    by_split = m.groupby(["split", "label"]).size().unstack()
    assert (by_split >= 4).all().all()  # both labels in train, val and test
    (right, left), mediastinum = ((Cohort.open(out).stack(m["cache_index"])[:, 90:150, 45:80].mean(),
                                   Cohort.open(out).stack(m["cache_index"])[:, 90:150, 176:211].mean()),
                                  Cohort.open(out).stack(m["cache_index"])[:, 90:150, 118:138].mean())
    assert right < mediastinum and left < mediastinum  # bright = dense across all five vendor profiles


# ------------------------------------------------------------------ hostile input: names, details, changes

def test_non_utf8_file_names_are_ingested_and_resume(built, tmp_path):
    src = tmp_path / "in"
    src.mkdir()
    good = built.site.by_name("mono2_12bit_window")
    bad_dcm = os.fsdecode(b"bad\xff\xfe.dcm")
    shutil.copy(built.site.root / good.rel, src / bad_dcm)
    (src / os.fsdecode(b"notes\xe9\n.txt")).write_text("not an image\n")
    out = tmp_path / "cohort"
    result = ingest(src, out, progress=False)
    assert result.by_status == {"ok": 1, "skipped": 1}
    rows = by_path(out)
    assert rows.loc["bad\\xff\\xfe.dcm", "status"] == "ok"  # keys.parquet shows the name escaped
    assert rows.loc["notes\\xe9\n.txt", "reason"] == "not_dicom"
    listing = (out / "private" / "files.txt").read_bytes()
    assert b"bad\xff\xfe.dcm\n" in listing
    again = ingest(src, out, progress=False)
    assert again.decoded == 0 and again.reused == 1 and again.by_status == result.by_status
    part = tmp_path / "part"
    ingest(src, part, shard="1/1", progress=False)
    merged = merge([part], tmp_path / "merged", progress=False)
    assert merged.by_status == result.by_status


def _names_in(value) -> set[str]:
    return {str(v) for v in (value if isinstance(value, (list, tuple)) else [value]) if v}


def test_no_path_part_or_header_value_reaches_the_shared_outputs(built, tmp_path, monkeypatch):
    import pydicom

    top = tmp_path / "Smith Jr 19430517"
    study = top / "Doe Jane 1951 chest"
    study.mkdir(parents=True)
    shutil.copy(built.site.root / built.site.by_name("mono2_12bit_window").rel, study / "IM Smith 0001.dcm")
    shutil.copy(built.broken_root / built.broken["decode_error"], study / "IM Smith 0002.dcm")
    shutil.copy(built.broken_root / built.broken["header_error"], study / "IM Smith 0003.dcm")
    shutil.copy(built.broken_root / built.broken["truncated"], study / "IM Smith 0004.dcm")
    png = (built.png_root / "normal" / "nih__00001280_004.png").read_bytes()
    (study / "scan of Smith 0005.png").write_bytes(png[:40] + b"\0" * 200)  # PNG magic, corrupt body
    (study / "scan of Smith 0006.png").write_bytes(png[: len(png) // 2])  # cut in the pixel data
    secrets = {"Smith Jr 19430517", "Doe Jane 1951 chest", "IM Smith", "scan of Smith", "19430517", tmp_path.name}
    for path in study.iterdir():
        if path.suffix == ".dcm":
            ds = pydicom.dcmread(path, force=True, stop_before_pixels=True)
            secrets |= _names_in(ds.get("PatientID")) | _names_in(ds.get("PatientName"))
    secrets.discard("")
    monkeypatch.chdir(tmp_path)
    for name, src in (("absolute", top.resolve()), ("relative", "Smith Jr 19430517")):
        out = tmp_path / f"cohort-{name}"
        result = ingest(src, out, progress=False)
        assert result.images == 1 and result.by_status.get("failed", 0) >= 4, result.by_reason
        shared = [p for p in out.rglob("*") if p.is_file() and "private" not in p.relative_to(out).parts]
        assert {p.name for p in shared} >= {"manifest.parquet", "ingest_report.json"}
        for path in shared:
            data = path.read_bytes()
            leaked = [s for s in secrets if s.encode() in data]
            assert not leaked, (path.name, leaked)
        details = pd.read_parquet(out / "manifest.parquet")["reason_detail"].dropna()
        assert len(details) >= 4 and not details.str.contains("/").any()


def _between_passes(monkeypatch, action):
    """Run `action()` after the header pass, before the decode pass."""
    from xraymunit.ingestion import stage

    original = stage._decode_pass

    def decode_pass(*args, **kwargs):
        action()
        return original(*args, **kwargs)

    monkeypatch.setattr(stage, "_decode_pass", decode_pass)


def test_files_changed_between_the_passes_are_not_taken(built, tmp_path, monkeypatch):
    src = copy_tree(built.png_root, tmp_path / "in")
    shutil.copy(built.site.root / built.site.by_name("mono2_12bit_window").rel, src / "dicom_truncated.dcm")
    shutil.copy(built.site.root / built.site.by_name("mono2_12bit_rle").rel, src / "dicom_deleted.dcm")
    pngs = sorted(p.relative_to(src).as_posix() for p in src.rglob("*.png"))
    jpeg = next(p.relative_to(src).as_posix() for p in src.rglob("*.jpg"))
    replaced, deleted, same_size = pngs[0], pngs[1], pngs[2]

    def change():
        other = (src / pngs[3]).read_bytes()
        (src / "new.tmp").write_bytes(other)
        os.replace(src / "new.tmp", src / replaced)  # replaced: other pixels
        (src / deleted).unlink()
        (src / "dicom_deleted.dcm").unlink()
        for rel in (jpeg, "dicom_truncated.dcm"):
            data = (src / rel).read_bytes()
            (src / rel).write_bytes(data[: len(data) - 3000])  # truncated in place
        st = os.stat(src / same_size)  # replaced by another file of the same size and mtime
        (src / "same.tmp").write_bytes((src / same_size).read_bytes())
        os.utime(src / "same.tmp", ns=(st.st_atime_ns, st.st_mtime_ns))
        os.replace(src / "same.tmp", src / same_size)

    _between_passes(monkeypatch, change)
    out = tmp_path / "cohort"
    ingest(src, out, progress=False)
    rows = by_path(out)
    expected = {replaced: "changed_during_ingest", deleted: "missing_file", "dicom_deleted.dcm": "missing_file",
                jpeg: "changed_during_ingest", "dicom_truncated.dcm": "changed_during_ingest",
                same_size: "changed_during_ingest"}
    for rel, reason in expected.items():
        assert (rows.loc[rel, "status"], rows.loc[rel, "reason"]) == ("failed", reason), rel
    assert (rows.loc[pngs[3], "status"]) == "ok"
    monkeypatch.undo()
    ingest(src, out, progress=False)  # a rerun takes the files as they are now
    rows = by_path(out)
    assert rows.loc[replaced, "status"] == "ok" and rows.loc[same_size, "status"] == "ok"
    assert deleted not in rows.index and "dicom_deleted.dcm" not in rows.index


def test_contrast_equalize_flattens_every_histogram_and_default_fingerprint_is_unchanged(built, tmp_path):
    from xraymunit.ingestion.settings import IngestSettings
    from xraymunit.io.cohort import Cohort

    assert "contrast" not in IngestSettings().to_json()  # cohorts ingested before the option stay valid
    assert IngestSettings(contrast="equalize").fingerprint != IngestSettings().fingerprint
    plain, equalized = tmp_path / "plain", tmp_path / "equalized"
    ingest(built.png_root, plain, labels=built.png_csv, progress=False)
    ingest(built.png_root, equalized, labels=built.png_csv, contrast="equalize", progress=False)
    a, b = Cohort.open(plain), Cohort.open(equalized)
    medians_plain = np.median(a.images.reshape(len(a.images), -1), axis=1)
    medians_eq = np.median(b.images.reshape(len(b.images), -1), axis=1) / 65535
    assert np.ptp(medians_eq) < 0.5 * np.ptp(medians_plain / 65535)
    assert all("contrast:equalize" in s for s in b.manifest["pixel_steps"])
    assert json.loads((equalized / "cache" / "meta.json").read_text())["contrast"] == "equalize"
    with pytest.raises(IngestError, match="--contrast"):
        ingest(built.png_root, tmp_path / "bad", contrast="bogus", progress=False)
