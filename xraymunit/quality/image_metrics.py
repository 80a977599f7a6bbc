"""Image-quality metrics of a synthetic set, each next to a yardstick from real images.

No downloaded weights exist here, so feature-based metrics use a network trained on the
cohort itself (its judge, quality/judge.py: real train images only). Numbers are
therefore comparable within a study, not with published FID/KID/LPIPS values computed
with ImageNet Inception/AlexNet features.
"""

from __future__ import annotations

import itertools

import numpy as np
import torch
from scipy import ndimage

MS_SSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


# ---------------------------------------------------------------- distribution distances
def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Fréchet distance between Gaussians fitted to two feature sets (n, d) and (m, d).

    tr √(Ca Cb) is computed as Σ √λ of the symmetric PSD matrix √Ca Cb √Ca (same non-zero
    eigenvalues), which stays real and exact when covariances are singular (dead ReLU
    units, fewer samples than dimensions) — no ε-regularisation and no sqrtm warnings.
    """
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if len(a) < 2 or len(b) < 2:
        return float("nan")
    mu = a.mean(0) - b.mean(0)
    ca, cb = np.atleast_2d(np.cov(a, rowvar=False)), np.atleast_2d(np.cov(b, rowvar=False))
    w, v = np.linalg.eigh(ca)
    root_a = (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T
    m = root_a @ cb @ root_a
    trace_sqrt = np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2.0), 0.0, None)).sum()
    value = mu @ mu + np.trace(ca) + np.trace(cb) - 2.0 * trace_sqrt
    return float(max(value, 0.0))


def kernel_distance(a: np.ndarray, b: np.ndarray, subset_size: int = 100, subsets: int = 50,
                    seed: int = 0) -> tuple[float, float]:
    """KID: unbiased MMD² with the cubic polynomial kernel (x·y/d + 1)³, mean ± sd over subsets.

    Unbiased, so two samples of one distribution give ~0 (it can be slightly negative).
    """
    r = kernel_distance_summary(a, b, subset_size, subsets, seed)
    return r["kid"], r["kid_sd"]


def kernel_distance_summary(a, b, subset_size: int = 100, subsets: int = 50, seed: int = 0,
                            ci: float = 0.95) -> dict:
    """KID mean, SD over subsets, and the central `ci` range of the subset values."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    m = min(subset_size, len(a), len(b))
    if m < 2:
        return {"kid": float("nan"), "kid_sd": float("nan"), "kid_ci_low": None, "kid_ci_high": None}
    d = a.shape[1]
    rng = np.random.default_rng([seed, 0x1D])
    values = []
    for _ in range(subsets):
        x = a[rng.choice(len(a), m, replace=False)]
        y = b[rng.choice(len(b), m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T) / d + 1) ** 3, ((y @ y.T) / d + 1) ** 3, ((x @ y.T) / d + 1) ** 3
        off = ~np.eye(m, dtype=bool)
        values.append(kxx[off].mean() + kyy[off].mean() - 2 * kxy.mean())
    lo = (1 - ci) / 2
    return {"kid": float(np.mean(values)), "kid_sd": float(np.std(values)),
            "kid_ci_low": float(np.quantile(values, lo)), "kid_ci_high": float(np.quantile(values, 1 - lo))}


