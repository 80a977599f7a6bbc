"""First step of the ingest pixel chain: a file path → its stored pixel values and the header facts
the later steps need (`<key>_meta_dict`)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Hashable, Mapping

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform

from xraymunit.io import dicom, raster


def meta_key(key: Hashable) -> str:
    """Where the per-image facts of `key` live (MONAI's `<key>_meta_dict` convention)."""
    return f"{key}_meta_dict"


def load_radiograph(path: str | os.PathLike, header: Mapping[str, Any] | None = None) -> tuple[np.ndarray, dict]:
    """Stored pixel values of a DICOM/PNG/JPEG file plus the facts later steps need.

    `header` is the header-pass record of ingest (`HeaderScan.to_json()`, plus "kind");
    with it only the pixel bytes are read. Without it the file is sniffed and parsed.
    """
    path = Path(path)
    kind = header.get("kind") if header else None
    if kind is None:
        with open(path, "rb") as fp:
            head = fp.read(132)
        kind = raster.sniff_format(head) or ("dicom" if dicom.looks_like_dicom(head) else None)
    if kind in ("png", "jpeg"):
        img = raster.read_raster(path)
        meta = _base_meta(path, kind)
        meta.update(photometric="MONOCHROME2", bits_stored=img.bits, pixel_representation=0,
                    display_range=(0.0, float((1 << img.bits) - 1)) if img.bits == 8 else None)
        meta["steps"] = [f"load:{kind}"] + img.steps
        return img.array, meta
    if kind != "dicom":
        raise dicom.PixelError("decode_error", "not a DICOM, PNG or JPEG file")
    scanned_by_ingest = bool(header and header.get("pixel"))
    if not scanned_by_ingest:
        header = _scan_dicom(path)
    arr = dicom.read_stored_pixels(path, header["pixel"])
    intensity = dict(header["intensity"])
    luts = dicom.read_luts(path, intensity)
    forced = scanned_by_ingest and bool(header["pixel"].get("forced"))
    meta = _base_meta(path, "dicom")
    meta.update(intensity)
    meta.update(luts)
    meta.update(_spacing(header))
    meta["steps"] = ["load:dicom" + ("(forced, no file meta)" if forced else "")]
    return arr, meta


def _scan_dicom(path: Path) -> dict:
    """Header pass of a file read outside ingest (any modality and size), as ingest records it
    (keeping the record: its spacing is needed too)."""
    from xraymunit.ingestion.rules import scan_header  # structural checks only, no policy limits

    scan = scan_header(path, modalities=None, min_side=1, max_side=1 << 16)
    if scan.status != "ok":
        raise dicom.PixelError(scan.reason or "decode_error", scan.detail or "")
    return scan.to_json()


def _spacing(header: Mapping[str, Any]) -> dict:
    """(row, col) mm pixel spacing the header pass found (ImagerPixelSpacing, else PixelSpacing)."""
    facts = header.get("meta") or {}
    row, col = facts.get("spacing_row_mm"), facts.get("spacing_col_mm")
    if not (row and col):
        return {"spacing_mm": None, "spacing_source": None}
    return {"spacing_mm": (float(row), float(col)), "spacing_source": facts.get("spacing_source")}


def _base_meta(path: Path, kind: str) -> dict:
    return {"filename_or_obj": str(path), "source_format": kind, "photometric": "MONOCHROME2", "pending": None,
            "rescale_slope": 1.0, "rescale_intercept": 0.0, "window_center": None, "window_width": None,
            "voi_function": "LINEAR", "modality_lut": None, "voi_lut": None, "display_range": None,
            "window_source": None, "window": None, "spacing_mm": None, "spacing_source": None, "steps": []}


class LoadRadiographd(MapTransform):
    """Read the file named by `data[key]` → stored pixel values (2-D) + `<key>_meta_dict`.

    Args:
        keys: keys holding file paths.
        header_key: optional key holding the ingest header-pass record (skips re-parsing).
    """

    def __init__(self, keys: KeysCollection = "image", header_key: str | None = "header",
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        self.header_key = header_key

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        header = d.get(self.header_key) if self.header_key else None
        for key in self.key_iterator(d):
            d[key], d[meta_key(key)] = load_radiograph(d[key], header)
        return d
