"""DICOM header reading without pixels: file checks, parsing, where the pixel data sits.

Ingest reads every file twice, cheaply: a header pass (no pixels) decides what the file is
and records where the pixel data sits (`PixelSpec`); the decode pass (`dicom_pixels`) then
reads only the pixel bytes. Everything returned is plain JSON-safe data for the journal.
Identifiers (PatientID, UIDs) are returned separately in `HeaderScan.ids`: the caller keeps
them in the private folder and hashes them before anything is shared.
"""

from __future__ import annotations

import contextlib
import logging
import os
import struct
import warnings
from dataclasses import dataclass, field
from typing import Any, BinaryIO, Iterator

import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.errors import InvalidDicomError
from pydicom.uid import ExplicitVRBigEndian, ExplicitVRLittleEndian, ImplicitVRLittleEndian, UID

from xraymunit.io.dicom_inflate import FLOAT_PIXEL_DATA, PIXEL_DATA, maybe_deflated, read_deflated

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
    "decoder_crashed": "the native decoder (SimpleITK/GDCM) crashed on the file; not retried",
    "worker_died": "the worker process handling the file died (native crash, or killed: out of memory, kill -9); "
                   "not retried",
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


def read_header(fp: BinaryIO, stop_before_pixels: bool = True) -> tuple[Dataset, bool]:
    """Parse a DICOM header from `fp`; returns (dataset, forced).

    A file without preamble/file meta is read with force=True and given the transfer
    syntax pydicom detected while parsing, so its pixels can be decoded later. A deflated
    dataset is inflated only up to its Pixel Data (bounded; `stop_before_pixels` must hold).
    """
    start = fp.tell()
    if maybe_deflated(fp.read(1024)):
        deflated = read_deflated(fp, start)
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
        implicit, little = detected_encoding(ds)
        if implicit:
            ds.file_meta.TransferSyntaxUID = ImplicitVRLittleEndian
        else:
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian if little else ExplicitVRBigEndian
    return ds, True


def detected_encoding(ds: Dataset) -> tuple[bool, bool]:
    enc = getattr(ds, "original_encoding", None)
    if enc and enc[0] is not None:
        return bool(enc[0]), bool(enc[1])
    return True, True


def transfer_syntax(ds: Dataset) -> UID:
    meta = getattr(ds, "file_meta", None)
    uid = meta.get("TransferSyntaxUID") if meta is not None else None
    return UID(str(uid)) if uid else ImplicitVRLittleEndian


# ------------------------------------------------------------------ pixel element scan

def pixel_element(fp: BinaryIO, ds: Dataset, file_size: int) -> tuple[int | None, int, int]:
    """Peek the element after the header: (tag, value offset, value length) or (None, .., ..).

    `dcmread(stop_before_pixels=True)` leaves the file positioned at the start of the
    pixel element (or at EOF when there is none); reading its 8-12 byte header tells us
    where the pixels are and how long they claim to be, without reading them.
    """
    pos = fp.tell()
    implicit, little = detected_encoding(ds)
    return element_header(fp.read(12), implicit, little, pos)


def element_header(head: bytes, implicit: bool, little: bool, pos: int) -> tuple[int | None, int, int]:
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


def scan_fragments(fp: BinaryIO, offset: int, file_size: int) -> tuple[int, int, bool]:
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
