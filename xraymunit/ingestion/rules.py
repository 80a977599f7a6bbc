"""Ingest policy: which DICOM files are radiographs to ingest, and why the others are not.

`scan_open_file` reads a header (no pixels) and classifies the file as ok / skipped / failed
with a reason (`SKIP_REASONS`, `FAIL_REASONS`): SOP classes that are not images, modalities
outside the accepted list, colour, multi-frame, absurd dimensions, undecodable or truncated
pixel data (a compressed syntax no pydicom plugin decodes is left to SimpleITK/GDCM when installed), deflated data that inflates far past its image (decompression bombs).
Never raises for a bad file; details never contain the path or identifiers.
"""

from __future__ import annotations

import os
import struct
import zlib
from pathlib import Path
from typing import BinaryIO, Sequence

from pydicom.dataset import Dataset
from pydicom.uid import UID

from xraymunit.ingestion.demographics import extract_metadata
from xraymunit.ingestion.settings import DEFAULT_MAX_SIDE, DEFAULT_MIN_SIDE, DEFAULT_MODALITIES, dimension_problem
from xraymunit.io.dicom_header import (DICOMDIR_SOP_CLASS, HeaderScan, PixelSpec, decoder_problem, element_header, looks_like_dicom, pixel_element,
                                       read_header, safe_detail, scan_fragments, transfer_syntax)
from xraymunit.io.dicom_inflate import (FLOAT_PIXEL_DATA, INFLATE_SLACK, MAX_INFLATED_HEADER, Deflated, InflateLimit,
                                        maybe_deflated, read_deflated)
from xraymunit.io.dicom_pixels import simpleitk_fallback_possible
from xraymunit.io.dicom_values import (PHOTOMETRICS, dicomdir_references, extract_identifiers, int_value,
                                       intensity_spec, value)


def classify_sop(ds: Dataset) -> tuple[str, str] | None:
    """(reason, detail) when the SOP class is not an image we could ingest, else None."""
    sop = str(value(ds, "SOPClassUID") or "")
    name = UID(sop).name if sop else ""
    modality = str(value(ds, "Modality") or "").upper()
    # details name only what the DICOM dictionary knows, never a value as stored (reports are shared)
    shown = f"SOP class {name}" if sop and UID(sop).keyword else "SOP class not in the DICOM dictionary"
    if sop == DICOMDIR_SOP_CLASS or "DirectoryRecordSequence" in ds:
        return "dicomdir", "DICOMDIR"
    if "SR Storage" in name or modality == "SR":
        return "sr_document", shown
    if (name.startswith("RT ") and name != "RT Image Storage") or modality in ("RTSTRUCT", "RTPLAN", "RTDOSE", "RTRECORD"):
        return "rt_object", shown
    non_image_words = ("Presentation State", "Key Object", "Encapsulated", "Waveform",
                       "Raw Data", "Spectroscopy", "Segmentation", "Registration", "Storage Commitment")
    if any(w in name for w in non_image_words) or modality in ("PR", "KO", "DOC", "ECG", "REG", "SEG"):
        return "non_image_object", shown
    return None


def scan_header(
    path: str | os.PathLike,
    modalities: Sequence[str] | None = DEFAULT_MODALITIES,
    min_side: int = DEFAULT_MIN_SIDE,
    max_side: int = DEFAULT_MAX_SIDE,
) -> HeaderScan:
    """Read a file's DICOM header (no pixels) and decide whether it is an ingestable radiograph.

    `modalities=None` accepts any modality (for reading single files outside ingest).
    Never raises for a bad file: every problem becomes a status + reason + detail. Details
    never contain the path or identifiers (they go into shared reports).
    """
    path = Path(path)
    try:
        with open(path, "rb") as fp:
            return scan_open_file(fp, os.fstat(fp.fileno()), modalities, min_side, max_side)
    except OSError as exc:
        return HeaderScan(kind=None, status="failed", reason="unreadable", detail=type(exc).__name__)


