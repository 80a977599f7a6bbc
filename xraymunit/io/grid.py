"""Image grids for review (training snapshots, evaluation figures): numpy + Pillow, no torch."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from xraymunit.io.atomic import atomic_path


def tile(images: np.ndarray, pad: int = 2, value: float = 1.0) -> np.ndarray:
    """(rows, cols, H, W) floats in [0, 1] → one (rows·H, cols·W) uint8 image with `pad`-pixel gutters."""
    images = np.asarray(images, dtype=np.float32)
    if images.ndim != 4:
        raise ValueError(f"expected (rows, cols, H, W), got shape {images.shape}")
    rows, cols, h, w = images.shape
    out = np.full((rows * (h + pad) + pad, cols * (w + pad) + pad), value, np.float32)
    for r in range(rows):
        for c in range(cols):
            y, x = pad + r * (h + pad), pad + c * (w + pad)
            out[y : y + h, x : x + w] = images[r, c]
    return (np.clip(out, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)


def save_png(path: str | Path, image: np.ndarray) -> Path:
    """Write a uint8 or uint16 grayscale image as PNG, atomically."""
    from PIL import Image

    path = Path(path)
    with atomic_path(path) as tmp:
        Image.fromarray(image).save(tmp, format="PNG")
    return path
