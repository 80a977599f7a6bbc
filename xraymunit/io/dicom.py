"""Reading DICOM files (no torch): the public names of `dicom_header`, `dicom_values`,
`dicom_pixels` and `dicom_inflate`.

Which files ingest accepts, and why it skips the others, is ingest policy:
`xraymunit.ingestion.rules` (header scan and classification), `.demographics` (manifest facts).
"""

from __future__ import annotations

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
           "extract_identifiers", "file_ident", "intensity_spec", "looks_like_dicom", "mask_bits_stored",
           "open_unchanged", "pixel_ident", "pixel_spacing", "quiet_pydicom", "read_header", "read_lut", "read_luts",
           "read_stored_pixels", "safe_detail", "transfer_syntax", "value"]
