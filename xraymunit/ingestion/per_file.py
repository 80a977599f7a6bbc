"""Work on one file: header scan, pixel chain, cache entry (the processes that run it: `workers`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from xraymunit.errors import root_cause
from xraymunit.io import dicom, raster
from xraymunit.ingestion import rules
from xraymunit.io.dicom_pixels import simpleitk_fallback_possible
from xraymunit.ingestion.entries import writer_for
from xraymunit.ingestion.settings import IngestError, IngestSettings, dimension_problem
from xraymunit.io.sitk_image import resampled_shape


def scan_file(path: Path, settings: IngestSettings) -> dict:
    """Header pass for one file of any kind: DICOM, PNG, JPEG or something else (one open).

    The result's "file" ({size, mtime_ns, ino} of the open file) is what the decode pass checks
    the file against, for every format (`dicom.open_unchanged`)."""
    try:
        with open(path, "rb") as fp:
            st = os.fstat(fp.fileno())
            fmt = raster.sniff_format(fp.read(16))
            if fmt is None:
                result = _resampled_problem(rules.scan_open_file(fp, st, settings.modalities, settings.min_side,
                                                                 settings.max_side).to_json(), settings)
            else:
                result = _scan_raster(fp, fmt, settings)
    except OSError as exc:
        return dicom.HeaderScan(kind=None, status="failed", reason="unreadable", detail=type(exc).__name__).to_json()
    result["file"] = dicom.file_ident(st)
    return result


def _scan_raster(fp, fmt: str, settings: IngestSettings) -> dict:
    scan = dicom.HeaderScan(kind=fmt, status="ok")
    try:
        fp.seek(0)
        header = raster.read_raster_header(fp)
    except Exception as exc:
        scan.status, scan.reason, scan.detail = "failed", "decode_error", dicom.safe_detail(exc, "decode_error")
        return scan.to_json()
    scan.meta = {"photometric": header.mode, "bits_stored": header.bits, "rows": header.rows,
                 "columns": header.columns, "transfer_syntax": None}
    rows, cols = header.rows, header.columns
    if rows <= 0 or cols <= 0:
        scan.status, scan.reason, scan.detail = "failed", "zero_size", f"{rows} x {cols}"
    elif problem := dimension_problem(rows, cols, settings.min_side, settings.max_side):
        scan.status, scan.reason, scan.detail = "failed", "absurd_dimensions", problem
    return scan.to_json()


def _resampled_problem(scan: dict, settings: IngestSettings) -> dict:
    """With --spacing-mm, the size the image will have after resampling must pass the same rule as
    the declared one (at most --max-side, aspect <= MAX_ASPECT) — checked here, before anything is
    decoded: a header declaring 40 mm pixels would otherwise ask for gigabytes, and an anisotropic
    spacing turns a square image into a strip. (Not --min-side: a small result is only upscaled.)"""
    meta = scan.get("meta") or {}
    row_mm, col_mm = meta.get("spacing_row_mm"), meta.get("spacing_col_mm")
    if settings.spacing_mm is None or scan.get("status") != "ok" or not (row_mm and col_mm):
        return scan
    rows, cols = meta["rows"], meta["columns"]
    out_rows, out_cols = resampled_shape((rows, cols), (row_mm, col_mm), settings.spacing_mm)
    problem = dimension_problem(out_rows, out_cols, 1, settings.max_side)
    if problem:
        scan.update(status="failed", reason="absurd_dimensions",
                    detail=f"resampled to {settings.spacing_mm:g} mm pixels from {rows} x {cols} of "
                           f"{row_mm:g} x {col_mm:g} mm: {problem}")
    return scan


_CHAIN: Any = None
_CHAIN_FP: str | None = None


def _chain(settings: IngestSettings):
    global _CHAIN, _CHAIN_FP
    if _CHAIN is None or _CHAIN_FP != settings.fingerprint:
        from xraymunit.data.transforms import ingest_transforms

        extra = {} if settings.spacing_mm is None else {"spacing_mm": settings.spacing_mm}  # a chain without it: as before
        _CHAIN = ingest_transforms(size=settings.size, fit=settings.fit, window=settings.window,
                                   percentiles=settings.percentiles, contrast=settings.contrast, **extra)
        _CHAIN_FP = settings.fingerprint
    return _CHAIN


def to_uint16(image: np.ndarray) -> np.ndarray:
    """[0, 1] float → uint16 (value / 65535 is the display intensity)."""
    scaled = np.multiply(image, np.float32(65535.0), dtype=np.float32)
    np.clip(scaled, 0.0, 65535.0, out=scaled)
    np.rint(scaled, out=scaled)
    return scaled.astype(np.uint16)


def decode_file(path: Path, scan: dict, private: Path, run_token: str, settings: IngestSettings) -> dict:
    """Run the transform chain on one file and append its cache entry to this process's
    segment of the run (see `entries`); never raises for bad data. An "ok" result carries
    the entry's location ("entry", "offset") for the journal."""
    ident = _ident_of(scan)
    changed = _changed(path, ident)
    if changed:
        return changed
    try:
        out = _run_chain(path, scan, settings)
    except MemoryError:
        return _changed(path, ident) or {"status": "failed", "reason": "decode_error", "detail": "out of memory"}
    except Exception as exc:
        return _failure(path, ident, root_cause(exc))
    changed = _changed(path, ident)  # replaced while being read: its pixels are not the header's
    if changed:
        return changed
    image = out["image"][0]
    if image.shape != (settings.size, settings.size) or not np.isfinite(image).all():
        return {"status": "failed", "reason": "decode_error", "detail": "pixel path produced an invalid image"}
    try:
        location = writer_for(private, run_token).append(to_uint16(image))
    except OSError as exc:  # disk full, permissions: stop the run (what is journalled is kept)
        raise IngestError(f"cannot write cache entries in {private}: {exc.strerror or exc}; "
                          f"fix that and rerun (it resumes)") from None
    meta = out["image_meta_dict"]
    return {"status": "ok", "window_source": meta.get("window_source"), "window": meta.get("window"),
            "steps": meta.get("steps", []), **location}


