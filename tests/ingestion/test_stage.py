"""End-to-end `ingest` of the mixed tree (built studies, a broken corpus, a real CR): statuses, reasons,
cache, manifest, report, splits; arguments, duplicates, DICOMDIR, the bundled sample."""

import json
import shutil

import numpy as np
import pandas as pd
import pytest

from fixtures.ingest_fixtures import *  # noqa: F401,F403 (fixtures)
from fixtures.ingest_fixtures import BROKEN_EXPECTED, by_path, copy_tree
from xraymunit.data import transforms as T
from xraymunit.ingestion import IngestError, ingest
from xraymunit.io import dicom
from xraymunit.io.cohort import Cohort


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
    crashes = {"decoder_crashed", "worker_died"}  # provoked in tests/ingestion/test_workers.py, test_fallback.py
    assert set(dicom.FAIL_REASONS) - {"unreadable", "changed_during_ingest", *crashes} <= set(result.by_reason)


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


def test_patient_level_split_with_both_labels_everywhere(ingested):
    out, _ = ingested
    ok = Cohort.open(out).ok()
    assert ok.groupby("patient_key")["split"].nunique().max() == 1
    labelled = ok[ok["label"].notna()]
    table = labelled.groupby(["split", "label"])["patient_key"].nunique().unstack(fill_value=0)
    assert set(table.index) == {"train", "val", "test"}
    assert (table[["normal", "abnormal"]] >= 1).all().all()


def test_dicomdir_files_are_found_and_missing_ones_reported(built, ingested):
    out, _ = ingested
    rows = by_path(out)
    media = [f for f in built.site.files if f.rel.startswith("media/")]
    assert len(media) == 2 and all(rows.loc[f"site/{f.rel}", "status"] == "ok" for f in media)
    assert rows.loc[f"broken/{built.broken['missing_file']}", "reason"] == "missing_file"


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


def test_an_empty_input_folder_is_refused_and_leaves_no_output_folder(tmp_path):
    """An empty folder is almost always a wrong path: one line, exit 2, and no empty cohort left behind."""
    (tmp_path / "in" / "sub").mkdir(parents=True)
    with pytest.raises(IngestError, match=r"no files found in .*in \(searched recursively\)"):
        ingest(tmp_path / "in", tmp_path / "out", progress=False)
    assert not (tmp_path / "out").exists()


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
