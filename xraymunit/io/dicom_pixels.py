"""The decode pass: stored pixel values of a file from what its header pass recorded (no torch)."""

from __future__ import annotations

import os
import struct
import zlib
from typing import BinaryIO

import numpy as np
from pydicom.uid import ExplicitVRBigEndian, UID

from xraymunit.io.dicom_header import (PixelError, decoder_problem, element_header, open_unchanged, read_header,
                                       safe_detail)
from xraymunit.io.dicom_inflate import MAX_INFLATED_HEADER, Inflater, InflateLimit, read_deflated
from xraymunit.io.dicom_values import read_lut

def pixel_ident(pixel: dict) -> dict:
    """The file identity the header pass recorded in a `PixelSpec` dict (see `open_unchanged`)."""
    return {"size": pixel["file_size"], "mtime_ns": pixel["mtime_ns"], "ino": pixel.get("ino")}


def read_stored_pixels(path: str | os.PathLike, pixel: dict) -> np.ndarray:
    """Stored pixel values (rows, cols) of the file described by header-pass `pixel` info.

    Reads only the pixel bytes: native data straight from the file at the recorded
    offset; encapsulated data through pydicom's decoder given the file positioned at
    the value (or through SimpleITK's GDCM when `pixel["decoder"] == "simpleitk"`); deflated
    data inflated piecewise up to the end of the image (never more).
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
        problem = codestream_problem(fp, pixel["offset"], rows, cols)
        if problem:
            raise PixelError("decode_error", problem)
        if pixel.get("decoder") == "simpleitk":
            arr = _simpleitk_pixels(path, pixel)
        else:
            arr = _pydicom_pixels(fp, pixel, ts)
    arr = np.asarray(arr)
    if arr.ndim != 2 or arr.shape != (rows, cols):
        raise PixelError("decode_error", f"decoded shape {arr.shape}, header says {rows}x{cols}")
    return arr


def _pydicom_pixels(fp: BinaryIO, pixel: dict, ts: UID) -> np.ndarray:
    """Encapsulated pixels through pydicom's decoder plugins; PixelError "unsupported_transfer_syntax"
    when none can decode `ts` here (the caller may then try `SIMPLEITK_SYNTAXES`)."""
    from pydicom.pixels import get_decoder

    problem = decoder_problem(ts)
    if problem:
        raise PixelError("unsupported_transfer_syntax", problem)
    opts = dict(rows=pixel["rows"], columns=pixel["columns"], samples_per_pixel=1, number_of_frames=1,
                bits_allocated=pixel["bits_allocated"], bits_stored=pixel["bits_stored"],
                pixel_representation=pixel["pixel_representation"],
                photometric_interpretation=pixel["photometric"], transfer_syntax_uid=ts, pixel_keyword="PixelData")
    try:
        fp.seek(pixel["offset"])
        arr, _ = get_decoder(ts).as_array(fp, index=0, **opts)
    except Exception as exc:
        raise PixelError("decode_error", safe_detail(exc, "decode_error")) from None
    return arr


# compressed syntaxes GDCM decodes when pydicom's plugins cannot (not video, not JPEG XL)
SIMPLEITK_SYNTAXES = frozenset({
    "1.2.840.10008.1.2.5",  # RLE Lossless
    "1.2.840.10008.1.2.4.50", "1.2.840.10008.1.2.4.51", "1.2.840.10008.1.2.4.57", "1.2.840.10008.1.2.4.70",  # JPEG
    "1.2.840.10008.1.2.4.80", "1.2.840.10008.1.2.4.81",  # JPEG-LS
    "1.2.840.10008.1.2.4.90", "1.2.840.10008.1.2.4.91",  # JPEG 2000
})


def simpleitk_fallback_possible(transfer_syntax: str) -> bool:
    """Whether SimpleITK (GDCM) is installed and may decode this transfer syntax."""
    import importlib.util

    return str(transfer_syntax) in SIMPLEITK_SYNTAXES and importlib.util.find_spec("SimpleITK") is not None


def _simpleitk_pixels(path: str | os.PathLike, pixel: dict) -> np.ndarray:
    """Stored values decoded by SimpleITK's GDCM (`io.sitk_image.read_with_simpleitk`), checked against
    the header the header pass read (size, bits stored). GDCM runs in a forked child: it segfaults on
    some corrupt JPEG headers, which then costs this file ("decoder_crashed"), not the run."""
    from xraymunit.io import sitk_image
    from xraymunit.io.child import ChildCrashed, call_in_child

    try:
        sitk_image.load_simpleitk()  # here, once: not again in every child (0.2 s each)
        arr, _spacing = call_in_child(sitk_image.read_with_simpleitk, path)
    except ImportError:
        raise PixelError("unsupported_transfer_syntax", "no pydicom decoder and SimpleITK is not installed") from None
    except ChildCrashed as exc:
        raise PixelError("decoder_crashed", f"SimpleITK (GDCM) crashed decoding it ({exc})") from None
    except Exception as exc:  # SimpleITKReadError; its message names the path: not for reports
        raise PixelError("unsupported_transfer_syntax",
                         f"no pydicom decoder, and SimpleITK (GDCM) could not decode it either "
                         f"({type(exc).__name__})") from None
    signed = pixel["pixel_representation"] == 1
    if arr.dtype.kind not in "iu" or (arr.dtype.kind == "i") != signed:
        arr = arr.astype(np.dtype(("i" if signed else "u") + str(max(1, pixel["bits_allocated"] // 8))))
    return mask_bits_stored(np.ascontiguousarray(arr), pixel["bits_stored"], signed)


def _deflated_pixels(fp: BinaryIO, pixel: dict) -> np.ndarray:
    """Pixels of a Deflated Explicit VR Little Endian file: inflate up to the value, then exactly
    Rows x Columns x BitsAllocated/8 bytes of it (memory: one image, whatever the file claims)."""
    start, offset = pixel.get("deflate_start", -1), pixel["offset"]
    if start < 0 or offset < 0:  # a journal record of an earlier version: locate the value again
        try:
            d = read_deflated(fp, 0)
        except InflateLimit:
            raise PixelError("decompression_bomb", f"the header alone inflates to more than "
                                                   f"{MAX_INFLATED_HEADER >> 20} MiB") from None
        except Exception as exc:
            raise PixelError("decode_error", safe_detail(exc, "decode_error")) from None
        tag, offset, _length = element_header(d.element, False, True, d.element_offset) if d else (None, -1, 0)
        if d is None or tag is None:
            raise PixelError("decode_error", "no Pixel Data element in the deflated dataset")
        start = d.start
    rows, cols, bits_allocated = pixel["rows"], pixel["columns"], pixel["bits_allocated"]
    signed = pixel["pixel_representation"] == 1
    need = rows * cols * (bits_allocated // 8)
    inflater = Inflater(fp, start)
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
