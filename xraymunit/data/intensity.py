"""Intensity steps of the ingest pixel chain: stored values → modality values (Modality LUT) →
display values in [0, 1] (VOI LUT / window / robust percentile window) → bright = dense
(MONOCHROME1 inversion). See `xraymunit.data.transforms` for the whole chain."""

from __future__ import annotations

import math
from typing import Any, Hashable, Mapping, Sequence

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform

from xraymunit.data.loading import meta_key

WINDOW_MODES = ("auto", "percentile")
DEFAULT_PERCENTILES = (0.5, 99.5)
PERCENTILE_SAMPLE = 65536  # pixels used to estimate the percentile window


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
