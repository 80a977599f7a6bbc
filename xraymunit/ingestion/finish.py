"""Finalize: labels, pseudonymous keys, patient-level splits, the packed cache, manifest and report."""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections import Counter
from pathlib import Path
from typing import Sequence

import numpy as np

from xraymunit import __version__
from xraymunit.io import atomic, manifest
from xraymunit.io.dicom_header import REASONS
from xraymunit.ingestion.keys import Pseudonymiser, display_path, load_or_create_salt
from xraymunit.ingestion.labels import KEY_PRIORITY, LabelTable, folder_label
from xraymunit.ingestion.splits import SPLITS, assign_splits, fixed_patient_splits, patient_table
from xraymunit.io.cohort import CACHE_IMAGES, CACHE_META, INGEST_REPORT, MANIFEST
from xraymunit.ingestion.journal import FileState, status_of
from xraymunit.ingestion.entries import EntryCheck, entry_bytes, read_entry, remove_unreferenced
from xraymunit.ingestion.per_file import progress_bar
from xraymunit.ingestion.settings import ENTRIES, IngestError, IngestSettings, PIPELINE_VERSION, PRIVATE

log = logging.getLogger(__name__)


def finalize(out: Path, records: list[tuple[str, FileState]], settings: IngestSettings,
             table: LabelTable | None, salt_file: str | os.PathLike | None,
             fractions: Sequence[float], progress: bool, run: dict) -> dict:
    """Manifest + splits + packed cache + report from journalled per-file records."""
    private = out / PRIVATE
    salt, salt_source = load_or_create_salt(private, salt_file)
    pseudo = Pseudonymiser(salt)
    warnings: list[str] = []
    rows, keymap, fixed = [], [], {}
    patient_fallback = Counter()
    for rel, st in records:
        row, ids, hit = _manifest_row(rel, st, table, pseudo, patient_fallback)
        rows.append(row)
        if hit is not None and hit.split is not None:
            fixed[row["image_key"]] = (hit.split, hit.row)
        keymap.append({"image_key": row["image_key"], "rel_path": display_path(rel),
                       "patient_key": row["patient_key"],
                       "patient_id": ids.get("patient_id"), "study_key": row["study_key"], "study_uid": ids.get("study_uid"),
                       "series_key": row["series_key"], "series_uid": ids.get("series_uid"),
                       "sop_key": row["sop_key"], "sop_uid": ids.get("sop_uid")})
    _mark_duplicates(rows)
    ok_rows = [r for r in rows if r["status"] == "ok"]
    raw = sum(1 for (_, st), r in zip(records, rows) if r["status"] == "ok"
              and (st.header["scan"].get("meta") or {}).get("presentation_intent") == "FOR PROCESSING")
    if raw:
        warnings.append(f"{raw} images are DX 'FOR PROCESSING' (raw detector data, before the vendor's image "
                        f"processing): they look different from 'FOR PRESENTATION' images of the same chest")
    if patient_fallback["study"]:
        warnings.append(f"{patient_fallback['study']} images have no PatientID: their StudyInstanceUID stands in "
                        f"for the patient, so one patient's studies could land in different splits")
    if patient_fallback["file"]:
        warnings.append(f"{patient_fallback['file']} images have no patient id (no PatientID, no patient_id column): "
                        f"each counts as its own patient, so splits cannot prevent patient leakage for them")
    _dedupe_image_keys(rows)

    split_of, fixed_counts = _split_patients(ok_rows, fixed, pseudo, fractions)
    for r in ok_rows:
        r["split"] = split_of[r["patient_key"]]

    # Pack the cache in manifest order; an entry that cannot be read turns its row into a failure.
    manifest_path = out / MANIFEST
    manifest_path.unlink(missing_ok=True)  # a killed finalize must not leave an old manifest over a new cache
    n_packed, signature = _pack_cache(out, private, records, rows, settings, progress)

    df = manifest.to_frame(rows)
    report = _report(df, settings, fractions, table, salt_source, run, warnings)
    if fixed_counts is not None:
        report["splits_fixed_by_csv"] = fixed_counts
    atomic.write_json(out / CACHE_META, {
        "size": settings.size, "count": n_packed, "dtype": "uint16", "fit": settings.fit,
        "window": settings.window, "percentiles": list(settings.percentiles), "contrast": settings.contrast,
        "intensity": "value / 65535 = display intensity in [0, 1] after Modality LUT, VOI LUT/window "
                     "and MONOCHROME1 inversion; bright = dense (bone), dark = air",
        "order": "row i is the manifest row whose cache_index is i",
        "pipeline_version": PIPELINE_VERSION, "xraymunit": __version__, "pack_signature": signature,
    })
    import pandas as pd

    with atomic.atomic_path(private / "keys.parquet", mode=0o600) as tmp:  # identifiers: owner only
        pd.DataFrame(keymap).to_parquet(tmp, index=False)
    atomic.write_json(out / INGEST_REPORT, report)
    manifest.write_manifest(df, manifest_path)
    remove_unreferenced(private, {st.image["entry"] for _, st in records if st.image and st.image.get("entry")})
    return report


