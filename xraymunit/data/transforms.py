"""The ingest pixel path as MONAI dictionary transforms: file → display image in [0, 1].

    Compose([LoadRadiographd, ModalityLUTd, VOIWindowd, InvertMonochrome1d,
             SquareFitd, AreaResized, ChannelFirstd])

Output convention for every input format: float32 (1, S, S) in [0, 1], **bright = dense**
(bone, mediastinum), dark = air (lungs). Each step appends what it did to
`data["image_meta_dict"]["steps"]`, which ingest stores per image in the manifest.

The transforms are plain numpy (no MetaTensor, no torch) so a 1024² image costs a few
milliseconds beyond its decode; they work on any dict with the same keys, so users can
reuse `ingest_transforms()` to read single files exactly as ingest does:

    img = ingest_transforms(size=512)({"image": "study/IM0001"})["image"]
"""

from __future__ import annotations

import math
import os
from pathlib import Path
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
from monai.config import KeysCollection
from monai.transforms import Compose, MapTransform
from PIL import Image

from xraymunit.io import dicom, raster

FITS = ("pad", "crop")
WINDOW_MODES = ("auto", "percentile")
CONTRASTS = ("none", "equalize", "clahe")
DEFAULT_PERCENTILES = (0.5, 99.5)
PERCENTILE_SAMPLE = 65536  # pixels used to estimate the percentile window


def meta_key(key: Hashable) -> str:
    """Where the per-image facts of `key` live (MONAI's `<key>_meta_dict` convention)."""
    return f"{key}_meta_dict"


# --------------------------------------------------------------------------- loading

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
    if header and header.get("pixel"):
        arr = dicom.read_stored_pixels(path, header["pixel"])
        intensity = dict(header["intensity"])
        luts = dicom.read_luts(path, intensity)
        forced = bool(header["pixel"].get("forced"))
    else:
        arr, intensity, luts = dicom.load_dicom(path)
        forced = False
    meta = _base_meta(path, "dicom")
    meta.update(intensity)
    meta.update(luts)
    meta["steps"] = ["load:dicom" + ("(forced, no file meta)" if forced else "")]
    return arr, meta


def _base_meta(path: Path, kind: str) -> dict:
    return {"filename_or_obj": str(path), "source_format": kind, "photometric": "MONOCHROME2", "pending": None,
            "rescale_slope": 1.0, "rescale_intercept": 0.0, "window_center": None, "window_width": None,
            "voi_function": "LINEAR", "modality_lut": None, "voi_lut": None, "display_range": None,
            "window_source": None, "window": None, "steps": []}


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


# --------------------------------------------------------------------------- intensity

def _lut_lookup(x: np.ndarray, first: int, data: np.ndarray) -> np.ndarray:
    idx = np.asarray(x)
    if idx.dtype.kind == "f":
        idx = np.rint(idx)
    idx = np.clip(idx.astype(np.int64, copy=False) - int(first), 0, len(data) - 1)
    return np.take(np.asarray(data, dtype=np.float32), idx)


class ModalityLUTd(MapTransform):
    """Stored values → modality values: Modality LUT Sequence, else RescaleSlope/Intercept.

    Identity rescale (1, 0) keeps the integer array untouched (no float copy).
    """

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            meta = d[meta_key(key)]
            x = d[key]
            lut = meta.get("modality_lut")
            slope = float(meta.get("rescale_slope") or 1.0)
            intercept = float(meta.get("rescale_intercept") or 0.0)
            if lut is not None:
                first, _bits, table = lut
                d[key] = _lut_lookup(x, first, table)
                meta["steps"].append("modality_lut:sequence")
            elif slope != 1.0 or intercept != 0.0:
                y = np.multiply(x, np.float32(slope), dtype=np.float32)
                y += np.float32(intercept)
                d[key] = y
                meta["steps"].append(f"modality_lut:rescale({slope:g},{intercept:g})")
        return d


def robust_range(x: np.ndarray, percentiles: Sequence[float] = DEFAULT_PERCENTILES,
                 sample: int = PERCENTILE_SAMPLE) -> tuple[float, float]:
    """(lo, hi) percentiles of `x`, estimated on a regular subsample of about `sample` pixels.

    A strided subsample of a radiograph has the same histogram to well under a grey
    level, at a fraction of the cost of sorting every pixel.
    """
    step = max(1, int(math.sqrt(x.size / max(sample, 1))))
    sub = np.asarray(x[::step, ::step] if x.ndim == 2 else x.ravel()[::step * step]).ravel()
    if sub.size == 0:
        return 0.0, 1.0
    n = sub.size
    ks = [min(n - 1, max(0, int(round(p / 100.0 * (n - 1))))) for p in percentiles]
    part = np.partition(sub, ks)
    return float(part[ks[0]]), float(part[ks[1]])


