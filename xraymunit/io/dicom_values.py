"""Header values: fast element access, spacing, identifiers, intensity facts, LUTs, DICOMDIR references."""

from __future__ import annotations

import math
import struct
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset

PHOTOMETRICS = {"MONOCHROME1", "MONOCHROME2", "PALETTE COLOR", "RGB", "HSV", "ARGB", "CMYK", "YBR_FULL",
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


def int_value(ds: Dataset, keyword: str, default: int | None = None) -> int | None:
    v = value(ds, keyword)
    if isinstance(v, (list, tuple, pydicom.multival.MultiValue)):
        v = v[0] if len(v) else None
    if v is None or v == "":
        return default
    try:
        return int(v)
    except (TypeError, ValueError):
        return default


def first_float(value: Any) -> float | None:
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


def clean_str(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, (list, tuple, pydicom.multival.MultiValue)):
        value = "\\".join(str(v) for v in value)
    s = str(value).strip()
    return s or None


def extract_identifiers(ds: Dataset) -> dict[str, str | None]:
    """PatientID and the UIDs, as stored. They stay in the private folder only."""
    return {
        "patient_id": clean_str(value(ds, "PatientID")),
        "study_uid": clean_str(value(ds, "StudyInstanceUID")),
        "series_uid": clean_str(value(ds, "SeriesInstanceUID")),
        "sop_uid": clean_str(value(ds, "SOPInstanceUID")),
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


def intensity_spec(ds: Dataset) -> IntensitySpec:
    """Header values of the Modality LUT / VOI / photometric steps (LUT data read on demand)."""
    slope = first_float(value(ds, "RescaleSlope"))
    intercept = first_float(value(ds, "RescaleIntercept"))
    function = (clean_str(value(ds, "VOILUTFunction")) or "LINEAR").upper()
    return IntensitySpec(
        photometric=(clean_str(value(ds, "PhotometricInterpretation")) or "MONOCHROME2").upper(),
        bits_stored=int_value(ds, "BitsStored", 16) or 16,
        pixel_representation=int_value(ds, "PixelRepresentation", 0) or 0,
        rescale_slope=slope if slope not in (None, 0.0) else 1.0,
        rescale_intercept=intercept if intercept is not None else 0.0,
        window_center=first_float(value(ds, "WindowCenter")),
        window_width=first_float(value(ds, "WindowWidth")),
        voi_function=function if function in ("LINEAR", "LINEAR_EXACT", "SIGMOID") else "LINEAR",
        has_modality_lut=_has_lut(ds, "ModalityLUTSequence"),
        has_voi_lut=_has_lut(ds, "VOILUTSequence"),
        presentation_intent=(clean_str(value(ds, "PresentationIntentType")) or "").upper() or None,
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
    if (int_value(ds, "PixelRepresentation", 0) or 0) == 1 and first >= 32768:
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
