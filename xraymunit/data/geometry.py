"""Geometry steps of the ingest pixel chain: physical pixel spacing (optional), square fit, area
resize, channel-first layout. The square fit and the resize are linear in the pixel values, so a
pending window affine (see `intensity.VOIWindowd`) is applied after them, on fewer pixels; the
spacing step applies it before resampling."""

from __future__ import annotations

import math
from typing import Any, Hashable, Mapping

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform
from PIL import Image

from xraymunit.data.intensity import materialize
from xraymunit.data.loading import meta_key

FITS = ("pad", "crop")


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


class ResampleSpacingd(MapTransform):
    """Resample to square pixels of `spacing_mm` mm, from the header's ImagerPixelSpacing (projection
    radiographs) or PixelSpacing, with SimpleITK (`io.sitk_image.resample_to_spacing`): anatomy then
    has the same size in pixels whatever the detector, and anisotropic pixels become square.
    Images whose spacing is unknown (PNG/JPEG, headers without one) are left as they are; the step
    records "spacing unknown". Runs on display values in [0, 1], before the square fit.
    """

    def __init__(self, keys: KeysCollection = "image", spacing_mm: float = 0.5,
                 allow_missing_keys: bool = False) -> None:
        super().__init__(keys, allow_missing_keys)
        if not (math.isfinite(float(spacing_mm)) and float(spacing_mm) > 0):
            raise ValueError(f"spacing_mm must be a positive number of mm, got {spacing_mm!r}")
        self.spacing_mm = float(spacing_mm)

    def __call__(self, data: Mapping[Hashable, Any]) -> dict:
        from xraymunit.io.sitk_image import resample_to_spacing

        d = dict(data)
        for key in self.key_iterator(d):
            meta = d[meta_key(key)]
            spacing = meta.get("spacing_mm")
            if not spacing:
                meta["steps"].append("spacing unknown")
                continue
            x = materialize(d[key], meta)  # resample display values, not a pending affine's inputs
            y = resample_to_spacing(x, spacing, self.spacing_mm)
            meta["steps"].append(f"spacing {self.spacing_mm:g}mm(from {spacing[0]:g}x{spacing[1]:g}mm, "
                                 f"{x.shape[0]}x{x.shape[1]}->{y.shape[0]}x{y.shape[1]})")
            d[key] = y
        return d