def _split_patients(ok_rows: list[dict], fixed: dict[str, tuple[str, int]], pseudo: Pseudonymiser,
                    fractions: Sequence[float]) -> tuple[dict[str, str], dict | None]:
    """Patient → split over the successfully ingested images: the labels CSV's split column first
    (a patient with one named image is fixed whole), the seeded stratified split for the others;
    and, when the column fixed anything, how many patients and images each way."""
    if not ok_rows:
        return {}, None
    import pandas as pd

    split_of = fixed_patient_splits([(r["patient_key"], *fixed[r["image_key"]]) for r in ok_rows
                                     if r["image_key"] in fixed])
    rest = patient_table(pd.DataFrame([r for r in ok_rows if r["patient_key"] not in split_of],
                                      columns=["patient_key", "label", "source_dataset"]))
    seeded = assign_splits(rest, pseudo, fractions) if len(rest) else {}
    if not split_of:
        return seeded, None
    fixed_images = sum(r["patient_key"] in split_of for r in ok_rows)
    counts = {"csv_rows": len({row for split, row in fixed.values()}),
              "patients": len(split_of), "images": fixed_images, "seeded_patients": len(seeded),
              "seeded_images": len(ok_rows) - fixed_images,
              "by_split": {s: sum(v == s for v in split_of.values()) for s in SPLITS}}
    log.info("labels CSV split column fixed the split of %d patient(s) (%d image(s)); %d patient(s) (%d image(s)) "
             "got the seeded split", counts["patients"], counts["images"], counts["seeded_patients"],
             counts["seeded_images"])
    return {**seeded, **split_of}, counts


def _manifest_row(rel: str, st: FileState, table: LabelTable | None,
                  pseudo: Pseudonymiser, patient_fallback: Counter) -> tuple[dict, dict, object]:
    scan = st.header["scan"]
    meta = dict(scan.get("meta") or {})
    ids = dict(scan.get("ids") or {})
    status, reason, detail = status_of(st)
    row = manifest.empty_row()
    row.update({k: meta.get(k) for k in ("modality", "sex", "age", "view_position", "body_part", "manufacturer",
                                         "photometric", "bits_stored", "transfer_syntax", "rows", "columns",
                                         "spacing_row_mm", "spacing_col_mm", "spacing_source")})
    row["source_format"] = scan.get("kind")
    row.update(status=status, reason=reason, reason_detail=detail)
    if status == "ok":
        row["window_source"] = st.image.get("window_source")
        row["pixel_steps"] = ";".join(st.image.get("steps") or [])
    hit, source = table.match(rel, ids) if table is not None else (None, None)
    if hit is not None:
        row["label"], row["label_source"] = hit.label, source
        row["source_dataset"] = hit.source_dataset
        row["sex"] = row["sex"] or hit.sex
        row["age"] = row["age"] if row["age"] is not None else hit.age
        row["view_position"] = row["view_position"] or hit.view
        if not ids.get("patient_id") and hit.patient_id:
            ids["patient_id"] = hit.patient_id
    if row["label"] is None:
        folder = folder_label(rel)
        if folder is not None:
            row["label"], row["label_source"] = folder, "folder"
    if ids.get("patient_id"):
        patient = ids["patient_id"]
    elif ids.get("study_uid"):
        patient = "study:" + ids["study_uid"]
        patient_fallback["study"] += status == "ok"
    else:
        patient = "file:" + rel
        patient_fallback["file"] += status == "ok"
    row.update(
        image_key=pseudo.key("image", rel), patient_key=pseudo.key("patient", patient),
        study_key=pseudo.key("study", ids.get("study_uid")), series_key=pseudo.key("series", ids.get("series_uid")),
        sop_key=pseudo.key("sop", ids.get("sop_uid")),
    )
    return row, ids, hit


