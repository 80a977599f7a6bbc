"""Cross-validation of the trivial models over train + val patients, and the test split's check.

Testing on val alone wastes a small cohort: 120 images leave ~9 val patients per domain, too
few for even a perfect AUROC to prove anything. Every train + val patient is scored once
instead, by a model fitted on the other folds (patient-grouped, so no patient is on both
sides; stratified by label, so every fold has both domains). The test split stays untouched
by the cross-validation; it is scored separately by one model fitted on all of train + val,
to show whether the test split shares the shortcut.
"""

from __future__ import annotations

import numpy as np

from xraymunit.confounds.model import auroc_ci, held_out_scores
from xraymunit.evaluation import metrics as M

N_FOLDS = 5                # patient-grouped folds over train + val (fewer when a domain has fewer patients)
SHOWN, POSSIBLE, NONE_SEEN = "shown", "possible", "none seen"


def patient_folds(is_b: np.ndarray, patients: np.ndarray, n_folds: int, seed: int) -> np.ndarray:
    """Fold index per image: patients shuffled (seeded) and dealt round-robin within each domain.

    A patient with any image of domain b deals with domain b. Dealing continues across the two
    domains, so fold sizes differ by at most one patient.
    """
    keys, inverse = np.unique(np.asarray(patients, dtype=str), return_inverse=True)
    patient_is_b = np.zeros(len(keys), bool)
    np.logical_or.at(patient_is_b, inverse, np.asarray(is_b, bool))
    rng = np.random.default_rng([seed, 0xF01D])
    fold_of = np.empty(len(keys), np.int64)
    dealt = 0
    for domain in (False, True):
        idx = rng.permutation(np.flatnonzero(patient_is_b == domain))
        fold_of[idx] = (dealt + np.arange(len(idx))) % n_folds
        dealt += len(idx)
    return fold_of[inverse]


def out_of_fold_scores(pairs: list[tuple[np.ndarray, np.ndarray]], y: np.ndarray,
                       folds: np.ndarray) -> np.ndarray | None:
    """Each image's score from the model that did not see its patient.

    pairs[f] = (features of the images outside fold f, features of fold f). A fold whose
    training features are constant gets the intercept-only score 0 (no information); None
    when that happens in every fold.
    """
    out = np.zeros(len(y))
    fitted = False
    for f, (X_fit, X_held) in enumerate(pairs):
        held = folds == f
        s = held_out_scores(X_fit, y[~held], X_held)
        if s is not None:
            out[held], fitted = s, True
    return out if fitted else None


def tier(t: dict, threshold: float) -> str:
    """shown: the CI's lower bound is above the threshold; possible: only the point estimate is; none seen."""
    if t["ci_low"] > threshold:
        return SHOWN
    return POSSIBLE if t["auroc"] > threshold else NONE_SEEN


class Evaluation:
    """One cohort's cross-validation set-up (labels, folds, bootstrap weights) and the test split's.

    `assess` turns the features of one test into its JSON-ready verdict.
    """

    def __init__(self, y_cv, patients_cv, y_test, patients_test, n_folds: int, threshold: float, ci: float,
                 n_boot: int, seed: int):
        self.y, self.y_test = np.asarray(y_cv, bool), np.asarray(y_test, bool)
        self.threshold, self.ci = threshold, ci
        self.n_eff = _smaller_domain_patients(self.y, patients_cv)
        self.folds = patient_folds(self.y, patients_cv, n_folds, seed)
        self.n_folds = n_folds
        self.W = M.bootstrap_weights(self.y, np.asarray(patients_cv, dtype=str), n_boot, seed)
        self.n_eff_test = _smaller_domain_patients(self.y_test, patients_test)
        self.W_test = (M.bootstrap_weights(self.y_test, np.asarray(patients_test, dtype=str), n_boot, seed)
                       if self.n_eff_test else None)

    def fold_pairs(self, features: np.ndarray) -> list[tuple[np.ndarray, np.ndarray]]:
        return [(features[self.folds != f], features[self.folds == f]) for f in range(self.n_folds)]

    def assess(self, pairs, test_pair=None) -> dict:
        """Cross-validated AUROC + CI + tier; with test_pair = (train + val features, test features)
        also the test split's AUROC under `test`."""
        s = out_of_fold_scores(pairs, self.y, self.folds)
        if s is None:
            return {"auroc": None, "ci_low": None, "ci_high": None, "tier": None, "warn": False,
                    "status": "constant in train"}
        out = auroc_ci(self.y, s, self.W, self.n_eff, self.ci)
        level = tier(out, self.threshold)
        result = {**out, "tier": level, "warn": level == SHOWN, "status": "ok"}
        if test_pair is not None:
            result["test"] = self._test(*test_pair)
        return result

    def _test(self, X_fit: np.ndarray, X_test: np.ndarray) -> dict:
        if not self.n_eff_test:
            return {"auroc": None, "ci_low": None, "ci_high": None, "note": "the test split lacks a domain"}
        s = held_out_scores(X_fit, self.y, X_test)
        if s is None:
            return {"auroc": None, "ci_low": None, "ci_high": None, "note": "constant in train + val"}
        return auroc_ci(self.y_test, s, self.W_test, self.n_eff_test, self.ci)


def _smaller_domain_patients(y: np.ndarray, patients) -> int:
    patients = np.asarray(patients, dtype=str)
    return min(len(np.unique(patients[y])), len(np.unique(patients[~y])))
