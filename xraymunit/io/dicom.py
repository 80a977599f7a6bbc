"""DICOM header scan, skip classification, metadata extraction and pixel decode (no torch).

Ingest reads every file twice, cheaply: a header pass (`scan_header`, no pixels) decides
what the file is and whether we can use it, and records where the pixel data sits; the
decode pass (`read_stored_pixels`) then reads only the pixel bytes, using what the header
pass recorded, so a header is parsed once per file per run.

Everything returned here is plain JSON-safe data so it can go into the resume journal.
Identifiers (PatientID, UIDs) are returned separately in `HeaderScan.ids`: the caller
keeps them in the private folder and hashes them before anything is shared.
"""

from __future__ import annotations

import contextlib
import datetime as _dt
import logging
import math
import os
import re
import struct
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO, Iterator, Sequence

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import (
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    UID,
)

DEFAULT_MODALITIES = ("CR", "DX")
DEFAULT_MIN_SIDE = 64
DEFAULT_MAX_SIDE = 12000
MAX_ASPECT = 5.0
AGE_CAP = 90.0
# Deflated datasets are inflated in bounded steps, never whole: the header (everything before the
# Pixel Data) may inflate to at most MAX_INFLATED_HEADER bytes, and the whole dataset to at most the
# header + the image's Rows x Columns x BitsAllocated + INFLATE_SLACK (trailing elements, padding).
MAX_INFLATED_HEADER = 16 << 20
INFLATE_SLACK = 8 << 20
INFLATE_CHUNK = 1 << 20

PIXEL_DATA = 0x7FE00010
FLOAT_PIXEL_DATA = (0x7FE00008, 0x7FE00009)
ITEM, SEQ_DELIM = 0xFFFEE000, 0xFFFEE0DD
DICOMDIR_SOP_CLASS = "1.2.840.10008.1.3.10"

# Why a file was not ingested. `skipped` = not something we ingest; `failed` = it looked
# like a radiograph we should ingest but could not be turned into an image.
SKIP_REASONS = {
    "not_dicom": "not a DICOM, PNG or JPEG file",
    "dicomdir": "DICOMDIR media index (used only to find files)",
    "sr_document": "structured report, not an image",
    "rt_object": "radiotherapy object, not a radiograph",
    "non_image_object": "DICOM object that is not an image (presentation state, KO, PDF, waveform, …)",
    "modality": "modality not in the accepted list",
    "colour": "colour image (radiographs are single-channel MONOCHROME1/2)",
    "multi_frame": "multi-frame object (expects one projection per file)",
    "duplicate": "same SOPInstanceUID as an earlier file (the first copy is kept)",
}
FAIL_REASONS = {
    "empty_file": "file has zero bytes",
    "unreadable": "file could not be opened or read",
    "header_error": "DICOM header could not be parsed",
    "no_pixel_data": "image object without pixel data",
    "zero_size": "Rows or Columns is zero or missing",
    "absurd_dimensions": "image dimensions outside the plausible range for a radiograph",
    "unsupported_pixel_format": "pixel layout not supported (bits allocated, float pixel data)",
    "unsupported_transfer_syntax": "no decoder available for the transfer syntax",
    "truncated": "pixel data shorter than the header says",
    "decode_error": "pixel data could not be decoded",
    "missing_file": "listed by a DICOMDIR, or seen by the header pass, but not found",
    "changed_during_ingest": "file changed (size, modification time or inode) between the header and decode passes",
    "decompression_bomb": "deflated data inflates to far more than the image it describes needs",
}
REASONS = {**SKIP_REASONS, **FAIL_REASONS}


@contextlib.contextmanager
def quiet_pydicom() -> Iterator[None]:
    """Silence pydicom's per-file warnings and decoder tracebacks for the duration.

    Ingest records every problem in the manifest; thousands of log lines about the same
    malformed value (or a traceback per corrupt file) would bury the summary.
    """
    logger = logging.getLogger("pydicom")
    level = logger.level
    logger.setLevel(logging.CRITICAL)
    settings = pydicom.config.settings
    validation = settings.reading_validation_mode
    settings.reading_validation_mode = pydicom.config.IGNORE  # also skips per-value regex checks (faster)
    try:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", module=r"pydicom(\..*)?$")
            warnings.filterwarnings("ignore", category=UserWarning, message=r".*(VR|value|DICOM|Invalid).*")
            yield
    finally:
        logger.setLevel(level)
        settings.reading_validation_mode = validation


