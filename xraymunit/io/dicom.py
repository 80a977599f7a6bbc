"""Reading DICOM files (no torch): the public names of `dicom_header`, `dicom_values`,
`dicom_pixels` and `dicom_inflate`, and `load_dicom` for single files outside ingest.

Which files ingest accepts, and why it skips the others, is ingest policy:
`xraymunit.ingestion.rules` (header scan and classification), `.demographics` (manifest facts).
"""

from __future__ import annotations

import os

import numpy as np

from xraymunit.io.dicom_header import (DICOMDIR_SOP_CLASS, FAIL_REASONS, REASONS, SKIP_REASONS, HeaderScan,
                                       PixelError, PixelSpec, check_ident, decoder_problem, file_ident,
                                       looks_like_dicom, open_unchanged, quiet_pydicom, read_header, safe_detail,
                                       transfer_syntax)
from xraymunit.io.dicom_inflate import INFLATE_CHUNK, INFLATE_SLACK, MAX_INFLATED_HEADER, Inflater, InflateLimit
from xraymunit.io.dicom_pixels import (codestream_dims, codestream_problem, mask_bits_stored, pixel_ident,
                                       read_luts, read_stored_pixels)
from xraymunit.io.dicom_values import (IntensitySpec, dicomdir_references, extract_identifiers, intensity_spec,
                                       pixel_spacing, read_lut, value)

__all__ = ["DICOMDIR_SOP_CLASS", "FAIL_REASONS", "INFLATE_CHUNK", "INFLATE_SLACK", "MAX_INFLATED_HEADER", "REASONS",
           "SKIP_REASONS", "HeaderScan", "Inflater", "InflateLimit", "IntensitySpec", "PixelError", "PixelSpec",
           "check_ident", "codestream_dims", "codestream_problem", "decoder_problem", "dicomdir_references",
           "extract_identifiers", "file_ident", "intensity_spec", "load_dicom", "looks_like_dicom", "mask_bits_stored",
           "open_unchanged", "pixel_ident", "pixel_spacing", "quiet_pydicom", "read_header", "read_lut", "read_luts",
           "read_stored_pixels", "safe_detail", "transfer_syntax", "value"]


def load_dicom(path: str | os.PathLike) -> tuple[np.ndarray, dict, dict]:
    """Stored pixels + intensity spec + LUTs of one file, for use outside ingest.

    Returns (array, intensity dict, luts) where luts has "modality_lut"/"voi_lut" entries
    (or None). Any modality and size is read; raises PixelError for files that are not
    usable single-frame grayscale images.
    """
    from xraymunit.ingestion.rules import scan_header  # the same structural checks as ingest, no policy limits

    scan = scan_header(path, modalities=None, min_side=1, max_side=1 << 16)
    if scan.status != "ok":
        raise PixelError(scan.reason or "decode_error", scan.detail or "")
    arr = read_stored_pixels(path, scan.pixel)
    return arr, scan.intensity, read_luts(path, scan.intensity)


# names that moved to ingest policy: still reachable here for code written against the old module
_MOVED = {"scan_header": "rules", "scan_open_file": "rules", "classify_sop": "rules",
          "DEFAULT_MODALITIES": "settings", "DEFAULT_MIN_SIDE": "settings", "DEFAULT_MAX_SIDE": "settings",
          "MAX_ASPECT": "settings", "AGE_CAP": "demographics", "parse_age_string": "demographics",
          "patient_age": "demographics", "extract_metadata": "demographics"}


def __getattr__(name: str):
    if name in _MOVED:
        import importlib

        return getattr(importlib.import_module(f"xraymunit.ingestion.{_MOVED[name]}"), name)
    raise AttributeError(f"module 'xraymunit.io.dicom' has no attribute {name!r}")
