"""Hostile input: identifiers and paths never leave the private folder, odd names, files changed mid-run."""

import os
import shutil
import stat

import pandas as pd

from fixtures.dicom_builder import INSTITUTION, REFERRING, source_pngs
from fixtures.ingest_fixtures import *  # noqa: F401,F403 (fixtures)
from fixtures.ingest_fixtures import by_path, copy_tree
from xraymunit.ingestion import ingest, merge


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
