"""The trivial model of the shortcut test and its decision rule: L2 logistic regression, AUROC CI."""

from __future__ import annotations

import numpy as np
from scipy.optimize import minimize
from scipy.special import expit
from scipy.stats import norm

from xraymunit.evaluation import metrics as M

WARN_AUROC = 0.70          # warn ("shortcut shown") when the AUROC CI's lower bound is above this
CI_LEVEL = 0.95            # two-sided confidence level of the AUROC interval
L2 = 1.0                   # ridge penalty of the logistic regressions (like scikit-learn's C = 1)



def _standardise(train: np.ndarray, val: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    mu, sd = train.mean(axis=0), train.std(axis=0)
    sd = np.where(sd > 1e-12, sd, 1.0)
    return (train - mu) / sd, (val - mu) / sd


def fit_logistic(X: np.ndarray, y: np.ndarray, l2: float = L2) -> np.ndarray:
    """L2-regularised logistic regression, classes weighted equally, intercept unpenalised.

    Returns [intercept, *weights]. A trivial, convex model on purpose: if *it* separates the
    domains, so will any generator. Minimises Σ cᵢ log(1 + exp(−sᵢ zᵢ)) + l2/2 ‖w‖² with L-BFGS.
    """
    X, y = np.asarray(X, float), np.asarray(y).astype(bool)
    n_pos, n_neg = max(int(y.sum()), 1), max(int((~y).sum()), 1)
    c = np.where(y, len(y) / (2 * n_pos), len(y) / (2 * n_neg))
    s = np.where(y, 1.0, -1.0)

    def loss(theta):
        z = X @ theta[1:] + theta[0]
        m = -s * z
        g = -c * s * expit(m)
        w = theta[1:]
        return (np.sum(c * np.logaddexp(0.0, m)) + 0.5 * l2 * w @ w,
                np.r_[g.sum(), X.T @ g + l2 * w])

    return minimize(loss, np.zeros(X.shape[1] + 1), jac=True, method="L-BFGS-B").x


def held_out_scores(X_tr, y_tr, X_va) -> np.ndarray | None:
    """Held-out scores of the model fitted on (X_tr, y_tr); None when no fitted feature varies."""
    X_tr, X_va = _standardise(np.asarray(X_tr, float), np.asarray(X_va, float))
    if not np.any(X_tr.std(axis=0) > 1e-12):
        return None
    theta = fit_logistic(X_tr, y_tr)
    return X_va @ theta[1:] + theta[0]


def _wilson(p: float, n: int, z: float) -> tuple[float, float]:
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / (1 + z * z / n)
    return max(0.0, centre - half), min(1.0, centre + half)


def auroc_ci(y, scores, W: np.ndarray, n_eff: int, ci: float = CI_LEVEL) -> dict:
    """AUROC with the union of its patient-bootstrap CI and the max-variance Wilson CI."""
    point = M.auroc(y, scores)
    boot = M.auroc_weighted(y, scores, W)
    boot = boot[np.isfinite(boot)]
    z = float(norm.ppf(0.5 + ci / 2))
    lo, hi = _wilson(point, n_eff, z)
    if boot.size:
        a = (1 - ci) / 2
        lo, hi = min(lo, float(np.quantile(boot, a))), max(hi, float(np.quantile(boot, 1 - a)))
    return {"auroc": round(float(point), 4), "ci_low": round(float(lo), 4), "ci_high": round(float(hi), 4)}


def min_patients_to_warn(threshold: float = WARN_AUROC, ci: float = CI_LEVEL) -> int:
    """Fewest patients per domain for which even a perfect AUROC can clear the threshold."""
    z2 = float(norm.ppf(0.5 + ci / 2)) ** 2
    return int(np.floor(z2 * threshold / (1 - threshold)) + 1)


min_val_patients_to_warn = min_patients_to_warn  # the name before the test cross-validated train + val
