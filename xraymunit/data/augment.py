"""MONAI augmentation chain for MUNIT training (channel-first tensors in [0, 1]).

Geometric changes stay small (a few degrees, a few percent): chest anatomy has a
canonical pose. Horizontal flips are off by default — they move the heart to the right.
"""

from __future__ import annotations

import math

from monai.transforms import (
    Compose,
    RandAdjustContrastd,
    RandAffined,
    RandFlipd,
    RandGaussianNoised,
    RandSpatialCropd,
    Resized,
)


PADDING_MODES = ("border", "zeros", "reflection")


def training_stages(keys: tuple[str, ...], load_size: int, crop_size: int, *, enabled: bool = True,
                    prob: float = 0.5, rotate_deg: float = 5.0, scale: float = 0.05,
                    translate: float = 0.03, gamma: tuple[float, float] = (0.8, 1.25),
                    noise_std: float = 0.0, hflip: bool = False, padding: str = "border",
                    cache_size: int | None = None) -> tuple[Compose, Compose]:
    """(geometric, photometric): resize (if the cache size differs) → random affine → flip →
    random crop; then random gamma → noise.

    Two stages so that the discriminator's real image can be the geometric stage's output
    (the same pose as the generator's input) without the photometric changes, which it would
    otherwise present as part of the target domain (`UnpairedDomains`).

    Args:
        keys: dictionary keys of the image tensors (1, H, W) to transform.
        load_size: side the cached image is resized to first (area interpolation).
        crop_size: side of the random crop the network sees.
        enabled: False keeps only resize + crop (a centre crop is not used: the crop stays random).
        prob: probability of each random intensity/geometry transform.
        rotate_deg, scale, translate: RandAffine ranges (translate as a fraction of the side).
        gamma: RandAdjustContrast gamma range ((1, 1) leaves it out).
        noise_std: Gaussian noise std (0 disables it).
        hflip: allow horizontal flips.
        padding: what RandAffine fills in outside the image: "border" (the edge pixels;
            default), "zeros" (black corners) or "reflection".
        cache_size: side of the cached images; resize is skipped when it equals load_size.
    """
    if padding not in PADDING_MODES:
        raise ValueError(f"padding must be one of {PADDING_MODES}, got {padding!r}")
    keys = list(keys)
    geometric, photometric = [], []
    if cache_size != load_size:
        geometric.append(Resized(keys, (load_size, load_size), mode="area"))
    if enabled:
        geometric.append(RandAffined(
            keys, prob=prob,
            rotate_range=math.radians(rotate_deg),
            scale_range=(scale, scale),
            translate_range=(translate * load_size, translate * load_size),
            padding_mode=padding, mode="bilinear",
        ))
        if hflip:
            geometric.append(RandFlipd(keys, prob=0.5, spatial_axis=1))
        if tuple(gamma) != (1.0, 1.0):
            photometric.append(RandAdjustContrastd(keys, prob=prob, gamma=gamma))
        if noise_std > 0:
            photometric.append(RandGaussianNoised(keys, prob=prob, std=noise_std))
    if crop_size != load_size:
        geometric.append(RandSpatialCropd(keys, (crop_size, crop_size), random_size=False))
    return Compose(geometric), Compose(photometric)


def training_transforms(keys: tuple[str, ...], load_size: int, crop_size: int, **kwargs) -> Compose:
    """The whole chain on one image: `training_stages`' geometric stage, then its photometric one."""
    geometric, photometric = training_stages(keys, load_size, crop_size, **kwargs)
    return Compose([*geometric.transforms, *photometric.transforms])