class PixelError(Exception):
    """Pixel data could not be read; `reason` is a key of FAIL_REASONS."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason = reason
        self.detail = detail


@dataclass
class PixelSpec:
    """Where the pixel data is and how it is laid out: what the decode pass needs."""

    transfer_syntax: str
    offset: int  # file offset of the Pixel Data value (first byte after the element header)
    length: int  # value length in bytes; -1 for encapsulated (undefined length)
    rows: int
    columns: int
    bits_allocated: int
    bits_stored: int
    pixel_representation: int
    photometric: str
    forced: bool  # read with force=True (no preamble / file meta)
    file_size: int
    mtime_ns: int
    ino: int | None = None
    deflate_start: int = -1  # Deflated Explicit VR: file offset of the deflate stream; `offset` is then
    # the offset of the value in the inflated dataset


@dataclass
class IntensitySpec:
    """The header values the intensity pipeline needs (Modality LUT, VOI, photometric)."""

    photometric: str
    bits_stored: int
    pixel_representation: int
    rescale_slope: float = 1.0
    rescale_intercept: float = 0.0
    window_center: float | None = None
    window_width: float | None = None
    voi_function: str = "LINEAR"
    has_modality_lut: bool = False  # LUT data is read on demand (can be 65k entries)
    has_voi_lut: bool = False
    presentation_intent: str | None = None


@dataclass
class HeaderScan:
    """Result of `scan_header`: what the file is, why it is or is not usable, its metadata."""

    kind: str | None  # "dicom" or None (not DICOM)
    status: str  # "ok" | "skipped" | "failed"
    reason: str | None = None
    detail: str | None = None
    meta: dict[str, Any] = field(default_factory=dict)
    ids: dict[str, str | None] = field(default_factory=dict)
    pixel: dict[str, Any] | None = None
    intensity: dict[str, Any] | None = None
    referenced_files: list[str] | None = None  # DICOMDIR only: paths relative to its folder

    def to_json(self) -> dict:
        # shallow copies: dataclasses.asdict deep-copies and costs more than parsing the header
        return {"kind": self.kind, "status": self.status, "reason": self.reason, "detail": self.detail,
                "meta": dict(self.meta), "ids": dict(self.ids),
                "pixel": dict(self.pixel) if self.pixel is not None else None,
                "intensity": dict(self.intensity) if self.intensity is not None else None,
                "referenced_files": list(self.referenced_files) if self.referenced_files is not None else None}


# ---------------------------------------------------------------------------- reading

def looks_like_dicom(head: bytes) -> bool:
    """True if `head` (the first 132+ bytes) is a DICOM file, with or without a preamble.

    Files without the 128-byte preamble and 'DICM' (old ACR-NEMA style) start directly
    with a group 0x0002 or 0x0008 element; that is the only cheap signal we have.
    """
    if len(head) >= 132 and head[128:132] == b"DICM":
        return True
    if len(head) < 8:
        return False
    group_le, elem_le = struct.unpack("<HH", head[:4])
    group_be = struct.unpack(">H", head[:2])[0]
    if group_le in (0x0002, 0x0008) and elem_le < 0x0100:
        return True
    return group_be == 0x0008


class InflateLimit(Exception):
    """A deflated dataset inflates past its bound (FAIL_REASONS "decompression_bomb")."""


def file_ident(st: os.stat_result) -> dict[str, int]:
    """What the header pass remembers of a file to see, at decode time, whether it is the same file."""
    return {"size": int(st.st_size), "mtime_ns": int(st.st_mtime_ns), "ino": int(st.st_ino)}


def check_ident(st: os.stat_result, ident: dict | None) -> None:
    """Raise PixelError("changed_during_ingest") when `st` is not the file the header pass saw."""
    if not ident:
        return
    if (st.st_size, st.st_mtime_ns) != (ident.get("size"), ident.get("mtime_ns")) or \
            ident.get("ino") not in (None, st.st_ino):
        raise PixelError("changed_during_ingest", "size, modification time or inode differ from the header pass")


@contextlib.contextmanager
def open_unchanged(path: str | os.PathLike, ident: dict | None) -> Iterator[BinaryIO]:
    """Open `path` for the decode pass: a file gone since the header pass is "missing_file", a
    replaced, truncated or rewritten one "changed_during_ingest" (checked on the open file, so
    what is read is the file that was checked)."""
    try:
        fp = open(path, "rb")
    except (FileNotFoundError, NotADirectoryError):
        raise PixelError("missing_file", "the file is gone since the header pass") from None
    except OSError as exc:
        raise PixelError("unreadable", safe_detail(exc, "unreadable")) from None
    with fp:
        check_ident(os.fstat(fp.fileno()), ident)
        yield fp


class _Inflater:
    """Raw-deflate stream of a Deflated Explicit VR dataset, inflated piecewise on demand:
    memory stays at one chunk (or what the caller asks for), never the whole inflated data."""

    def __init__(self, fp: BinaryIO, start: int) -> None:
        self.fp = fp
        fp.seek(start)
        self.z = zlib.decompressobj(-zlib.MAX_WBITS)
        self.total = 0  # inflated bytes produced so far
        self.done = False

    def read(self, n: int) -> bytearray:
        """Up to `n` inflated bytes (fewer only at the end of the stream)."""
        out = bytearray()
        while len(out) < n and not self.done:
            if self.z.eof:
                self.done = True
                break
            data = self.z.unconsumed_tail or self.fp.read(INFLATE_CHUNK)
            if not data:
                self.done = True  # the file ends (a truncated stream ends here too)
                break
            try:
                chunk = self.z.decompress(data, n - len(out))
            except zlib.error:
                self.done = True
                raise
            out += chunk
            self.total += len(chunk)
        return out

    def skip(self, n: int) -> int:
        """Inflate and drop up to `n` bytes; returns how many there were."""
        skipped = 0
        while skipped < n and not self.done:
            skipped += len(self.read(min(INFLATE_CHUNK, n - skipped)))
        return skipped


@dataclass
class _Deflated:
    """A deflated file's header, inflated no further than its Pixel Data element."""

    ds: Dataset
    inflater: _Inflater  # `inflater.total` bytes inflated so far
    start: int  # file offset of the deflate stream
    element_offset: int  # offset, in the inflated dataset, of the element after the header
    element: bytes  # its first (up to) 12 bytes: the Pixel Data element header, if any


