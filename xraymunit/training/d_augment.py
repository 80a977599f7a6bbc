"""Differentiable augmentation of what the discriminators see (DiffAugment, Zhao et al. 2020), and
adaptive-pseudo-augmentation's real/fake swap (APA, Jiang et al. 2021) at a fixed probability.

Why: with a few hundred images (K = 5-25 abnormals in a low-data level) a discriminator memorises
its reals, and the generator then learns whatever cue is cheapest — here, the abnormal images'
global intensity. Augmenting *every* image the discriminator sees, real and fake alike, with the
same random parameters keeps the two distributions comparable while denying it the memorised
details; brightness and contrast jitter also take away exactly the global-intensity cue. The
augmentations are differentiable, so the generator's adversarial gradient flows through them.

Parameters are drawn once per step and domain (`draw`) from a seeded generator, never from the
global RNG: with augmentation off a step is bit-identical to one without this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

AUGMENTATIONS = ("brightness", "contrast", "translation", "cutout")


@dataclass
class AugmentParams:
    """One step's random parameters for a batch of n images (each tensor has n rows); `apply` uses
    the same rows for the real and the fake batch."""

    on: dict[str, torch.Tensor]  # per augmentation: (n,) bool, whether it applies to each row
    brightness: torch.Tensor | None = None  # (n,) shift added
    contrast: torch.Tensor | None = None  # (n,) factor around the image mean
    shift: torch.Tensor | None = None  # (n, 2) integer pixel shifts (y, x)
    cutout: torch.Tensor | None = None  # (n, 2) centre of the square, as a fraction of the side


def draw(names: list[str] | tuple[str, ...], n: int, prob: float, strength: float,
         generator: torch.Generator) -> AugmentParams:
    """Random parameters of the augmentations `names` for n images (on CPU; moved at `apply`).

    Strength 1 is DiffAugment's: brightness ±0.5 of the [-1, 1] range, contrast ×[0.5, 1.5],
    translation up to 1/8 of the side, cutout of a square half the side."""
    def u(*shape):
        return torch.rand(*shape, generator=generator)

    p = AugmentParams(on={name: u(n) < prob for name in names})
    if "brightness" in names:
        p.brightness = (u(n) - 0.5) * strength
    if "contrast" in names:
        p.contrast = 1.0 + (u(n) - 0.5) * strength
    if "translation" in names:
        p.shift = (u(n, 2) * 2 - 1) * (0.125 * min(strength, 4.0))  # fraction of the side, rounded at apply
    if "cutout" in names:
        p.cutout = u(n, 2)
    return p


def apply(x: torch.Tensor, p: AugmentParams) -> torch.Tensor:
    """x (k·n, C, H, W): k batches of the same n rows (e.g. reals then fakes), each row augmented with
    its own parameters; differentiable with respect to x."""
    n = next(iter(p.on.values())).shape[0] if p.on else 0
    if n == 0:
        return x
    k = x.shape[0] // n

    def rows(t: torch.Tensor) -> torch.Tensor:  # (n, ...) → (k·n, ...) on x's device
        return t.to(x.device).repeat(k, *([1] * (t.dim() - 1)))

    dtype = x.dtype
    for name in p.on:
        on = rows(p.on[name]).view(-1, 1, 1, 1)
        if name == "brightness":
            y = x + rows(p.brightness).view(-1, 1, 1, 1).to(dtype)
        elif name == "contrast":
            mean = x.mean(dim=(1, 2, 3), keepdim=True)
            y = (x - mean) * rows(p.contrast).view(-1, 1, 1, 1).to(dtype) + mean
        elif name == "translation":
            y = _translate(x, rows(p.shift))
        else:
            y = x * _cutout_mask(x, rows(p.cutout))
        x = torch.where(on, y, x)
    return x


def _translate(x: torch.Tensor, shift: torch.Tensor) -> torch.Tensor:
    """Shift each image by whole pixels (shift: fraction of the side), zeros (mid-grey) coming in."""
    n, _, h, w = x.shape
    dy = torch.round(shift[:, 0] * h).long()
    dx = torch.round(shift[:, 1] * w).long()
    ys = torch.arange(h, device=x.device).view(1, h, 1) - dy.view(n, 1, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w) - dx.view(n, 1, 1)
    inside = ((ys >= 0) & (ys < h) & (xs >= 0) & (xs < w)).unsqueeze(1)
    index = (ys.clamp(0, h - 1) * w + xs.clamp(0, w - 1)).view(n, 1, h * w).expand(-1, x.shape[1], -1)
    moved = x.flatten(2).gather(2, index).view_as(x)
    return moved * inside.to(x.dtype)


def _cutout_mask(x: torch.Tensor, centre: torch.Tensor) -> torch.Tensor:
    """1 outside, 0 inside a square of half the side centred at `centre` (fractions of the side)."""
    n, _, h, w = x.shape
    cy = (centre[:, 0] * h).view(n, 1, 1)
    cx = (centre[:, 1] * w).view(n, 1, 1)
    ys = torch.arange(h, device=x.device).view(1, h, 1)
    xs = torch.arange(w, device=x.device).view(1, 1, w)
    inside = ((ys - cy).abs() < h / 4) & ((xs - cx).abs() < w / 4)
    return (~inside).unsqueeze(1).to(x.dtype)


def pseudo_augment(real: torch.Tensor, fake: torch.Tensor, p: float, generator: torch.Generator) -> torch.Tensor:
    """APA: each real image replaced, with probability p, by the (detached) translation in its row.

    A fixed p, not APA's adaptive controller: that controller moves p from an overfitting heuristic
    averaged over thousands of steps (ADA: ~500k images to adapt), more than a CPU-budget run has."""
    swap = (torch.rand(real.shape[0], generator=generator) < p).to(real.device).view(-1, 1, 1, 1)
    return torch.where(swap, fake.detach().to(real.dtype), real)