def _run_chain(path: Path, scan: dict, settings: IngestSettings) -> dict:
    """The pixel chain on one file. When no pydicom plugin can decode its compressed pixel data,
    once more with SimpleITK (GDCM) as the decoder; the step list then says "simpleitk_fallback"."""
    pixel = scan.get("pixel") or {}
    if pixel.get("decoder") != "simpleitk":
        try:
            return _chain(settings)({"image": str(path), "header": scan})
        except Exception as exc:
            cause = root_cause(exc)
            if not (isinstance(cause, dicom.PixelError) and cause.reason == "unsupported_transfer_syntax"
                    and simpleitk_fallback_possible(pixel.get("transfer_syntax", ""))):
                raise
        scan = {**scan, "pixel": {**pixel, "decoder": "simpleitk"}}
    out = _chain(settings)({"image": str(path), "header": scan})
    steps = out["image_meta_dict"].setdefault("steps", [])
    steps.insert(1 if steps else 0, "simpleitk_fallback")
    return out


def _failure(path: Path, ident: dict | None, cause: BaseException) -> dict:
    """The failed result for an exception of the pixel chain (a file changed meanwhile says so first)."""
    if isinstance(cause, dicom.PixelError):
        return _changed(path, ident) or {"status": "failed", "reason": cause.reason, "detail": cause.detail}
    if isinstance(cause, (FileNotFoundError, NotADirectoryError)):
        return {"status": "failed", "reason": "missing_file", "detail": dicom.safe_detail(cause, "missing_file")}
    if isinstance(cause, OSError) and "truncated" in str(cause).lower():
        return _changed(path, ident) or {"status": "failed", "reason": "truncated",
                                         "detail": dicom.safe_detail(cause, "truncated")}
    return _changed(path, ident) or {"status": "failed", "reason": "decode_error",
                                     "detail": dicom.safe_detail(cause, "decode_error")}