def scan_open_file(fp: BinaryIO, st: os.stat_result, modalities: Sequence[str] | None = DEFAULT_MODALITIES,
                   min_side: int = DEFAULT_MIN_SIDE, max_side: int = DEFAULT_MAX_SIDE) -> HeaderScan:
    """`scan_header` on a file the caller already opened (ingest sniffs PNG/JPEG/DICOM with one open)."""
    if st.st_size == 0:
        return HeaderScan(kind=None, status="failed", reason="empty_file", detail="0 bytes")
    fp.seek(0)
    head = fp.read(1024)
    if not looks_like_dicom(head):
        return HeaderScan(kind=None, status="skipped", reason="not_dicom",
                          detail="no DICM prefix and no DICOM element at the start")
    fp.seek(0)
    deflated = None
    try:
        deflated = read_deflated(fp, 0) if maybe_deflated(head) else None
        if deflated is not None:
            ds, forced = deflated.ds, False
        else:
            fp.seek(0)
            ds, forced = read_header(fp)
    except InflateLimit:
        return HeaderScan(kind="dicom", status="failed", reason="decompression_bomb",
                          detail=f"the header alone inflates to more than {MAX_INFLATED_HEADER >> 20} MiB")
    except Exception as exc:  # corrupt or truncated header
        return HeaderScan(kind="dicom", status="failed", reason="header_error", detail=safe_detail(exc, "header_error"))
    try:
        if deflated is not None:
            tag, offset, length = element_header(deflated.element, False, True, deflated.element_offset)
        else:
            tag, offset, length = pixel_element(fp, ds, st.st_size)
    except (OSError, struct.error) as exc:
        return HeaderScan(kind="dicom", status="failed", reason="header_error", detail=safe_detail(exc, "header_error"))
    return _classify(ds, forced, fp, tag, offset, length, st, modalities, min_side, max_side, deflated)