def _mark_duplicates(rows: list[dict]) -> None:
    """The same SOP instance stored twice (two exports, a copy on another disc) is one image:
    the first copy in path order stays, later ones are skipped as `duplicate`."""
    first: dict[str, str] = {}
    for row in rows:
        if row["status"] != "ok" or not row["sop_key"]:
            continue
        if row["sop_key"] in first:
            row.update(status="skipped", reason="duplicate", window_source=None, pixel_steps=None,
                       reason_detail=f"same SOPInstanceUID as image {first[row['sop_key']]}")
        else:
            first[row["sop_key"]] = row["image_key"]


def _dedupe_image_keys(rows: list[dict]) -> None:
    """Two paths hashing to one 64-bit key would be astronomically unlikely; fail loudly if it happens."""
    keys = Counter(r["image_key"] for r in rows)
    dup = [k for k, n in keys.items() if n > 1]
    if dup:
        raise IngestError(f"{len(dup)} image_key collisions; rerun with a new salt (--salt-file)")


def _pack_cache(out: Path, private: Path, records: list[tuple[str, FileState]], rows: list[dict],
                settings: IngestSettings, progress: bool) -> tuple[int, str]:
    """Write cache/images.npy (uint16 N×S×S memmap) from the entries, one image in memory at a time."""
    s = settings.size
    check = EntryCheck(private, s)
    ok = []
    for (rel, st), row in zip(records, rows):
        if row["status"] != "ok":
            continue
        if check.is_valid(st.image):
            ok.append((row, st.image))
        else:
            row.update(status="failed", reason="decode_error", reason_detail="cache entry missing or damaged",
                       split=None, window_source=None, pixel_steps=None)
    path = out / CACHE_IMAGES
    signature = _pack_signature(ok, check, settings)
    for i, (row, _entry) in enumerate(ok):
        row["cache_index"] = i
    if _cache_is_current(out, signature, len(ok), s):
        return len(ok), signature
    path.parent.mkdir(parents=True, exist_ok=True)
    (out / CACHE_META).unlink(missing_ok=True)
    with atomic.atomic_path(path) as tmp:
        if not ok:
            np.save(tmp, np.zeros((0, s, s), np.uint16))
        else:
            np.lib.format.open_memmap(tmp, mode="w+", dtype=np.uint16, shape=(len(ok), s, s)).flush()
            with progress_bar(len(ok), "pack cache", progress) as bar:
                if hasattr(os, "copy_file_range"):
                    _pack_in_kernel(tmp, private, [entry for _, entry in ok], s, bar)
                else:
                    _pack_through_memmap(tmp, private, [entry for _, entry in ok], s, bar)
    return len(ok), signature