def _ident_of(scan: dict) -> dict | None:
    """The identity the header pass saw (journals of earlier versions: the DICOM pixel spec's, or none)."""
    if scan.get("file"):
        return scan["file"]
    return dicom.pixel_ident(scan["pixel"]) if scan.get("pixel") else None


def _changed(path: Path, ident: dict | None) -> dict | None:
    """A failed result when `path` is gone ("missing_file") or is no longer the file the header
    pass saw ("changed_during_ingest"); None when it is the same file."""
    try:
        st = os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return {"status": "failed", "reason": "missing_file", "detail": "the file is gone since the header pass"}
    except OSError as exc:
        return {"status": "failed", "reason": "unreadable", "detail": dicom.safe_detail(exc, "unreadable")}
    try:
        dicom.check_ident(st, ident)
    except dicom.PixelError as exc:
        return {"status": "failed", "reason": exc.reason, "detail": exc.detail}
    return None


def scan_task(args: tuple[str, str, IngestSettings]) -> tuple[str, dict, int, int]:
    root, rel, settings = args
    path = Path(root) / rel
    try:
        st = path.stat()
        size, mtime = st.st_size, st.st_mtime_ns
    except OSError:
        size, mtime = -1, -1
    return rel, scan_file(path, settings), size, mtime


def decode_task(args: tuple[str, str, dict, str, str, IngestSettings]) -> tuple[str, dict]:
    root, rel, scan, private, run_token, settings = args
    return rel, decode_file(Path(root) / rel, scan, Path(private), run_token, settings)


def scan_died(task: tuple[str, str, IngestSettings], exitcode: int | None) -> tuple[str, dict, int, int]:
    """The header record of a file whose worker died reading it (see `workers`): failed, not retried."""
    root, rel, _settings = task
    scan = dicom.HeaderScan(kind=None, status="failed", reason="worker_died", detail=_death_detail(exitcode))
    try:  # the file as it is: the rerun then keeps this record instead of dying on the file again
        st = (Path(root) / rel).stat()
        return rel, scan.to_json(), st.st_size, st.st_mtime_ns
    except OSError:
        return rel, scan.to_json(), -1, -1


def decode_died(task: tuple, exitcode: int | None) -> tuple[str, dict]:
    """The decode result of a file whose worker died decoding it: failed, not retried (a rerun
    would die on it again)."""
    return task[1], {"status": "failed", "reason": "worker_died", "detail": _death_detail(exitcode)}


def _death_detail(exitcode: int | None) -> str:
    from xraymunit.io.child import signal_text

    return f"the worker process handling it died ({signal_text(exitcode)}: a native crash, or killed, e.g. by OOM)"


def tune_allocator() -> bool:
    """Keep large temporary arrays in the heap instead of returning them to the OS after each image.

    glibc gives every allocation above a (dynamic) threshold its own mmap and unmaps it on
    free, so each image's 4-16 MB work arrays are page-faulted and zeroed afresh — on a VM
    that costs as much as the pixel work itself. Raising the mmap/trim thresholds lets the
    heap reuse that memory; it stays bounded by one image's working set (it does not grow
    with the cohort). No-op where glibc's mallopt is unavailable. Returns whether it applied.
    """
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        m_trim_threshold, m_mmap_threshold = -1, -3
        ok = libc.mallopt(m_mmap_threshold, 64 << 20) == 1
        ok &= libc.mallopt(m_trim_threshold, 128 << 20) == 1
        return bool(ok)
    except (OSError, AttributeError):
        return False


def progress_bar(total: int, desc: str, progress: bool):
    """A bar on a terminal, else a log line every 30 s (xraymunit.progress)."""
    from xraymunit.progress import progress as progress_display

    return progress_display(total, f"ingest: {desc}", "file", bar=progress and total > 0, dynamic_ncols=True,
                            leave=False)
