"""The control arms' training images: what the synthetic images are replaced by to ask whether the
generator adds anything beyond a trivial transformation of the same real data.

- intensity_control: each synthetic image, row for row, becomes its *source normal* histogram-matched
  (scikit-image `match_histograms`) to one of the level's K real abnormal training images. It keeps
  the count, the sources and the intensity distribution of the abnormal class, and nothing else: a
  gain the synthetic arm shares with this arm comes from intensities, not from synthesised findings.
- duplicate_real: the level's K real abnormals repeated to as many images as the synthetic arm adds
  (count-matched duplicates, the control of Pink et al. 2026): no new information at all.

Both are built at the classifier's image size from images the plan already holds, deterministically
(the reference of a row is a seeded hash of its synth_key), so every process builds the same pool.
"""

from __future__ import annotations

import hashlib

import numpy as np
import torch

from xraymunit.evaluation.datasets import ImageSet, resize
from xraymunit.io.cohort import Cohort


def reference_index(synth_key: str, n_references: int, salt: int) -> int:
    """Which of the n sorted real abnormals a synthetic row's control is matched to.

    A hash of (salt, synth_key) rather than a random stream: the choice of a row does not depend on
    which other rows exist or in which order they are processed.
    """
    digest = hashlib.sha256(f"{salt}|{synth_key}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % n_references


def intensity_control(sources: torch.Tensor, references: torch.Tensor, synth_keys, salt: int,
                      dtype: torch.dtype = torch.float16) -> torch.Tensor:
    """(n, 1, s, s): sources[i] histogram-matched to references[reference_index(synth_keys[i], K, salt)]."""
    from skimage.exposure import match_histograms

    if len(references) == 0:
        raise ValueError("intensity_control needs at least one real abnormal reference image")
    out = torch.empty(sources.shape, dtype=dtype)
    refs = references.float().numpy()
    for i, key in enumerate(synth_keys):
        ref = refs[reference_index(str(key), len(refs), salt), 0]
        matched = match_histograms(sources[i, 0].float().numpy(), ref)
        out[i, 0] = torch.from_numpy(np.clip(matched, 0.0, 1.0).astype(np.float32))
    return out


def duplicate_real(abnormal: torch.Tensor, count: int, dtype: torch.dtype = torch.float16) -> torch.Tensor:
    """The K real abnormals repeated in order (0, 1, …, K−1, 0, 1, …) to exactly `count` images."""
    if len(abnormal) == 0:
        raise ValueError("duplicate_real needs at least one real abnormal image")
    return abnormal[torch.as_tensor(np.arange(count) % len(abnormal))].to(dtype)


def source_images(keys, train: ImageSet, cohort: Cohort, size: int) -> torch.Tensor:
    """(n, 1, size, size) real images by image_key: from the loaded train split, else from the cohort."""
    position = {k: i for i, k in enumerate(train.keys)}
    missing = sorted({str(k) for k in keys if k not in position})
    extra = {}
    if missing:
        rows = cohort.ok().set_index("image_key").loc[missing]
        extra = dict(zip(missing, resize(cohort.stack(rows["cache_index"].to_numpy()), size)))
    return torch.stack([train.images[position[k]] if k in position else extra[str(k)] for k in keys]) \
        if len(keys) else torch.zeros((0, 1, size, size))