def _maybe_deflated(head: bytes) -> bool:
    """Cheap pre-check on the first bytes: file meta naming the Deflated transfer syntax."""
    return head[128:132] == b"DICM" and str(DeflatedExplicitVRLittleEndian).encode() in head


def _read_deflated(fp: BinaryIO, start: int) -> _Deflated | None:
    """Header of a Deflated Explicit VR Little Endian file, inflating at most MAX_INFLATED_HEADER
    bytes (pydicom inflates the whole file in memory: a 1 MB file can inflate to gigabytes).
    None when the file meta does not name that transfer syntax."""
    from pydicom.filebase import DicomBytesIO
    from pydicom.filereader import _read_file_meta_info, read_dataset, read_preamble

    fp.seek(start)
    read_preamble(fp, False)
    meta = _read_file_meta_info(fp)
    if UID(str(meta.get("TransferSyntaxUID", ""))) != DeflatedExplicitVRLittleEndian:
        return None
    stream_start = fp.tell()
    inflater = _Inflater(fp, stream_start)
    buf = bytearray()
    want = min(1 << 20, MAX_INFLATED_HEADER)
    while True:
        buf += inflater.read(want - len(buf))
        bio = DicomBytesIO(bytes(buf))
        bio.is_little_endian, bio.is_implicit_VR = True, False
        error: Exception | None = None
        try:
            ds = read_dataset(bio, False, True, stop_when=lambda tag, vr, length: tag in (PIXEL_DATA, *FLOAT_PIXEL_DATA))
        except Exception as exc:  # noqa: BLE001 - cut inside an element: inflate more, else report
            error = exc
        pos = bio.tell()
        tag = None
        if error is None and len(buf) - pos >= 4:
            group, elem = struct.unpack_from("<HH", buf, pos)
            tag = (group << 16) | elem
        if tag in (PIXEL_DATA, *FLOAT_PIXEL_DATA) or inflater.done:
            if error is not None:
                raise error
            ds.file_meta = meta
            ds.set_original_encoding(False, True, ds._character_set)
            if len(buf) - pos < 12:  # the 12-byte element header may straddle what was inflated
                buf += inflater.read(12 - (len(buf) - pos))
            return _Deflated(ds, inflater, stream_start, pos, bytes(buf[pos:pos + 12]))
        if len(buf) >= MAX_INFLATED_HEADER:
            raise InflateLimit(f"header inflates to more than {MAX_INFLATED_HEADER >> 20} MiB")
        want = min(want * 4, MAX_INFLATED_HEADER)


def read_header(fp: BinaryIO, stop_before_pixels: bool = True) -> tuple[Dataset, bool]:
    """Parse a DICOM header from `fp`; returns (dataset, forced).

    A file without preamble/file meta is read with force=True and given the transfer
    syntax pydicom detected while parsing, so its pixels can be decoded later. A deflated
    dataset is inflated only up to its Pixel Data (bounded; `stop_before_pixels` must hold).
    """
    start = fp.tell()
    if _maybe_deflated(fp.read(1024)):
        deflated = _read_deflated(fp, start)
        if deflated is not None:
            if not stop_before_pixels:
                raise ValueError("deflated datasets are read without pixels; use read_stored_pixels")
            return deflated.ds, False
    fp.seek(start)
    try:
        return pydicom.dcmread(fp, stop_before_pixels=stop_before_pixels), False
    except InvalidDicomError:
        fp.seek(start)
    ds = pydicom.dcmread(fp, stop_before_pixels=stop_before_pixels, force=True)
    if not isinstance(getattr(ds, "file_meta", None), FileMetaDataset):
        ds.file_meta = FileMetaDataset()
    if "TransferSyntaxUID" not in ds.file_meta:
        implicit, little = _detected_encoding(ds)
        if implicit:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        else:
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    return ds, True


def _detected_encoding(ds: Dataset) -> tuple[bool, bool]:
    enc = getattr(ds, "original_encoding", None)
    if enc and enc[0] is not None:
        return bool(enc[0]), bool(enc[1])
    return True, True


def transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return UID(str(uid)) if uid else ImplicitVRLittleEndian


# ------------------------------------------------------------------ pixel element scan

def _pixel_element(fp: BinaryIO, ds: Dataset, file_size: int) -> tuple[int | None, int, int]:
    """Peek the element after the header: (tag, value offset, value length) or (None, .., ..).

    `dcmread(stop_before_pixels=True)` leaves the file positioned at the start of the
    pixel element (or at EOF when there is none); reading its 8-12 byte header tells us
    where the pixels are and how long they claim to be, without reading them.
    """
    pos = fp.tell()
    implicit, little = _detected_encoding(ds)
    return _element_header(fp.read(12), implicit, little, pos)


def _element_header(head: bytes, implicit: bool, little: bool, pos: int) -> tuple[int | None, int, int]:
    """(tag, value offset, value length) of the Pixel Data element whose first bytes are `head`
    (found at offset `pos`), or (None, pos, 0) when `head` is not one."""
    if len(head) < 8:
        return None, pos, 0
    end = "<" if little else ">"
    group, elem = struct.unpack(end + "HH", head[:4])
    tag = (group << 16) | elem
    if tag != PIXEL_DATA and tag not in FLOAT_PIXEL_DATA:
        return None, pos, 0
    if implicit:
        (length,) = struct.unpack(end + "L", head[4:8])
        header_len = 8
    else:
        vr = head[4:6]
        if vr in (b"OB", b"OW", b"OF", b"OD", b"OL", b"OV", b"UN"):
            (length,) = struct.unpack(end + "L", head[8:12])
            header_len = 12
        else:
            (length,) = struct.unpack(end + "H", head[6:8])
            header_len = 8
    if length == 0xFFFFFFFF:
        length = -1
    return tag, pos + header_len, length


