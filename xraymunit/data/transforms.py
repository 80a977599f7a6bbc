"""The ingest pixel path as MONAI dictionary transforms: file → display image in [0, 1].

    Compose([LoadRadiographd, ModalityLUTd, VOIWindowd, InvertMonochrome1d, ContrastStandardised,
             (ResampleSpacingd), SquareFitd, AreaResized, ChannelFirstd])

Output convention for every input format: float32 (1, S, S) in [0, 1], **bright = dense**
(bone, mediastinum), dark = air (lungs). Each step appends what it did to
`data["image_meta_dict"]["steps"]`, which ingest stores per image in the manifest.

The transforms are plain numpy (no MetaTensor, no torch) so a 1024² image costs a few
milliseconds beyond its decode; they work on any dict with the same keys, so users can
reuse `ingest_transforms()` to read single files exactly as ingest does:

    img = ingest_transforms(size=512)({"image": "study/IM0001"})["image"]

The steps live in `loading`, `intensity`, `contrast` and `geometry`; this module assembles
them and re-exports their public names (the import path other code uses).
"""

from __future__ import annotations

import math
from typing import Sequence

from monai.config import KeysCollection
from monai.transforms import Compose

from xraymunit.data.contrast import CONTRASTS, ContrastStandardised, standardise_contrast
from xraymunit.data.geometry import (FITS, AreaResized, ChannelFirstd, ResampleSpacingd, SquareFitd, area_resize,
                                     square_fit)
from xraymunit.data.intensity import (DEFAULT_PERCENTILES, PERCENTILE_SAMPLE, WINDOW_MODES, InvertMonochrome1d,
                                      ModalityLUTd, VOIWindowd, apply_window, linear_bounds, materialize,
                                      robust_range)
from xraymunit.data.loading import LoadRadiographd, load_radiograph, meta_key

__all__ = [
    "CONTRASTS", "DEFAULT_PERCENTILES", "FITS", "PERCENTILE_SAMPLE", "WINDOW_MODES",
    "AreaResized", "ChannelFirstd", "ContrastStandardised", "InvertMonochrome1d", "LoadRadiographd",
    "ModalityLUTd", "ResampleSpacingd", "SquareFitd", "VOIWindowd",
    "apply_window", "area_resize", "ingest_transforms", "linear_bounds", "load_radiograph", "materialize",
    "meta_key", "robust_range", "square_fit", "standardise_contrast",
]


def ingest_transforms(size: int = 256, fit: str = "pad", window: str = "auto",
                      percentiles: Sequence[float] = DEFAULT_PERCENTILES, keys: KeysCollection = "image",
                      header_key: str | None = "header", defer: bool = True, contrast: str = "none",
                      spacing_mm: float | None = None) -> Compose:
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
        spacing_mm: resample every image with a known pixel spacing to square pixels of this
            many mm (SimpleITK; see `ResampleSpacingd`) before the square fit. None (default):
            no resampling step at all — the chain is the one of earlier versions.
    """
    if spacing_mm is not None and not (math.isfinite(float(spacing_mm)) and float(spacing_mm) > 0):
        raise ValueError(f"spacing_mm must be a positive number of mm or None, got {spacing_mm!r}")
    steps = [
        LoadRadiographd(keys, header_key=header_key),
        ModalityLUTd(keys),
        VOIWindowd(keys, mode=window, percentiles=percentiles, defer=defer),
        InvertMonochrome1d(keys),
        ContrastStandardised(keys, contrast=contrast),
    ]
    if spacing_mm is not None:
        steps.append(ResampleSpacingd(keys, spacing_mm=spacing_mm))
    steps += [SquareFitd(keys, fit=fit), AreaResized(keys, size=size), ChannelFirstd(keys)]
    return Compose(steps)