def _check_deflated(d: Deflated, offset: int, length: int, rows: int, cols: int,
                    bits_allocated: int) -> tuple[str, str, str] | None:
    """Bound a deflated dataset before anything decodes it: the Pixel Data must fit the image the
    header describes, and the stream (inflated piecewise, counted, dropped) must end within
    header + image + INFLATE_SLACK bytes. Returns (status, reason, detail) of a problem, or None."""
    expected = rows * cols * (bits_allocated // 8)
    if length == -1:
        return "failed", "unsupported_pixel_format", "encapsulated Pixel Data in a deflated dataset"
    if length == 0:
        return "failed", "no_pixel_data", "empty Pixel Data element"
    if length < expected:
        return "failed", "truncated", f"pixel data has {length} bytes, {rows}x{cols}x{bits_allocated}-bit needs {expected}"
    limit = offset + expected + INFLATE_SLACK
    if offset + length > limit:
        return ("failed", "decompression_bomb",
                f"Pixel Data of {length} bytes for a {rows}x{cols}x{bits_allocated}-bit image ({expected} bytes)")
    try:
        total = d.inflater.total + d.inflater.skip(limit + 1 - d.inflater.total)
    except zlib.error as exc:
        return "failed", "decode_error", safe_detail(exc, "decode_error")
    if total > limit:
        return ("failed", "decompression_bomb",
                f"inflates to more than {limit} bytes; a {rows}x{cols}x{bits_allocated}-bit image needs {expected}")
    if total < offset + length:
        return "failed", "truncated", f"inflated data ends {offset + length - total} bytes before the end of the pixel data"
    return None


def _check_stored(fp: BinaryIO, ts: UID, offset: int, length: int, rows: int, cols: int, bits_allocated: int,
                  file_size: int) -> tuple[str, str, str] | None:
    """The Pixel Data in the file must hold the whole image: complete fragments when encapsulated,
    Rows x Columns x BitsAllocated bytes when native. Returns (status, reason, detail) or None."""
    if ts.is_encapsulated or length == -1:
        n_frag, n_bytes, complete = scan_fragments(fp, offset, file_size)
        if not complete:
            return "failed", "truncated", "file ends inside the encapsulated pixel data"
        if n_frag == 0 or n_bytes == 0:
            return "failed", "no_pixel_data", "encapsulated pixel data without fragments"
        return None
    expected = rows * cols * (bits_allocated // 8)
    if length == 0:
        return "failed", "no_pixel_data", "empty Pixel Data element"
    if offset + length > file_size:
        return "failed", "truncated", f"file ends {offset + length - file_size} bytes before the end of the pixel data"
    if length < expected:
        return "failed", "truncated", f"pixel data has {length} bytes, {rows}x{cols}x{bits_allocated}-bit needs {expected}"
    return None


def _classify(ds, forced, fp, tag, offset, length, st, modalities, min_side, max_side,
              deflated: Deflated | None = None) -> HeaderScan:
    meta = extract_metadata(ds)
    ids = extract_identifiers(ds)
    scan = HeaderScan(kind="dicom", status="ok", meta=meta, ids=ids)

    def stop(status: str, reason: str, detail: str) -> HeaderScan:
        scan.status, scan.reason, scan.detail = status, reason, detail
        return scan

    sop_problem = classify_sop(ds)
    if sop_problem:
        reason, detail = sop_problem
        if reason == "dicomdir":
            scan.referenced_files = dicomdir_references(ds)
        return stop("skipped", reason, detail)
    modality = meta.get("modality")
    sop_class = str(value(ds, "SOPClassUID") or "")
    if modality is None and sop_class.startswith("1.2.840.10008.5.1.4.1.1.1"):
        modality = "CR" if sop_class == "1.2.840.10008.5.1.4.1.1.1" else "DX"
        meta["modality"] = modality  # CR/DX SOP class without a Modality element
    accepted = None if modalities is None else {m.strip().upper() for m in modalities if m.strip()}
    if accepted is not None and modality not in accepted:
        return stop("skipped", "modality",  # the value itself is the manifest's modality column
                    f"Modality {'not in' if modality else 'missing, not in'} {','.join(sorted(accepted))}")
    if tag is None:
        if any(k not in ds for k in ("Rows", "Columns", "BitsAllocated")):
            # pydicom stops quietly at a corrupt or truncated element: the image module is missing
            return stop("failed", "header_error", "image attributes missing: header truncated or corrupt")
        return stop("failed", "no_pixel_data", "no Pixel Data element")
    samples = int_value(ds, "SamplesPerPixel", 1)
    photometric = meta.get("photometric") or ""
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        known = photometric if photometric in PHOTOMETRICS else "other PhotometricInterpretation"
        return stop("skipped", "colour", f"{known}, {samples} samples per pixel")
    frames = int_value(ds, "NumberOfFrames", 1) or 1
    if frames > 1:
        return stop("skipped", "multi_frame", f"{frames} frames")
    rows, cols = meta.get("rows") or 0, meta.get("columns") or 0
    if rows <= 0 or cols <= 0:
        return stop("failed", "zero_size", f"{rows} x {cols}")
    problem = dimension_problem(rows, cols, min_side, max_side)
    if problem:
        return stop("failed", "absurd_dimensions", problem)
    if tag in FLOAT_PIXEL_DATA:
        return stop("failed", "unsupported_pixel_format", "float pixel data")
    bits_allocated = int_value(ds, "BitsAllocated", 0)
    bits_stored = int_value(ds, "BitsStored", bits_allocated) or bits_allocated
    pixel_rep = int_value(ds, "PixelRepresentation", 0)
    if bits_allocated not in (8, 16, 32) or not (1 <= bits_stored <= bits_allocated):
        return stop("failed", "unsupported_pixel_format",
                    f"BitsAllocated {bits_allocated}, BitsStored {bits_stored}")
    ts = transfer_syntax(ds)
    problem = decoder_problem(ts)
    fallback = problem is not None and simpleitk_fallback_possible(ts)  # GDCM decodes it in the decode pass
    if problem and not fallback:
        return stop("failed", "unsupported_transfer_syntax", problem)
    problem = (_check_deflated(deflated, offset, length, rows, cols, bits_allocated) if deflated is not None
               else _check_stored(fp, ts, offset, length, rows, cols, bits_allocated, st.st_size))
    if problem:
        return stop(*problem)
    scan.pixel = vars(PixelSpec(
        transfer_syntax=str(ts), offset=offset, length=length, rows=rows, columns=cols,
        bits_allocated=bits_allocated, bits_stored=bits_stored, pixel_representation=pixel_rep,
        photometric=photometric, forced=forced, file_size=st.st_size, mtime_ns=st.st_mtime_ns,
        ino=st.st_ino, deflate_start=deflated.start if deflated is not None else -1,
    ))
    if fallback:
        scan.pixel["decoder"] = "simpleitk"  # absent = pydicom: journals of files it decodes are unchanged
    scan.intensity = vars(intensity_spec(ds))
    if forced:
        scan.meta["notes"] = "no file meta: read with force, transfer syntax detected"
    return scan