def _scan_fragments(fp: BinaryIO, offset: int, file_size: int) -> tuple[int, int, bool]:
    """Walk encapsulated items without reading them: (n_fragments, data_bytes, complete)."""
    fp.seek(offset)
    n_items = 0
    n_bytes = 0
    first = True
    while True:
        head = fp.read(8)
        if len(head) < 8:
            return n_items, n_bytes, False
        tag_g, tag_e, length = struct.unpack("<HHL", head)
        tag = (tag_g << 16) | tag_e
        if tag == SEQ_DELIM:
            return n_items, n_bytes, True
        if tag != ITEM:
            return n_items, n_bytes, False
        here = fp.tell()
        if here + length > file_size:
            return n_items, n_bytes, False
        if not first:  # the first item is the basic offset table
            n_items += 1
            n_bytes += length
        first = False
        fp.seek(here + length)



# ---------------------------------------------------------------------- fast element access

_PHOTOMETRICS = {"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "HSV", "ARGB", "CMYK", "YBR_FULL",
                 "YBR_FULL_422", "YBR_PARTIAL_422", "YBR_PARTIAL_420", "YBR_ICT", "YBR_RCT", "XYB"}
_STRING_VRS = {"AE", "AS", "CS", "DA", "DS", "DT", "IS", "LO", "LT", "PN", "SH", "ST", "TM", "UI", "UT", "UC", "UR"}
_TAGS: dict[str, int] = {}


def value(ds: Dataset, keyword: str) -> Any:
    """`ds.get(keyword)` for simple VRs at a fraction of the cost.

    pydicom converts an element on first access through several layers (~25 µs each);
    a header scan reads ~35 of them per file. The raw bytes of strings, numbers-as-strings
    and US values are parsed directly here; anything else falls back to pydicom.
    """
    tag = _TAGS.get(keyword)
    if tag is None:
        tag = _TAGS[keyword] = pydicom.datadict.tag_for_keyword(keyword)
    try:
        elem = ds.get_item(tag)
    except KeyError:
        return None
    if elem is None:
        return None
    if not isinstance(elem, pydicom.dataelem.RawDataElement):
        return elem.value
    vr = elem.VR or pydicom.datadict.dictionary_VR(tag)
    raw = elem.value
    if raw is None or len(raw) == 0:
        return None
    if vr in _STRING_VRS:
        parts = raw.decode("latin-1").rstrip("\x00 ").split("\\")
        if vr in ("DS", "IS"):
            try:
                nums = [float(p) if vr == "DS" else int(float(p)) for p in parts if p.strip()]
            except ValueError:
                return ds.get(keyword)
            return nums[0] if len(nums) == 1 else nums
        parts = [p.strip(" \x00") for p in parts]
        return parts[0] if len(parts) == 1 else parts
    if vr == "US":
        n = len(raw) // 2
        vals = struct.unpack(("<" if elem.is_little_endian else ">") + "H" * n, raw[: 2 * n])
        return vals[0] if n == 1 else list(vals)
    return ds.get(keyword)

# ---------------------------------------------------------------------- classification

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


def _int(ds: Dataset, keyword: str, default: int | None = None) -> int | None:
    v = value(ds, keyword)
    if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
        v = v[0] if len(v) else None
    if v is None or v == "":
        return default
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def _first_float(value: Any) -> float | None:
    """First value of a possibly multi-valued DS as a finite float."""
    if value is None or value == "":
        return None
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        if len(value) == 0:
            return None
        value = value[0]
    try:
        f = float(value)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


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
        deflated = _read_deflated(fp, 0) if _maybe_deflated(head) else None
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
            tag, offset, length = _element_header(deflated.element, False, True, deflated.element_offset)
        else:
            tag, offset, length = _pixel_element(fp, ds, st.st_size)
    except (OSError, struct.error) as exc:
        return HeaderScan(kind="dicom", status="failed", reason="header_error", detail=safe_detail(exc, "header_error"))
    return _classify(ds, forced, fp, tag, offset, length, st, modalities, min_side, max_side, deflated)


