"""PNG / JPEG radiographs: sniffing, a cheap header read, and decoding to one grey channel.

Most public chest X-ray datasets ship PNG or JPEG. They are already display images
(windowed, bright = dense), so decoding keeps their intensities; the only conversions
are the ones needed to get one channel, and each is recorded in `steps` so the
manifest says what was done to every image.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

import numpy as np
from PIL import Image, ImageOps

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
JPEG_MAGIC = b"\xff\xd8\xff"


def sniff_format(head: bytes) -> str | None:
    """'png', 'jpeg' or None from the first bytes of a file (extensions lie)."""
    if head.startswith(PNG_MAGIC):
        return "png"
    if head.startswith(JPEG_MAGIC):
        return "jpeg"
    return None


@dataclass
class RasterHeader:
    """Size and mode read without decoding the pixels."""

    format: str
    mode: str  # PIL mode as stored: L, I;16, RGB, P, …
    rows: int
    columns: int
    bits: int  # 8 or 16


@dataclass
class RasterImage:
    """One grey channel (uint8 or uint16) plus what was done to get it."""

    array: np.ndarray
    mode: str
    bits: int
    steps: list[str] = field(default_factory=list)


def read_raster_header(path: str | os.PathLike | BinaryIO) -> RasterHeader:
    """Open lazily (PIL reads only the header) to get size and mode; raises OSError if broken.
    `path` may be a file already open in binary mode (read from its start; left open)."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        with Image.open(path) as im:
            fmt = (im.format or "").lower()
            rows, cols = im.size[1], im.size[0]
            orientation = im.getexif().get(0x0112, 1) if fmt == "jpeg" else 1
            if orientation in (5, 6, 7, 8):  # EXIF rotation by 90°: decoded size is transposed
                rows, cols = cols, rows
            return RasterHeader(format="jpeg" if fmt in ("jpeg", "mpo") else fmt, mode=im.mode,
                                rows=rows, columns=cols, bits=16 if im.mode.startswith("I") else 8)


def read_raster(path: str | os.PathLike) -> RasterImage:
    """Decode a PNG/JPEG to one grey channel.

    - EXIF orientation applied (phones and some exporters rotate by tag, not pixels).
    - 8-bit grey kept; 16-bit grey kept as uint16 (PIL 'I;16' or 'I').
    - RGB/RGBA/P/LA/CMYK → luma (ITU-R 601: 0.299 R + 0.587 G + 0.114 B), alpha dropped;
      'rgb_grey' is recorded instead when the three channels are equal (a re-saved grey image).
    """
    path = Path(path)
    steps: list[str] = []
    with Image.open(path) as im:
        im.load()
        mode = im.mode
        orientation = _exif_orientation(im)
        if orientation != 1:
            im = ImageOps.exif_transpose(im)
            steps.append(f"exif_orientation({orientation})")
        if im.mode in ("I;16", "I;16B", "I;16L", "I;16N"):
            arr = np.asarray(im).astype(np.uint16, copy=False)
            return RasterImage(arr, mode, 16, steps + ["grey16"])
        if im.mode == "I":
            arr = np.asarray(im)
            if arr.size and (arr.min() < 0 or arr.max() > 65535):
                arr = np.clip(arr, 0, 65535)
                steps.append("clip_to_uint16")
            return RasterImage(arr.astype(np.uint16), mode, 16, steps + ["grey16"])
        if im.mode == "F":
            arr = np.asarray(im, dtype=np.float32)
            lo, hi = (float(arr.min()), float(arr.max())) if arr.size else (0.0, 1.0)
            arr = np.round((arr - lo) / max(hi - lo, 1e-12) * 65535).astype(np.uint16)
            return RasterImage(arr, mode, 16, steps + ["float_minmax_to_uint16"])
        if im.mode == "L":
            return RasterImage(np.asarray(im).copy(), mode, 8, steps + ["grey8"])
        if im.mode in ("1",):
            return RasterImage(np.asarray(im.convert("L")).copy(), mode, 8, steps + ["bilevel_to_grey8"])
        if im.mode in ("LA", "La"):
            return RasterImage(np.asarray(im.getchannel(0)).copy(), mode, 8, steps + ["alpha_dropped", "grey8"])
        rgb = im.convert("RGB")
        arr3 = np.asarray(rgb)
        if np.array_equal(arr3[..., 0], arr3[..., 1]) and np.array_equal(arr3[..., 1], arr3[..., 2]):
            return RasterImage(arr3[..., 0].copy(), mode, 8, steps + ["rgb_grey"])
        grey = np.asarray(rgb.convert("L")).copy()
        return RasterImage(grey, mode, 8, steps + ["rgb_to_luma(ITU-R 601)"])


def _exif_orientation(im: Image.Image) -> int:
    try:
        return int(im.getexif().get(0x0112, 1))
    except Exception:  # malformed EXIF: treat as upright
        return 1
