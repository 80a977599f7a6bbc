"""Classifier metrics with honest uncertainty: AUROC, sensitivity at fixed specificity,
balanced accuracy, each with a percentile-bootstrap CI, and paired bootstrap differences.

The bootstrap resamples *patients* (all images of a drawn patient come along), expressed as
one weight per image, so a single (B, n) weight matrix serves every arm and seed: that
shared resampling is what makes arm-vs-arm differences paired. Everything is vectorised
over the B resamples (no scikit-learn).
"""

from __future__ import annotations

import numpy as np


def _grouped(y: np.ndarray, s: np.ndarray, W: np.ndarray):
    """Positive/negative weight per distinct score, scores descending: (B, U) arrays."""
    y = np.asarray(y).astype(bool)
    s = np.asarray(s, dtype=np.float64)
    order = np.argsort(-s, kind="mergesort")
    s_sorted = s[order]
    starts = np.flatnonzero(np.r_[True, s_sorted[1:] != s_sorted[:-1]])
    Wo = np.asarray(W, dtype=np.float64)[:, order]
    ys = y[order]
    pos = np.add.reduceat(Wo * ys, starts, axis=1)
    neg = np.add.reduceat(Wo * ~ys, starts, axis=1)
    return pos, neg, s_sorted[starts]


def auroc_weighted(y, s, W) -> np.ndarray:
    """AUROC (ties count one half) for each row of image weights W (B, n); NaN if a class is empty."""
    pos, neg, _ = _grouped(y, s, W)
    P, N = pos.sum(1), neg.sum(1)
    neg_below = N[:, None] - np.cumsum(neg, axis=1)
    num = (pos * (neg_below + 0.5 * neg)).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((P > 0) & (N > 0), num / (P * N), np.nan)


def auroc(y, s) -> float:
    """Area under the ROC curve = P(score of a random abnormal > score of a random normal)."""
    y = np.asarray(y)
    if len(y) == 0:
        return float("nan")
    return float(auroc_weighted(y, s, np.ones((1, len(y))))[0])