def _check_deflated(d: _Deflated, offset: int, length: int, rows: int, cols: int,
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


def _classify(ds, forced, fp, tag, offset, length, st, modalities, min_side, max_side,
              deflated: _Deflated | None = None) -> HeaderScan:
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
    samples = _int(ds, "SamplesPerPixel", 1)
    photometric = meta.get("photometric") or ""
    if samples != 1 or photometric not in ("MONOCHROME1", "MONOCHROME2"):
        known = photometric if photometric in _PHOTOMETRICS else "other PhotometricInterpretation"
        return stop("skipped", "colour", f"{known}, {samples} samples per pixel")
    frames = _int(ds, "NumberOfFrames", 1) or 1
    if frames > 1:
        return stop("skipped", "multi_frame", f"{frames} frames")
    rows, cols = meta.get("rows") or 0, meta.get("columns") or 0
    if rows <= 0 or cols <= 0:
        return stop("failed", "zero_size", f"{rows} x {cols}")
    if min(rows, cols) < min_side or max(rows, cols) > max_side or max(rows, cols) / min(rows, cols) > MAX_ASPECT:
        return stop("failed", "absurd_dimensions",
                    f"{rows} x {cols} (accepted: sides {min_side}-{max_side}, aspect <= {MAX_ASPECT:g})")
    if tag in FLOAT_PIXEL_DATA:
        return stop("failed", "unsupported_pixel_format", "float pixel data")
    bits_allocated = _int(ds, "BitsAllocated", 0)
    bits_stored = _int(ds, "BitsStored", bits_allocated) or bits_allocated
    pixel_rep = _int(ds, "PixelRepresentation", 0)
    if bits_allocated not in (8, 16, 32) or not (1 <= bits_stored <= bits_allocated):
        return stop("failed", "unsupported_pixel_format",
                    f"BitsAllocated {bits_allocated}, BitsStored {bits_stored}")
    ts = transfer_syntax(ds)
    problem = decoder_problem(ts)
    if problem:
        return stop("failed", "unsupported_transfer_syntax", problem)
    if deflated is not None:
        problem = _check_deflated(deflated, offset, length, rows, cols, bits_allocated)
        if problem:
            return stop(*problem)
    else:
        if ts.is_encapsulated or length == -1:
            n_frag, n_bytes, complete = _scan_fragments(fp, offset, st.st_size)
            if n_frag == 0 or n_bytes == 0:
                if not complete:
                    return stop("failed", "truncated", "file ends inside the encapsulated pixel data")
                return stop("failed", "no_pixel_data", "encapsulated pixel data without fragments")
            if not complete:
                return stop("failed", "truncated", "file ends inside the encapsulated pixel data")
        else:
            expected = rows * cols * (bits_allocated // 8)
            if length == 0:
                return stop("failed", "no_pixel_data", "empty Pixel Data element")
            if offset + length > st.st_size:
                missing = offset + length - st.st_size
                return stop("failed", "truncated", f"file ends {missing} bytes before the end of the pixel data")
            if length < expected:
                return stop("failed", "truncated", f"pixel data has {length} bytes, {rows}x{cols}x{bits_allocated}-bit needs {expected}")
    scan.pixel = vars(PixelSpec(
        transfer_syntax=str(ts), offset=offset, length=length, rows=rows, columns=cols,
        bits_allocated=bits_allocated, bits_stored=bits_stored, pixel_representation=pixel_rep,
        photometric=photometric, forced=forced, file_size=st.st_size, mtime_ns=st.st_mtime_ns,
        ino=st.st_ino, deflate_start=deflated.start if deflated is not None else -1,
    ))
    scan.intensity = vars(intensity_spec(ds))
    if forced:
        scan.meta["notes"] = "no file meta: read with force, transfer syntax detected"
    return scan


def decoder_problem(ts: UID) -> str | None:
    """Why pixels in transfer syntax `ts` cannot be decoded here, or None if they can."""
    from pydicom.pixels import get_decoder

    name = ts.name if ts.is_transfer_syntax else "unknown transfer syntax"
    if not ts.is_transfer_syntax:
        return f"{name} (private or not a transfer syntax; the UID is in the transfer_syntax column)"
    try:
        decoder = get_decoder(ts)
    except NotImplementedError:
        return f"{name}: no pixel data decoder exists for it in pydicom"
    if not decoder.is_available:
        missing = "; ".join(str(m) for m in (getattr(decoder, "missing_dependencies", None) or []))
        hint = ("install pylibjpeg with pylibjpeg-libjpeg / pylibjpeg-openjpeg / pylibjpeg-rle "
                "(pip install xraymunit brings them)")
        return f"{name}: decoder plugins unavailable ({missing or 'none installed'}); {hint}"
    return None


def safe_detail(exc: BaseException, reason: str = "decode_error") -> str:
    """What a report may say about an exception: its class and the fixed text of `reason`.

    Never the exception's message: messages of PIL, pydicom, zlib or the OS quote file names
    (any part of a path, including relative input folders such as `Smith Jr 19430517/`) and
    header values; the manifest and report are meant to be shared.
    """
    return f"{type(exc).__name__}: {REASONS.get(reason, 'error')}"


# ---------------------------------------------------------------------- metadata

def _clean_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        value = "\\".join(str(v) for v in value)
    s = str(value).strip()
    return s or None


def extract_identifiers(ds: Dataset) -> dict[str, str | None]:
    """PatientID and the UIDs, as stored. They stay in the private folder only."""
    return {
        "patient_id": _clean_str(value(ds, "PatientID")),
        "study_uid": _clean_str(value(ds, "StudyInstanceUID")),
        "series_uid": _clean_str(value(ds, "SeriesInstanceUID")),
        "sop_uid": _clean_str(value(ds, "SOPInstanceUID")),
    }


def extract_metadata(ds: Dataset) -> dict[str, Any]:
    """Shareable header facts for the manifest: no names, IDs or dates (age is derived)."""
    sex = (_clean_str(value(ds, "PatientSex")) or "").upper()
    row_mm, col_mm, spacing_source = pixel_spacing(ds)
    ts = transfer_syntax(ds)
    return {
        "modality": (_clean_str(value(ds, "Modality")) or "").upper() or None,
        "sex": sex if sex in ("M", "F", "O") else None,
        "age": patient_age(ds),
        "view_position": (_clean_str(value(ds, "ViewPosition")) or "").upper() or None,
        "body_part": (_clean_str(value(ds, "BodyPartExamined")) or "").upper() or None,
        "manufacturer": _clean_str(value(ds, "Manufacturer")),
        "photometric": (_clean_str(value(ds, "PhotometricInterpretation")) or "").upper() or None,
        "bits_stored": _int(ds, "BitsStored"),
        "transfer_syntax": ts.name if ts.is_transfer_syntax else str(ts),
        "rows": _int(ds, "Rows"),
        "columns": _int(ds, "Columns"),
        "spacing_row_mm": row_mm,
        "spacing_col_mm": col_mm,
        "spacing_source": spacing_source,
        # not a manifest column: ingest warns when raw detector ("FOR PROCESSING") images are present
        "presentation_intent": (_clean_str(value(ds, "PresentationIntentType")) or "").upper() or None,
    }


def pixel_spacing(ds: Dataset) -> tuple[float | None, float | None, str | None]:
    """(row mm, column mm, source) from ImagerPixelSpacing, else PixelSpacing; zero = absent.

    For projection radiographs ImagerPixelSpacing (at the detector) is the one that is
    reliably filled; PixelSpacing may be calibrated to the patient or be 0.000 (RG1).
    """
    for keyword in ("ImagerPixelSpacing", "PixelSpacing"):
        raw = value(ds, keyword)
        if raw is None or raw == "":
            continue
        try:
            values = [float(v) for v in (raw if isinstance(raw, (list, tuple, pydicom.multival.MultiValue)) else [raw])]
        except (TypeError, ValueError):
            continue
        if len(values) == 1:
            values = values * 2
        if len(values) >= 2 and all(math.isfinite(v) and v > 0 for v in values[:2]):
            return values[0], values[1], keyword
    return None, None, None


_AGE_RE = re.compile(r"^\s*(\d{1,3})\s*([DWMY]?)\s*$", re.IGNORECASE)


def parse_age_string(value: str | None) -> float | None:
    """DICOM AS ('064Y', '018M', '003W', '010D') to years; None if malformed."""
    if not value:
        return None
    m = _AGE_RE.match(str(value))
    if not m:
        return None
    n = int(m.group(1))
    unit = (m.group(2) or "Y").upper()
    years = {"Y": n, "M": n / 12.0, "W": n * 7 / 365.25, "D": n / 365.25}[unit]
    return round(years, 2) if unit != "Y" else float(years)


def _parse_date(value: Any) -> _dt.date | None:
    s = re.sub(r"[^0-9]", "", str(value or ""))  # ACR-NEMA dates use dots: 1993.02.24
    if len(s) < 8:
        return None
    try:
        return _dt.date(int(s[:4]), int(s[4:6]), int(s[6:8]))
    except ValueError:
        return None


def patient_age(ds: Dataset) -> float | None:
    """Age in years at the examination, capped at 90 (ages above 89 are identifying).

    From PatientAge, else PatientBirthDate vs the study (or series/acquisition/content)
    date, in whole years. The birth date itself is never returned.
    """
    age = parse_age_string(_clean_str(value(ds, "PatientAge")))
    if age is None:
        birth = _parse_date(value(ds, "PatientBirthDate"))
        exam = None
        for keyword in ("StudyDate", "SeriesDate", "AcquisitionDate", "ContentDate"):
            exam = _parse_date(value(ds, keyword))
            if exam:
                break
        if birth and exam and exam >= birth:
            years = exam.year - birth.year - ((exam.month, exam.day) < (birth.month, birth.day))
            age = float(years)
    if age is None or age < 0 or age > 150:
        return None
    return min(age, AGE_CAP)


def intensity_spec(ds: Dataset) -> IntensitySpec:
    """Header values of the Modality LUT / VOI / photometric steps (LUT data read on demand)."""
    slope = _first_float(value(ds, "RescaleSlope"))
    intercept = _first_float(value(ds, "RescaleIntercept"))
    function = (_clean_str(value(ds, "VOILUTFunction")) or "LINEAR").upper()
    return IntensitySpec(
        photometric=(_clean_str(value(ds, "PhotometricInterpretation")) or "MONOCHROME2").upper(),
        bits_stored=_int(ds, "BitsStored", 16) or 16,
        pixel_representation=_int(ds, "PixelRepresentation", 0) or 0,
        rescale_slope=slope if slope not in (None, 0.0) else 1.0,
        rescale_intercept=intercept if intercept is not None else 0.0,
        window_center=_first_float(value(ds, "WindowCenter")),
        window_width=_first_float(value(ds, "WindowWidth")),
        voi_function=function if function in ("LINEAR", "LINEAR_EXACT", "SIGMOID") else "LINEAR",
        has_modality_lut=_has_lut(ds, "ModalityLUTSequence"),
        has_voi_lut=_has_lut(ds, "VOILUTSequence"),
        presentation_intent=(_clean_str(value(ds, "PresentationIntentType")) or "").upper() or None,
    )


def _has_lut(ds: Dataset, keyword: str) -> bool:
    seq = ds.get(keyword)
    return bool(seq) and "LUTDescriptor" in seq[0] and "LUTData" in seq[0]


def read_lut(ds: Dataset, keyword: str) -> tuple[int, int, np.ndarray] | None:
    """First item of a Modality/VOI LUT Sequence as (first mapped value, output bits, data)."""
    seq = ds.get(keyword)
    if not seq or "LUTDescriptor" not in seq[0] or "LUTData" not in seq[0]:
        return None
    item = seq[0]
    desc = [int(v) for v in item.LUTDescriptor]
    n_entries = desc[0] or 65536
    first = desc[1]
    bits = desc[2] if len(desc) > 2 else 16
    raw = item.LUTData
    if isinstance(raw, (bytes, bytearray)):
        dtype = "<u1" if bits <= 8 and len(raw) == n_entries else "<u2"
        data = np.frombuffer(raw, dtype=dtype).astype(np.float32)
    else:
        data = np.asarray(list(raw) if not isinstance(raw, (int, float)) else [raw], dtype=np.float32)
    data = data[:n_entries]
    if (_int(ds, "PixelRepresentation", 0) or 0) == 1 and first >= 32768:
        first -= 65536  # first mapped value is signed for signed pixels (US vs SS ambiguity)
    return first, bits, data


def dicomdir_references(ds: Dataset) -> list[str]:
    """Files a DICOMDIR lists, as posix paths relative to the DICOMDIR's folder."""
    refs = []
    for record in ds.get("DirectoryRecordSequence", []) or []:
        file_id = record.get("ReferencedFileID")
        if not file_id:
            continue
        parts = [str(p) for p in (file_id if isinstance(file_id, (list, tuple, pydicom.multival.MultiValue)) else [file_id])]
        rel = "/".join(p.strip() for p in parts if p.strip())
        if rel and ".." not in rel.split("/"):
            refs.append(rel)
    return sorted(set(refs))


# ---------------------------------------------------------------------- pixels

def pixel_ident(pixel: dict) -> dict:
    """The file identity the header pass recorded in a `PixelSpec` dict (see `open_unchanged`)."""
    return {"size": pixel["file_size"], "mtime_ns": pixel["mtime_ns"], "ino": pixel.get("ino")}


def read_stored_pixels(path: str | os.PathLike, pixel: dict) -> np.ndarray:
    """Stored pixel values (rows, cols) of the file described by header-pass `pixel` info.

    Reads only the pixel bytes: native data straight from the file at the recorded
    offset; encapsulated data through pydicom's decoder given the file positioned at
    the value; deflated data inflated piecewise up to the end of the image (never more).
    BitsStored is respected (unused high bits masked, signed values extended).
    The file is opened once and must still be the one the header pass saw ("missing_file",
    "changed_during_ingest" otherwise). Raises PixelError with a FAIL_REASONS key.
    """
    ts = UID(pixel["transfer_syntax"])
    rows, cols = pixel["rows"], pixel["columns"]
    bits_allocated, bits_stored = pixel["bits_allocated"], pixel["bits_stored"]
    signed = pixel["pixel_representation"] == 1
    with open_unchanged(path, pixel_ident(pixel)) as fp:
        if pixel.get("deflate_start", -1) >= 0 or pixel["offset"] < 0:
            return _deflated_pixels(fp, pixel)
        if not ts.is_encapsulated:
            little = ts != ExplicitVRBigEndian
            dtype = np.dtype(("i" if signed else "u") + str(bits_allocated // 8)).newbyteorder("<" if little else ">")
            try:
                fp.seek(pixel["offset"])
                arr = np.fromfile(fp, dtype=dtype, count=rows * cols)
            except (OSError, ValueError) as exc:
                raise PixelError("truncated", safe_detail(exc, "truncated")) from None
            if arr.size != rows * cols:
                raise PixelError("truncated", f"read {arr.size} of {rows * cols} pixels")
            arr = arr.reshape(rows, cols)
            if not dtype.isnative:
                arr = arr.astype(dtype.newbyteorder("="))
            return mask_bits_stored(arr, bits_stored, signed)
        from pydicom.pixels import get_decoder

        decoder = get_decoder(ts)
        opts = dict(
            rows=rows, columns=cols, samples_per_pixel=1, number_of_frames=1,
            bits_allocated=bits_allocated, bits_stored=bits_stored,
            pixel_representation=pixel["pixel_representation"],
            photometric_interpretation=pixel["photometric"], transfer_syntax_uid=ts,
            pixel_keyword="PixelData",
        )
        problem = codestream_problem(fp, pixel["offset"], rows, cols)
        if problem:
            raise PixelError("decode_error", problem)
        try:
            fp.seek(pixel["offset"])
            arr, _ = decoder.as_array(fp, index=0, **opts)
        except Exception as exc:
            raise PixelError("decode_error", safe_detail(exc, "decode_error")) from None
    arr = np.asarray(arr)
    if arr.ndim != 2 or arr.shape != (rows, cols):
        raise PixelError("decode_error", f"decoded shape {arr.shape}, header says {rows}x{cols}")
    return arr


def _deflated_pixels(fp: BinaryIO, pixel: dict) -> np.ndarray:
    """Pixels of a Deflated Explicit VR Little Endian file: inflate up to the value, then exactly
    Rows x Columns x BitsAllocated/8 bytes of it (memory: one image, whatever the file claims)."""
    start, offset = pixel.get("deflate_start", -1), pixel["offset"]
    if start < 0 or offset < 0:  # a journal record of an earlier version: locate the value again
        try:
            d = _read_deflated(fp, 0)
        except InflateLimit:
            raise PixelError("decompression_bomb", f"the header alone inflates to more than "
                                                   f"{MAX_INFLATED_HEADER >> 20} MiB") from None
        except Exception as exc:
            raise PixelError("decode_error", safe_detail(exc, "decode_error")) from None
        tag, offset, _length = _element_header(d.element, False, True, d.element_offset) if d else (None, -1, 0)
        if d is None or tag is None:
            raise PixelError("decode_error", "no Pixel Data element in the deflated dataset")
        start = d.start
    rows, cols, bits_allocated = pixel["rows"], pixel["columns"], pixel["bits_allocated"]
    signed = pixel["pixel_representation"] == 1
    need = rows * cols * (bits_allocated // 8)
    inflater = _Inflater(fp, start)
    try:
        if inflater.skip(offset) != offset:
            raise PixelError("truncated", "inflated data ends before the pixel data")
        data = inflater.read(need)
    except zlib.error as exc:
        raise PixelError("decode_error", safe_detail(exc, "decode_error")) from None
    if len(data) < need:
        raise PixelError("truncated", f"inflated {len(data)} of {need} pixel data bytes")
    dtype = np.dtype(("i" if signed else "u") + str(bits_allocated // 8)).newbyteorder("<")
    arr = np.frombuffer(data, dtype=dtype, count=rows * cols).reshape(rows, cols)
    if not dtype.isnative:
        arr = arr.astype(dtype.newbyteorder("="))
    return mask_bits_stored(arr, pixel["bits_stored"], signed)


_SOF_MARKERS = {0xC0, 0xC1, 0xC2, 0xC3, 0xC5, 0xC6, 0xC7, 0xC9, 0xCA, 0xCB, 0xCD, 0xCE, 0xCF, 0xF7}


def codestream_dims(data: bytes) -> tuple[int, int] | None:
    """(rows, columns) a JPEG / JPEG-LS / JPEG 2000 codestream declares, from its first bytes;
    None when they cannot be told (RLE, an unknown or cut codestream)."""
    at = data.find(b"\xff\x4f\xff\x51")  # J2K SOC + SIZ (also inside a JP2 wrapper)
    if at >= 0 and len(data) >= at + 4 + 22:
        xsiz, ysiz, xo, yo = struct.unpack_from(">LLLL", data, at + 8)
        return ysiz - yo, xsiz - xo
    if data[:2] != b"\xff\xd8":
        return None
    pos = 2
    while pos + 4 <= len(data):
        if data[pos] != 0xFF:
            return None
        marker = data[pos + 1]
        if marker == 0xFF:  # fill byte
            pos += 1
            continue
        (seg_len,) = struct.unpack_from(">H", data, pos + 2)
        if marker in _SOF_MARKERS:
            if pos + 9 > len(data):
                return None
            rows, cols = struct.unpack_from(">HH", data, pos + 5)
            return (rows, cols) if rows else None  # rows 0: given later by a DNL marker
        pos += 2 + seg_len
    return None


def codestream_problem(fp: BinaryIO, offset: int, rows: int, cols: int) -> str | None:
    """Before a decoder allocates anything: the first fragment's codestream must declare the
    image size the header gives (a decoder sizes its output from the codestream, which a hostile
    file can make arbitrarily large). Returns what is wrong, or None."""
    fp.seek(offset)
    head = fp.read(8)
    if len(head) < 8:
        return None
    _g, _e, bot_len = struct.unpack("<HHL", head)
    fp.seek(offset + 8 + bot_len)  # skip the basic offset table item
    item = fp.read(8)
    if len(item) < 8 or struct.unpack("<HH", item[:4]) != (0xFFFE, 0xE000):
        return None
    dims = codestream_dims(fp.read(min(struct.unpack("<L", item[4:])[0], 1 << 16)))
    if dims is not None and dims != (rows, cols):
        return f"codestream declares {dims[0]}x{dims[1]}, header says {rows}x{cols}"
    return None


def mask_bits_stored(arr: np.ndarray, bits_stored: int, signed: bool) -> np.ndarray:
    """Keep only the BitsStored low bits (overlay/garbage bits above are dropped)."""
    bits_allocated = arr.dtype.itemsize * 8
    if bits_stored >= bits_allocated:
        return arr
    if not signed:
        mask = arr.dtype.type((1 << bits_stored) - 1)
        if arr.flags.writeable:
            return np.bitwise_and(arr, mask, out=arr)
        return np.bitwise_and(arr, mask)
    shift = bits_allocated - bits_stored
    return np.right_shift(np.left_shift(arr, shift), shift)  # sign-extend from bit bits_stored-1


def load_dicom(path: str | os.PathLike) -> tuple[np.ndarray, dict, dict]:
    """Stored pixels + intensity spec + LUTs of one file, for use outside ingest.

    Returns (array, intensity dict, luts) where luts has "modality_lut"/"voi_lut" entries
    (or None). Raises PixelError for files that are not usable radiographs.
    """
    scan = scan_header(path, modalities=None, min_side=1, max_side=1 << 16)
    if scan.status != "ok":
        raise PixelError(scan.reason or "decode_error", scan.detail or "")
    arr = read_stored_pixels(path, scan.pixel)
    return arr, scan.intensity, read_luts(path, scan.intensity)


def read_luts(path: str | os.PathLike, intensity: dict, ident: dict | None = None) -> dict:
    """Modality / VOI LUT sequences of a file when its header has them (rare, read on demand).
    With `ident` (see `file_ident`), the file must be the one the header pass saw."""
    luts = {"modality_lut": None, "voi_lut": None}
    if not (intensity.get("has_modality_lut") or intensity.get("has_voi_lut")):
        return luts
    with open_unchanged(path, ident) as fp:
        ds, _ = read_header(fp)
    luts["modality_lut"] = read_lut(ds, "ModalityLUTSequence") if intensity.get("has_modality_lut") else None
    luts["voi_lut"] = read_lut(ds, "VOILUTSequence") if intensity.get("has_voi_lut") else None
    return luts