# ---------------------------------------------------------------- pairwise image distances
def lpips_style(maps_a: list[torch.Tensor], maps_b: list[torch.Tensor]) -> np.ndarray:
    """LPIPS-style distance per pair: channel-unit-normalised features, squared difference,
    summed over channels, averaged over positions, then uniformly over layers (no learned
    per-channel weights, which would need the LPIPS calibration data)."""
    total = None
    for fa, fb in zip(maps_a, maps_b):
        na = fa / (fa.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        nb = fb / (fb.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
        d = (na - nb).pow(2).sum(1).mean(dim=(1, 2))
        total = d if total is None else total + d
    return (total / len(maps_a)).double().cpu().numpy()


def ms_ssim_setup(size: int, kernel: int = 11, scales: int = 5) -> tuple[int, tuple[float, ...]]:
    """The kernel size and scale weights MS-SSIM can use at `size` (fewer scales when small).

    MONAI needs size // (scales − 1)² > kernel − 1, and every scale must still hold a window.
    """
    k = kernel
    while k >= 3:
        for n in range(min(scales, len(MS_SSIM_WEIGHTS)), 0, -1):
            if size // max(1, n - 1) ** 2 > k - 1 and size // 2 ** (n - 1) >= k:
                w = np.asarray(MS_SSIM_WEIGHTS[:n])
                return k, tuple(float(v) for v in w / w.sum())
        k -= 2
    raise ValueError(f"images of {size} px are too small for MS-SSIM")


def ms_ssim(a: torch.Tensor, b: torch.Tensor, kernel: int = 11, scales: int = 5) -> np.ndarray:
    """MS-SSIM per pair of (n, 1, s, s) images in [0, 1] (MONAI), scales reduced to fit."""
    from monai.metrics import MultiScaleSSIMMetric

    k, weights = ms_ssim_setup(int(a.shape[-1]), kernel, scales)
    metric = MultiScaleSSIMMetric(spatial_dims=2, data_range=1.0, kernel_size=k, weights=weights,
                                  reduction="none")
    return metric(a.float(), b.float()).reshape(-1).double().numpy()


def lowpass(images: torch.Tensor, sigma_px: float) -> torch.Tensor:
    """Gaussian low-pass (keeps anatomy, removes texture and small lesions)."""
    arr = ndimage.gaussian_filter(images.float().numpy(), sigma=(0, 0, sigma_px, sigma_px), mode="nearest")
    return torch.from_numpy(np.ascontiguousarray(arr, dtype=np.float32))


def ssim(a: torch.Tensor, b: torch.Tensor, window: int = 7) -> np.ndarray:
    from monai.metrics import SSIMMetric

    metric = SSIMMetric(spatial_dims=2, data_range=1.0, win_size=window, reduction="none")
    return metric(a.float(), b.float()).reshape(-1).double().numpy()


# ---------------------------------------------------------------- which pairs to compare
def _keep(pairs: list, limit: int, seed: int, salt: int) -> np.ndarray:
    """At most `limit` of the pairs (a seeded choice, `salt` separating the callers), in order."""
    pairs = np.asarray(pairs, np.int64).reshape(-1, 2)
    if len(pairs) > limit:
        pairs = pairs[np.sort(np.random.default_rng([seed, salt]).permutation(len(pairs))[:limit])]
    return pairs


def pairs_within_groups(groups: np.ndarray, limit: int, seed: int, salt: int) -> np.ndarray:
    """Pairs (i, j) of items of the same group (e.g. two styles of one input), at most `limit`."""
    groups = np.asarray(groups)
    return _keep([(i, j) for g in np.unique(groups) for i, j in itertools.combinations(np.flatnonzero(groups == g), 2)],
                 limit, seed, salt)


def distinct_patient_pairs(patients: np.ndarray, limit: int, seed: int, salt: int) -> np.ndarray:
    """Pairs (i, j) of images of different patients (the 'unrelated images' yardstick), at most `limit`."""
    return _keep([(i, j) for i, j in itertools.combinations(range(len(patients)), 2) if patients[i] != patients[j]],
                 limit, seed, salt)


# ---------------------------------------------------------------- memorisation
def pixel_vectors(images: torch.Tensor, size: int) -> np.ndarray:
    """Images shrunk to size², each standardised (zero mean, unit norm): a copy-detection space."""
    x = torch.nn.functional.interpolate(images.float(), size=(size, size), mode="area") \
        if images.shape[-1] > size else images.float()
    v = x.reshape(len(x), -1).double().numpy()
    v = v - v.mean(1, keepdims=True)
    return v / (np.linalg.norm(v, axis=1, keepdims=True) + 1e-12)


def _sqdist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return np.maximum((a * a).sum(1)[:, None] + (b * b).sum(1)[None] - 2 * a @ b.T, 0.0)


def memorisation(synth: np.ndarray, synth_patients, train: np.ndarray, train_patients,
                 synth_keys=None, train_keys=None) -> dict:
    """Nearest real training image of every synthetic image (excluding its own source patient,
    whose anatomy a translation is meant to keep), flagged when closer than the closest pair of
    distinct real training images of different patients."""
    synth_patients, train_patients = np.asarray(synth_patients, object), np.asarray(train_patients, object)
    dtt = np.sqrt(_sqdist(train, train))
    same = train_patients[:, None] == train_patients[None]
    dtt[same] = np.inf
    threshold = float(dtt.min()) if np.isfinite(dtt).any() else float("nan")
    dst = np.sqrt(_sqdist(synth, train))
    dst[synth_patients[:, None] == train_patients[None]] = np.inf
    nearest = dst.argmin(1)
    dist = dst[np.arange(len(synth)), nearest]
    flagged = np.flatnonzero(dist < threshold)
    out = {
        "space": "pixels (area-shrunk, per-image standardised, unit norm); Euclidean",
        "threshold_closest_real_pair": threshold,
        "n_synthetic": int(len(synth)), "n_train": int(len(train)),
        "nearest_distance": _quantiles(dist),
        "n_flagged": int(len(flagged)),
        "flagged": [
            {"synth_key": None if synth_keys is None else str(synth_keys[i]),
             "nearest_train_key": None if train_keys is None else str(train_keys[nearest[i]]),
             "distance": float(dist[i])}
            for i in flagged[:50]
        ],
    }
    return out


def _quantiles(x: np.ndarray) -> dict:
    x = np.asarray(x, np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return {}
    q = np.quantile(x, [0.0, 0.05, 0.5, 0.95])
    return {"min": float(q[0]), "p05": float(q[1]), "median": float(q[2]), "p95": float(q[3]),
            "mean": float(x.mean())}


def mean_sd(x, groups=None, n_boot: int = 200, ci: float = 0.95, seed: int = 0) -> dict:
    """Mean, SD, n and a percentile-bootstrap CI of the mean.

    With `groups` (e.g. the input image of each pair of styles), whole groups are resampled,
    since values sharing an input are not independent.
    """
    x = np.asarray(x, np.float64)
    g = np.arange(len(x)) if groups is None else np.asarray(groups)
    keep = np.isfinite(x)
    x, g = x[keep], g[keep]
    out = {"mean": float(x.mean()) if x.size else None,
           "sd": float(x.std(ddof=1)) if x.size > 1 else None, "n": int(x.size),
           "ci_low": None, "ci_high": None, "ci_level": ci}
    if x.size > 1 and n_boot > 0:
        _, inv = np.unique(g, return_inverse=True)
        k = int(inv.max()) + 1
        sums, counts = np.bincount(inv, x, k), np.bincount(inv, None, k)
        rng = np.random.default_rng([seed, 0xC1])
        draws = rng.multinomial(k, np.full(k, 1.0 / k), size=n_boot)
        means = (draws @ sums) / np.maximum(draws @ counts, 1e-12)
        a = (1 - ci) / 2
        out["ci_low"], out["ci_high"] = float(np.quantile(means, a)), float(np.quantile(means, 1 - a))
    return out


def frechet_with_ci(a: np.ndarray, b: np.ndarray, n_boot: int = 20, ci: float = 0.95, seed: int = 0) -> dict:
    """Fréchet distance and a percentile-bootstrap interval (both sets resampled)."""
    value = frechet_distance(a, b)
    out = {"frechet": value, "frechet_ci_low": None, "frechet_ci_high": None}
    if n_boot > 0 and len(a) > 2 and len(b) > 2:
        rng = np.random.default_rng([seed, 0xFD])
        vals = [frechet_distance(a[rng.integers(0, len(a), len(a))], b[rng.integers(0, len(b), len(b))])
                for _ in range(n_boot)]
        lo = (1 - ci) / 2
        out["frechet_ci_low"], out["frechet_ci_high"] = (float(np.nanquantile(vals, lo)),
                                                         float(np.nanquantile(vals, 1 - lo)))
    return out