def _pack_through_memmap(cache_path: Path, private: Path, entries: list[dict], size: int, bar) -> None:
    chunk = max(1, (64 << 20) // entry_bytes(size))  # map 64 MB at a time: RSS stays flat however big N is
    for start in range(0, len(entries), chunk):
        cache = np.load(cache_path, mmap_mode="r+")
        for i in range(start, min(start + chunk, len(entries))):
            cache[i] = read_entry(private, entries[i], size)
            bar.update()
        cache.flush()
        del cache


def _pack_in_kernel(cache_path: Path, private: Path, entries: list[dict], size: int, bar) -> None:
    """Copy each entry's bytes from its segment into the cache with copy_file_range (no
    user-space copy); each segment is opened once."""
    nbytes = entry_bytes(size)
    sources: dict[str, int] = {}
    try:
        with open(cache_path, "r+b") as fp:
            header_len = _npy_header_length(fp)
            for i, entry in enumerate(entries):
                src = sources.get(entry["entry"])
                if src is None:
                    src = sources[entry["entry"]] = os.open(private / entry["entry"], os.O_RDONLY)
                offset_src, offset_dst, left = entry["offset"], header_len + i * nbytes, nbytes
                while left:
                    n = os.copy_file_range(src, fp.fileno(), left, offset_src, offset_dst)
                    if n <= 0:
                        raise IngestError(f"cache segment {entry['entry']} is truncated; delete {private / ENTRIES} "
                                          f"and rerun")
                    offset_src, offset_dst, left = offset_src + n, offset_dst + n, left - n
                bar.update()
    finally:
        for fd in sources.values():
            os.close(fd)


def _npy_header_length(fp) -> int:
    fp.seek(0)
    np.lib.format.read_magic(fp)
    np.lib.format.read_array_header_1_0(fp)
    return fp.tell()


def _pack_signature(ok: list[tuple[dict, dict]], check: EntryCheck, settings: IngestSettings) -> str:
    """Identifies a pack: which entries, in which order, made under which settings."""
    h = hashlib.sha256(settings.fingerprint.encode())
    segments = sorted({entry["entry"] for _row, entry in ok})
    for seg in segments:
        st = (check.private / seg).stat()
        h.update(f"{seg}:{st.st_size}:{st.st_mtime_ns}\n".encode())
    for _row, entry in ok:
        h.update(f"{entry['entry']}@{entry['offset']}\n".encode())
    return h.hexdigest()[:32]


def _cache_is_current(out: Path, signature: str, count: int, size: int) -> bool:
    """A rerun that changed nothing keeps the existing cache instead of rewriting it."""
    try:
        meta = json.loads((out / CACHE_META).read_text())
        header_ok = np.load(out / CACHE_IMAGES, mmap_mode="r").shape == (count, size, size)
    except (OSError, ValueError):
        return False
    return header_ok and meta.get("pack_signature") == signature


def _report(df, settings: IngestSettings, fractions: Sequence[float], table: LabelTable | None,
            salt_source: str, run: dict, warnings: list[str]) -> dict:
    by_status = {k: int(v) for k, v in df["status"].value_counts().sort_index().items()}
    reasons = df[df["status"] != "ok"]
    by_reason = {k: int(v) for k, v in reasons["reason"].value_counts().sort_index().items()}
    ok = df[df["status"] == "ok"]
    splits = {}
    for split in SPLITS:
        part = ok[ok["split"] == split]
        splits[split] = {
            "patients": int(part["patient_key"].nunique()), "images": int(len(part)),
            "labels": {str(k): int(v) for k, v in part["label"].fillna("unlabelled").value_counts().sort_index().items()},
        }
    labels = None
    if table is not None:
        labels = {
            "csv_rows": table.n_rows, "csv_rows_matched": len(table.used_rows),
            "csv_rows_unmatched": table.n_rows - len(table.used_rows),
            "key_columns": [table.columns[k] for k in KEY_PRIORITY if k in table.columns],
            "matched_by": {str(k): int(v) for k, v in ok["label_source"].value_counts().sort_index().items()},
        }
        if labels["csv_rows_unmatched"]:
            warnings.append(f"{labels['csv_rows_unmatched']} labels CSV rows matched no ingested file")
    unlabelled = int(ok["label"].isna().sum())
    if unlabelled:
        warnings.append(f"{unlabelled} ingested images have no label (kept as unlabelled)")
    problems = [{"image_key": r.image_key, "status": r.status, "reason": r.reason, "detail": r.reason_detail}
                for r in df[df["status"] != "ok"].itertuples()]
    return {
        "format": "xraymunit.ingest_report", "format_version": 1, "xraymunit": __version__,
        "settings": {**settings.to_json(), "split_fractions": list(fractions)},
        "salt": salt_source,
        "files": int(len(df)), "by_status": by_status, "by_reason": by_reason,
        "reason_descriptions": {k: REASONS.get(k, k) for k in by_reason},
        "images": int(len(ok)),
        "by_label": {str(k): int(v) for k, v in ok["label"].fillna("unlabelled").value_counts().sort_index().items()},
        "by_source_format": {str(k): int(v) for k, v in ok["source_format"].value_counts().sort_index().items()},
        "by_window_source": {str(k): int(v) for k, v in ok["window_source"].value_counts().sort_index().items()},
        "splits": splits, "labels": labels, "this_run": run, "warnings": warnings, "problems": problems,
    }