def roc_curve(y, s) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(fpr, tpr, thresholds), starting at (0, 0); predict abnormal when score >= threshold."""
    pos, neg, thr = _grouped(y, s, np.ones((1, len(np.asarray(y)))))
    tpr = np.r_[0.0, np.cumsum(pos[0]) / max(pos.sum(), 1e-12)]
    fpr = np.r_[0.0, np.cumsum(neg[0]) / max(neg.sum(), 1e-12)]
    return fpr, tpr, np.r_[np.inf, thr]


def sensitivity_at_specificity_weighted(y, s, W, specificity: float) -> np.ndarray:
    """Highest sensitivity over thresholds whose specificity is >= `specificity` (per row of W)."""
    pos, neg, _ = _grouped(y, s, W)
    P, N = pos.sum(1, keepdims=True), neg.sum(1, keepdims=True)
    with np.errstate(invalid="ignore", divide="ignore"):
        tpr = np.cumsum(pos, axis=1) / P
        fpr = np.cumsum(neg, axis=1) / N
    ok = fpr <= (1.0 - specificity) + 1e-12
    best = np.where(ok, tpr, 0.0).max(axis=1)
    return np.where((P[:, 0] > 0) & (N[:, 0] > 0), best, np.nan)


def sensitivity_at_specificity(y, s, specificity: float) -> float:
    return float(sensitivity_at_specificity_weighted(y, s, np.ones((1, len(np.asarray(y)))), specificity)[0])


def balanced_accuracy_weighted(y, s, W, threshold: float) -> np.ndarray:
    """(sensitivity + specificity) / 2 with abnormal predicted when score >= threshold."""
    y = np.asarray(y).astype(bool)
    pred = np.asarray(s) >= threshold
    W = np.asarray(W, dtype=np.float64)
    P, N = (W * y).sum(1), (W * ~y).sum(1)
    with np.errstate(invalid="ignore", divide="ignore"):
        sens = (W * (y & pred)).sum(1) / P
        spec = (W * (~y & ~pred)).sum(1) / N
    return 0.5 * (sens + spec)


def balanced_accuracy(y, s, threshold: float) -> float:
    return float(balanced_accuracy_weighted(y, s, np.ones((1, len(np.asarray(y)))), threshold)[0])


def youden_threshold(y, s) -> float:
    """The score threshold maximising sensitivity + specificity − 1 (chosen on val, used on test)."""
    fpr, tpr, thr = roc_curve(y, s)
    j = tpr - fpr
    return float(thr[int(np.argmax(j))]) if len(thr) > 1 else 0.5


def threshold_at_specificity(y, s, specificity: float) -> float:
    """The lowest threshold whose specificity is still >= `specificity`."""
    fpr, _, thr = roc_curve(y, s)
    ok = np.flatnonzero(fpr <= (1.0 - specificity) + 1e-12)
    return float(thr[ok[-1]])


def bootstrap_weights(y, groups, n_boot: int, seed: int) -> np.ndarray:
    """(n_boot, n) image weights of a cluster bootstrap over `groups` (patients).

    Each resample draws as many groups as there are, with replacement; an image's weight is
    how often its group was drawn. Resamples missing a class are redrawn (AUROC needs both).
    """
    y = np.asarray(y).astype(bool)
    _, inverse = np.unique(np.asarray(groups, dtype=str), return_inverse=True)
    n_groups = int(inverse.max()) + 1 if len(inverse) else 0
    rng = np.random.default_rng([seed, 0xB007])
    rows = []
    while len(rows) < n_boot and n_groups:
        counts = rng.multinomial(n_groups, np.full(n_groups, 1.0 / n_groups), size=n_boot)
        w = counts[:, inverse].astype(np.float32)
        good = ((w * y).sum(1) > 0) & ((w * ~y).sum(1) > 0)
        rows.extend(w[good])
    return np.asarray(rows[:n_boot], dtype=np.float32).reshape(-1, len(y))


def metric_distributions(y, scores: np.ndarray, thresholds, W: np.ndarray, specificity: float) -> dict:
    """Point values (k seeds) and bootstrap values (B, k) of the three metrics for one arm."""
    scores = np.atleast_2d(np.asarray(scores, dtype=np.float64))
    ones = np.ones((1, scores.shape[1]))
    out = {}
    for name, fn in (
        ("auroc", lambda s, w, t: auroc_weighted(y, s, w)),
        ("sensitivity_at_specificity", lambda s, w, t: sensitivity_at_specificity_weighted(y, s, w, specificity)),
        ("balanced_accuracy", lambda s, w, t: balanced_accuracy_weighted(y, s, w, t)),
    ):
        point = np.array([fn(s, ones, t)[0] for s, t in zip(scores, thresholds)])
        boot = np.stack([fn(s, W, t) for s, t in zip(scores, thresholds)], axis=1)
        out[name] = (point, boot)
    return out


def summarise(point: np.ndarray, boot: np.ndarray, ci: float) -> dict:
    """Mean over seeds, its percentile CI over test resamples, and the seed-to-seed spread."""
    mean_boot = np.nanmean(boot, axis=1) if boot.size else np.array([np.nan])
    lo, hi = _percentiles(mean_boot, ci)
    return {
        "value": _f(np.nanmean(point)), "ci_low": lo, "ci_high": hi, "ci_level": ci,
        "per_seed": [_f(v) for v in point],
        "seed_sd": _f(np.std(point, ddof=1)) if len(point) > 1 else None,
    }


def paired_difference(a: tuple[np.ndarray, np.ndarray], b: tuple[np.ndarray, np.ndarray], ci: float) -> dict:
    """Arm a − arm b on the same test resamples and seeds: estimate, CI and a bootstrap p-value.

    p is two-sided: twice the smaller share of resamples on either side of zero (capped at 1).
    """
    delta = np.nanmean(a[0]) - np.nanmean(b[0])
    d = np.nanmean(a[1], axis=1) - np.nanmean(b[1], axis=1)
    d = d[np.isfinite(d)]
    lo, hi = _percentiles(d, ci)
    p = float(min(1.0, 2 * min(np.mean(d <= 0), np.mean(d >= 0)))) if d.size else None
    return {"delta": _f(delta), "ci_low": lo, "ci_high": hi, "ci_level": ci, "p_bootstrap": p,
            "n_boot": int(d.size), "verdict": verdict(lo, hi)}


def holm(pvalues: list) -> list:
    """Holm step-down adjusted p-values (None stays None): controls the family-wise error."""
    idx = [i for i, p in enumerate(pvalues) if p is not None]
    order = sorted(idx, key=lambda i: pvalues[i])
    out, running = list(pvalues), 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (len(order) - rank) * pvalues[i]))
        out[i] = running
    return out


def verdict(lo, hi) -> str:
    """'better' / 'worse' only when the whole CI is on one side of zero."""
    if lo is None or hi is None:
        return "undetermined"
    return "better" if lo > 0 else "worse" if hi < 0 else "no significant difference"


def _percentiles(x: np.ndarray, ci: float):
    x = np.asarray(x, dtype=np.float64)
    x = x[np.isfinite(x)]
    if x.size == 0:
        return None, None
    a = (1.0 - ci) / 2.0
    return _f(np.quantile(x, a)), _f(np.quantile(x, 1.0 - a))


def _f(v) -> float | None:
    v = float(v)
    return v if np.isfinite(v) else None
