"""Style codes: N(0, I) draws that are a pure function of (seed, source, j), slerp paths, references."""

from __future__ import annotations

import hashlib
import math
from pathlib import Path

import numpy as np

from xraymunit.seeding import stable_seed
from xraymunit.synthesis.options import SynthesisError


def random_styles(seed: int, source_key: str, n: int, dim: int) -> np.ndarray:
    """N(0, I) codes of one source image; code j is a pure function of (seed, source, j).

    So reruns agree, and asking for more styles adds codes without changing the first ones.
    """
    return np.stack([np.random.default_rng(stable_seed(seed, "style", source_key, j)).standard_normal(dim)
                     for j in range(n)]).astype(np.float32)


def slerp(a: np.ndarray, b: np.ndarray, steps: int) -> np.ndarray:
    """`steps` codes from a to b (inclusive) along the great circle, norm interpolated linearly.

    Spherical, not linear: the midpoint of a straight line between two N(0, I) codes has a
    norm atypically small for the prior (it falls in the low-density centre); slerp keeps
    every intermediate code at a typical norm.
    """
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    ua, ub = a / max(na, 1e-12), b / max(nb, 1e-12)
    omega = math.acos(float(np.clip(np.dot(ua, ub), -1.0, 1.0)))
    out = []
    for t in np.linspace(0.0, 1.0, steps):
        if omega < 1e-6:
            direction = (1 - t) * ua + t * ub
        else:
            direction = (math.sin((1 - t) * omega) * ua + math.sin(t * omega) * ub) / math.sin(omega)
        out.append(direction * ((1 - t) * na + t * nb))
    return np.stack(out).astype(np.float32)


def load_reference(path: str | Path, size: int) -> np.ndarray:
    """A reference radiograph (DICOM, PNG or JPEG) through the ingest pixel path → (size, size) in [0, 1]."""
    from xraymunit.data.transforms import ingest_transforms
    from xraymunit.errors import root_cause

    path = Path(path)
    if not path.is_file():
        raise SynthesisError(f"reference image not found: {path}")
    try:
        out = ingest_transforms(size=size, header_key=None)({"image": str(path)})["image"]
    except Exception as exc:  # noqa: BLE001 - any unreadable reference is a user error
        cause = root_cause(exc)  # not MONAI's "applying transform <... object at 0x...>"
        detail = (str(cause).strip().splitlines() or [""])[0][:200] or type(cause).__name__
        raise SynthesisError(f"cannot read reference image {path}: {detail}") from None
    return np.asarray(out, dtype=np.float32).reshape(size, size)


def file_key(path: str | Path) -> str:
    """Pseudonymous key of a reference file (its content hash, never its path)."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()[:16]
