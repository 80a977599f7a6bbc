"""`Translator`: a trained generator inside your own code — the images `synthesize` writes, as arrays.

    t = Translator.from_checkpoint("runs/x/checkpoints/last.pt")
    out = t.translate(images, n_styles=4, seed=0)      # (N, 4, 1, S, S) in [0, 1]

It runs synthesize's own code: the generators from `checkpoint.load_generators`, the style codes
from `synthesis.plan.StyleCodes` (random, slerp path, references) and the rendering of
`synthesis.renderer.Renderer` (fixed-shape decoder calls, bf16 or fp32). So for one checkpoint,
seed, device, precision and batch size, image i with key `keys[i]` is rendered exactly as
`synthesize` renders the cohort image whose image_key is `keys[i]` (its PNG holds these values
rounded to 16 bits), and any change to the generator or the renderer reaches both.

Input: what the cohort holds — ingest's display image, float in [0, 1], bright = dense
(MONOCHROME2), windowed by the DICOM VOI LUT / window / robust percentiles and padded square
(read a file exactly so with `xraymunit.data.transforms.ingest_transforms(size=...)`).
Anything else (raw DICOM values, 0..255, three channels) is refused with one line: a network
fed another range returns plausible-looking nonsense, never an error.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.nn import functional as F

from xraymunit import checkpoint as checkpoints
from xraymunit.errors import XraymunitError
from xraymunit.runtime import resolve_device
from xraymunit.synthesis.options import DIRECTIONS, MAX_STYLES
from xraymunit.synthesis.plan import StyleCodes
from xraymunit.synthesis.renderer import Renderer, direction_networks, uses_bf16
from xraymunit.synthesis.styles import load_reference

__all__ = ["Translator", "TranslatorInputError"]

EXPECTED = ("float images in [0, 1] as the cohort holds them (bright = dense), shaped (N, 1, H, W) or (H, W); "
            "read files with xraymunit.data.transforms.ingest_transforms")


class TranslatorInputError(XraymunitError, ValueError):
    """Images the generator was not trained on: wrong shape, channels, dtype or value range."""


def as_images(images, name: str = "images") -> tuple[np.ndarray, bool]:
    """(N, H, W) float32 copy of `images` and whether one 2-D image was given; refuses anything
    that is not what the cohort holds, naming what it got."""
    if isinstance(images, torch.Tensor):
        array = images.detach().cpu().numpy()
    elif isinstance(images, np.ndarray):
        array = images
    else:
        raise TranslatorInputError(f"{name}: a {type(images).__name__} is neither a numpy array nor a torch tensor; "
                                 f"expected {EXPECTED}")
    if array.ndim not in (2, 4):
        raise TranslatorInputError(f"{name}: shape {tuple(array.shape)} has {array.ndim} dimensions; "
                                   f"expected {EXPECTED}")
    if array.ndim == 4 and array.shape[1] != 1:
        raise TranslatorInputError(f"{name}: {array.shape[1]} channels in shape {tuple(array.shape)}; the generator "
                                   f"is grayscale: expected {EXPECTED}")
    if array.size == 0:
        raise TranslatorInputError(f"{name}: no pixels (shape {tuple(array.shape)})")
    if not np.issubdtype(array.dtype, np.floating):
        hint = (f" (e.g. images / {np.iinfo(array.dtype).max} for {array.dtype})"
                if np.issubdtype(array.dtype, np.integer) else "")
        raise TranslatorInputError(f"{name}: dtype {array.dtype}; expected {EXPECTED}{hint}")
    low, high = float(np.min(array)), float(np.max(array))
    if not (np.isfinite(low) and np.isfinite(high)) or low < 0.0 or high > 1.0:
        raise TranslatorInputError(f"{name}: values span {low:.4g}..{high:.4g}; expected {EXPECTED}")
    single = array.ndim == 2
    return np.ascontiguousarray(array.reshape(-1, *array.shape[-2:]), dtype=np.float32), single


def resize_to(images: np.ndarray, height: int, width: int) -> np.ndarray:
    """(..., S, S) → (..., height, width): area averaging when shrinking, bilinear when enlarging."""
    if images.shape[-2:] == (height, width):
        return images
    lead = images.shape[:-2]
    x = torch.from_numpy(np.ascontiguousarray(images)).reshape(-1, 1, *images.shape[-2:])
    shrink = height <= x.shape[-2] and width <= x.shape[-1]
    kwargs = {"mode": "area"} if shrink else {"mode": "bilinear", "align_corners": False}
    y = F.interpolate(x, size=(height, width), **kwargs).clamp_(0.0, 1.0)
    return y.reshape(*lead, height, width).numpy()


class Translator:
    """Both generators of a checkpoint, ready to translate images from your own code.

    Methods return, for a batch (N, 1, H, W), an array (N, K, 1, S, S) — K styles per image —
    and for one image (H, W) an array (K, S, S); S is the model's side, or the input's H×W
    with `resize_back=True`. Same container as the input (numpy, or torch on the input's device), always
    float32 (a float64 or float16 input is read as float32).
    """

    def __init__(self, loaded: checkpoints.LoadedGenerators, device: torch.device, *, precision: str = "auto",
                 batch_size: int | None = None):
        if precision not in ("auto", "bf16", "fp32"):
            raise ValueError(f"precision must be auto, bf16 or fp32, got {precision!r}")
        if batch_size is not None and int(batch_size) < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.loaded, self.device = loaded, device
        self.bf16 = uses_bf16(precision, device)
        self.batch_size = batch_size
        self._renderers: dict[str, Renderer] = {}

    @classmethod
    def from_checkpoint(cls, checkpoint: str | Path, device: str = "auto", *, precision: str = "auto",
                        batch_size: int | None = None) -> "Translator":
        """Load a `xraymunit train` checkpoint (a file, a run folder, RUN/best or RUN/last).

        precision and batch_size as in `synthesize` (the same defaults give the same images)."""
        where = resolve_device(device)
        return cls(checkpoints.load_generators(checkpoints.resolve(checkpoint), where), where,
                   precision=precision, batch_size=batch_size)

    @property
    def image_size(self) -> int:
        return self.loaded.image_size

    @property
    def style_dim(self) -> int:
        return self.loaded.model.style_dim

    @property
    def domains(self) -> tuple[str, str]:
        return self.loaded.domain_a, self.loaded.domain_b

    def __repr__(self) -> str:
        return (f"Translator({self.loaded.domain_a} ↔ {self.loaded.domain_b}, {self.image_size}², step "
                f"{self.loaded.step}, {self.device} {'bf16' if self.bf16 else 'fp32'}, checkpoint "
                f"{self.loaded.sha256[:12]})")

    def translate(self, images, n_styles: int = 1, seed: int = 0, direction: str = "a2b", *,
                  keys: Sequence[str] | None = None, resize_back: bool = False):
        """Each image rendered with `n_styles` random style codes of the target domain.

        Code j of image i is the one `synthesize --seed SEED` draws for style j of the source
        whose image_key is keys[i] (default: "0", "1", ... by position in this call)."""
        _check_count("n_styles", n_styles, 1)
        codes = StyleCodes("random", int(seed), self.style_dim, n_styles=int(n_styles))
        return self._run(images, codes, direction, keys, resize_back)

    def interpolate(self, images, steps: int = 5, seed: int = 0, direction: str = "a2b", *,
                    keys: Sequence[str] | None = None, resize_back: bool = False):
        """`steps` images per input along a spherical path between two random styles (synthesize
        --interpolate): for looking at what the style controls."""
        _check_count("steps", steps, 2)
        codes = StyleCodes("interpolate", int(seed), self.style_dim, interpolate=int(steps))
        return self._run(images, codes, direction, keys, resize_back)

    def reference(self, images, references, direction: str = "a2b", *, resize_back: bool = False):
        """Each image rendered with the style of each reference (real target-domain images: an
        array like `images`, or files read through the ingest pixel path, as synthesize does)."""
        _check_direction(direction)
        if isinstance(references, (str, Path)):
            references = [references]
        if isinstance(references, (list, tuple)) and all(isinstance(r, (str, Path)) for r in references):
            refs = [load_reference(r, self.image_size) for r in references]
        else:
            refs = list(as_images(references, "references")[0])
        _check_count("references", len(refs), 1)
        _, _, encoder, decoder = direction_networks(self.loaded.gens, *self.domains, direction)
        # the unrendered networks, as synthesize encodes references before its decoder is cast
        styles = Renderer(encoder, decoder, self.device, self.image_size, bf16=self.bf16).encode_styles(refs)
        codes = StyleCodes("reference", 0, self.style_dim, reference_styles=styles,
                           reference_keys=tuple(str(i) for i in range(len(refs))))
        return self._run(images, codes, direction, None, resize_back)

    def _renderer(self, direction: str) -> Renderer:
        """One renderer per direction, on its own copy of the generators: rendering casts the decoder
        in place (bf16), which must touch neither the other direction nor reference encoding."""
        if direction not in self._renderers:
            gens = copy.deepcopy(self.loaded.gens)
            _, _, encoder, decoder = direction_networks(gens, *self.domains, direction)
            self._renderers[direction] = Renderer(encoder, decoder, self.device, self.image_size, bf16=self.bf16,
                                                  batch_size=self.batch_size)
        return self._renderers[direction]

    def _run(self, images, codes: StyleCodes, direction: str, keys, resize_back: bool):
        _check_direction(direction)
        stack, single = as_images(images)
        keys = [str(i) for i in range(len(stack))] if keys is None else [str(k) for k in keys]
        if len(keys) != len(stack):
            raise TranslatorInputError(f"keys: {len(keys)} given for {len(stack)} images")
        renderer = self._renderer(direction)
        out = np.stack([renderer.render(image, codes.for_source(key)[0]) for image, key in zip(stack, keys)])
        if resize_back:
            out = resize_to(out, *stack.shape[-2:])
        out = out[0] if single else out[:, :, None]
        if isinstance(images, torch.Tensor):
            return torch.from_numpy(np.ascontiguousarray(out)).to(images.device)
        return out


def _check_direction(direction: str) -> None:
    if direction not in DIRECTIONS:
        raise ValueError(f"direction must be one of {DIRECTIONS}, got {direction!r}")


def _check_count(name: str, value, low: int) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or not low <= value <= MAX_STYLES:
        raise ValueError(f"{name} must be an integer from {low} to {MAX_STYLES}, got {value!r}")
