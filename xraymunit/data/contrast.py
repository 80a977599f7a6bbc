"""Optional per-image contrast standardisation (scikit-image) of the ingest pixel chain."""

from __future__ import annotations

from typing import Any, Hashable, Mapping

import numpy as np
from monai.config import KeysCollection
from monai.transforms import MapTransform

from xraymunit.data.intensity import materialize
from xraymunit.data.loading import meta_key

CONTRASTS = ("none", "equalize", "clahe")


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