def _linear(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """(x - lo) / (hi - lo) clipped to [0, 1], as float32, in as few passes as possible."""
    scale = 1.0 / (hi - lo)
    y = np.multiply(x, np.float32(scale), dtype=np.float32)  # a new array: inputs are never modified
    y -= np.float32(lo * scale)
    np.clip(y, 0.0, 1.0, out=y)
    return y


def linear_bounds(center: float, width: float, function: str = "LINEAR") -> tuple[float, float] | None:
    """(lo, hi) in modality units of a linear VOI window, or None when it is not linear."""
    if function == "LINEAR_EXACT":
        return center - width / 2.0, center + width / 2.0
    if function == "LINEAR" and width > 1.0:
        lo = center - 0.5 - (width - 1.0) / 2.0
        return lo, lo + (width - 1.0)
    return None


def _clip_deferred(x: np.ndarray, lo: float, hi: float, meta: dict) -> np.ndarray:
    """Clip to [lo, hi] now, at full resolution, and leave the affine map to [0, 1] pending.

    Area resizing and padding are linear, so the affine part of a linear window can be
    applied after the resize, on S² instead of H×W pixels — same result, fewer passes
    over a full-size image. `pending = (scale, offset)`: display = value * scale + offset.
    """
    y = x.astype(np.float32)  # a new array: inputs are never modified
    np.clip(y, np.float32(lo), np.float32(hi), out=y)
    scale = 1.0 / (hi - lo)
    meta["pending"] = (scale, -lo * scale)
    return y


def materialize(x: np.ndarray, meta: dict) -> np.ndarray:
    """Apply a pending window affine (see `_clip_deferred`); a no-op when none is pending."""
    pending = meta.pop("pending", None)
    if pending is None:
        return x
    scale, offset = pending
    y = np.multiply(x, np.float32(scale), dtype=np.float32)
    y += np.float32(offset)
    np.clip(y, 0.0, 1.0, out=y)
    y[y < 1e-6] = 0.0  # float rounding must not turn black padding into 6e-8
    return y


def apply_window(x: np.ndarray, center: float, width: float, function: str = "LINEAR") -> np.ndarray:
    """DICOM VOI window (PS3.3 C.11.2.1.2) to [0, 1]: LINEAR, LINEAR_EXACT or SIGMOID."""
    if function == "SIGMOID":
        y = np.asarray(x, dtype=np.float32)
        out = np.exp(-4.0 * (y - np.float32(center)) / np.float32(width))
        out += 1.0
        np.reciprocal(out, out=out)
        return out.astype(np.float32, copy=False)
    bounds = linear_bounds(center, width, function)
    if bounds is None:  # LINEAR with width <= 1 is a threshold at center - 0.5
        return (np.asarray(x) > center - 0.5).astype(np.float32)
    return _linear(x, *bounds)


class VOIWindowd(MapTransform):
    """Modality values → display values in [0, 1] (before MONOCHROME1 inversion).

    `mode="auto"`: VOI LUT Sequence if present, else the first Window Center/Width (with
    VOILUTFunction), else — for 8-bit PNG/JPEG — their full range, else a robust
    percentile window. `mode="percentile"` ignores header windows (harmonises vendors whose
    windows differ). Records `window_source` and the window used in modality units.

    Args:
        keys: image keys.
        mode: "auto" or "percentile".
        percentiles: (low, high) percentiles of the robust window.
        sample: about how many pixels the percentiles are estimated from.
        defer: for linear windows, clip now and leave the affine map to [0, 1] pending in
            the meta dict for `AreaResized` (or `materialize`) to apply after resizing —
            identical output, cheaper. Off by default so the transform alone returns [0, 1].
    """

    def __init__(self, keys: KeysCollection = "image", mode: str = "auto",
                 percentiles: Sequence[float] = DEFAULT_PERCENTILES, sample: int = PERCENTILE_SAMPLE,
                 defer: bool = False, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if mode not in WINDOW_MODES:
            raise ValueError(f"mode must be one of {WINDOW_MODES}, got {mode!r}")
        lo, hi = (float(p) for p in percentiles)
        if not 0.0 <= lo < hi <= 100.0:
            raise ValueError(f"percentiles must satisfy 0 <= low < high <= 100, got {percentiles}")
        self.mode, self.percentiles, self.sample = mode, (lo, hi), int(sample)
        self.defer = bool(defer)

    def _linear(self, x: np.ndarray, lo: float, hi: float, meta: dict) -> np.ndarray:
        return _clip_deferred(x, lo, hi, meta) if self.defer else _linear(x, lo, hi)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            d[key] = self._window(d[key], d[meta_key(key)])
        return d

    def _window(self, x: np.ndarray, meta: dict) -> np.ndarray:
        steps = meta["steps"]
        if self.mode == "auto":
            lut = meta.get("voi_lut")
            if lut is not None:
                first, bits, table = lut
                table = np.asarray(table, dtype=np.float32)
                denom = max(float((1 << int(bits)) - 1), float(table.max()) if table.size else 1.0, 1.0)
                meta.update(window_source="voi_lut", window=[float(first), float(first + len(table) - 1)])
                steps.append("voi:lut_sequence")
                return _lut_lookup(x, first, table / np.float32(denom))
            center, width = meta.get("window_center"), meta.get("window_width")
            if center is not None and width is not None and width > 0:
                function = meta.get("voi_function") or "LINEAR"
                meta.update(window_source="window", window=[center - width / 2.0, center + width / 2.0])
                steps.append(f"voi:window({center:g},{width:g},{function})")
                bounds = linear_bounds(center, width, function)
                if bounds is not None:
                    return self._linear(x, bounds[0], bounds[1], meta)
                return apply_window(x, center, width, function)
            if meta.get("display_range") is not None:
                lo, hi = meta["display_range"]
                meta.update(window_source="full_range", window=[lo, hi])
                steps.append("voi:full_range")
                return self._linear(x, lo, hi, meta)
        lo, hi = robust_range(x, self.percentiles, self.sample)
        if hi <= lo:  # flat image: map it to mid-grey rather than divide by zero
            hi = lo + 1.0
        meta.update(window_source="percentile", window=[lo, hi])
        steps.append(f"voi:percentile({self.percentiles[0]:g},{self.percentiles[1]:g})")
        return self._linear(x, lo, hi, meta)


class InvertMonochrome1d(MapTransform):
    """MONOCHROME1 (min = white) → 1 - x, so bright = dense for every input.

    With a pending window affine the inversion is folded into it (no pixel pass).
    """

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            meta = d[meta_key(key)]
            if (meta.get("photometric") or "").upper() == "MONOCHROME1":
                if meta.get("pending") is not None:
                    scale, offset = meta["pending"]
                    meta["pending"] = (-scale, 1.0 - offset)
                else:
                    d[key] = np.subtract(np.float32(1.0), d[key], dtype=np.float32)
                meta["steps"].append("invert:MONOCHROME1")
        return d


def standardise_contrast(x: np.ndarray, contrast: str) -> np.ndarray:
    """Per-image contrast standardisation with scikit-image, on [0, 1] float32 (H, W).

    "equalize": global histogram equalisation — a monotone map that gives every image the same
    (flat) intensity histogram, so exposure, processing and scanner differences cannot tell the
    domains apart by intensities alone (the shortcut test's histogram factor).
    "clahe": contrast-limited adaptive equalisation (local; also evens out regions).
    """
    from skimage import exposure

    if contrast == "none":
        return x
    if contrast == "equalize":
        y = exposure.equalize_hist(x, nbins=1024)
    elif contrast == "clahe":
        y = exposure.equalize_adapthist(x, clip_limit=0.01, nbins=256)
    else:
        raise ValueError(f"contrast must be one of {CONTRASTS}, got {contrast!r}")
    return np.clip(y, 0.0, 1.0).astype(np.float32)


class ContrastStandardised(MapTransform):
    """Histogram equalisation or CLAHE (see `standardise_contrast`) after windowing, before the
    square fit, so black padding bars never enter the histogram."""

    def __init__(self, keys: KeysCollection = "image", contrast: str = "none", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if contrast not in CONTRASTS:
            raise ValueError(f"contrast must be one of {CONTRASTS}, got {contrast!r}")
        self.contrast = contrast

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        if self.contrast == "none":
            return d
        for key in self.key_iterator(d):
            meta = d[meta_key(key)]
            x = materialize(np.asarray(d[key], dtype=np.float32), meta)
            d[key] = standardise_contrast(x, self.contrast)
            meta["steps"].append(f"contrast:{self.contrast}")
        return d


# --------------------------------------------------------------------------- geometry

def square_fit(x: np.ndarray, fit: str = "pad", fill: float = 0.0) -> np.ndarray:
    """Centre `x` (H, W) in a square: pad with black (0) to max(H, W), or crop to min(H, W).

    Pad keeps the whole field of view (costophrenic angles, apices) at the price of black
    bars; crop keeps full resolution in the centre but can cut lung edges on wide images.
    """
    h, w = x.shape
    if h == w:
        return x
    if fit == "crop":
        n = min(h, w)
        top, left = (h - n) // 2, (w - n) // 2
        return x[top:top + n, left:left + n]
    n = max(h, w)
    out = np.full((n, n), fill, dtype=x.dtype)
    top, left = (n - h) // 2, (n - w) // 2
    out[top:top + h, left:left + w] = x
    return out


class SquareFitd(MapTransform):
    """Make the image square, centred: `fit="pad"` (default, black bars) or `fit="crop"`."""

    def __init__(self, keys: KeysCollection = "image", fit: str = "pad", allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if fit not in FITS:
            raise ValueError(f"fit must be one of {FITS}, got {fit!r}")
        self.fit = fit

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            x = d[key]
            if x.shape[0] != x.shape[1]:
                pending = d[meta_key(key)].get("pending")
                fill = 0.0 if pending is None else -pending[1] / pending[0]  # the value that displays as black
                d[key] = square_fit(x, self.fit, fill)
                d[meta_key(key)]["steps"].append(f"{self.fit}_square({x.shape[0]}x{x.shape[1]})")
        return d


def area_resize(x: np.ndarray, size: int) -> np.ndarray:
    """Square float image → size × size. Downsampling is exact area averaging (each output
    pixel is the mean of the input area it covers, fractional edges weighted); upsampling,
    which area averaging cannot do, is bilinear."""
    h, w = x.shape
    if (h, w) == (size, size):
        return np.asarray(x, dtype=np.float32)
    src = Image.fromarray(np.ascontiguousarray(x, dtype=np.float32), mode="F")
    resample = Image.Resampling.BOX if size <= min(h, w) else Image.Resampling.BILINEAR
    return np.asarray(src.resize((size, size), resample=resample), dtype=np.float32)


class AreaResized(MapTransform):
    """Resize the (square) image to `size` × `size` with area interpolation."""

    def __init__(self, keys: KeysCollection = "image", size: int = 256, allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if int(size) < 8:
            raise ValueError(f"size must be at least 8, got {size}")
        self.size = int(size)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            x = d[key]
            h, w = x.shape
            if (h, w) != (self.size, self.size):
                how = "area" if self.size <= min(h, w) else "bilinear(upsample)"
                d[meta_key(key)]["steps"].append(f"resize:{how}({h}->{self.size})")
            d[key] = materialize(area_resize(x, self.size), d[meta_key(key)])
        return d


class ChannelFirstd(MapTransform):
    """(H, W) → (1, H, W) float32, MONAI's channel-first layout (applies any pending window)."""

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        d = dict(data)
        for key in self.key_iterator(d):
            meta = d.get(meta_key(key))
            x = materialize(d[key], meta) if isinstance(meta, dict) else d[key]
            x = np.asarray(x, dtype=np.float32)
            d[key] = x[None] if x.ndim == 2 else x
        return d


def ingest_transforms(size: int = 256, fit: str = "pad", window: str = "auto",
                      percentiles: Sequence[float] = DEFAULT_PERCENTILES, keys: KeysCollection = "image",
                      header_key: str | None = "header", defer: bool = True, contrast: str = "none") -> Compose:
    """The ingest chain: path → float32 (1, size, size) in [0, 1], bright = dense.

    Args:
        size: output side in pixels.
        fit: "pad" (default: keep the whole field, black bars) or "crop" (centre square).
        window: "auto" (VOI LUT / header window / percentile) or "percentile".
        percentiles: low/high percentiles of the robust window.
        keys: keys holding file paths.
        header_key: key of an optional ingest header-pass record.
        defer: apply linear windows' affine after resizing (same output, faster; see VOIWindowd).
        contrast: "none", "equalize" or "clahe" (scikit-image; see `standardise_contrast`).
    """
    return Compose([
        LoadRadiographd(keys, header_key=header_key),
        ModalityLUTd(keys),
        VOIWindowd(keys, mode=window, percentiles=percentiles, defer=defer),
        InvertMonochrome1d(keys),
        ContrastStandardised(keys, contrast=contrast),
        SquareFitd(keys, fit=fit),
        AreaResized(keys, size=size),
        ChannelFirstd(keys),
    ])
