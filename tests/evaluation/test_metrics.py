"""Classifier metrics on cases with known answers."""

import numpy as np
import pytest

from xraymunit.evaluation import metrics as M


def brute_auroc(y, s):
    p, n = s[y == 1], s[y == 0]
    return ((p[:, None] > n[None]).sum() + 0.5 * (p[:, None] == n[None]).sum()) / (len(p) * len(n))


def test_auroc_perfect_reversed_and_constant():
    y = np.array([0, 0, 0, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.7, 0.8, 0.9])
    assert M.auroc(y, s) == 1.0
    assert M.auroc(y, -s) == 0.0
    assert M.auroc(y, np.zeros(6)) == 0.5
    assert np.isnan(M.auroc(np.ones(4), np.arange(4.0)))


def test_auroc_matches_mann_whitney_with_ties_and_weights():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 300)
    s = np.round(rng.normal(size=300) + y, 1)  # many ties
    assert M.auroc(y, s) == pytest.approx(brute_auroc(y, s), abs=1e-12)
    w = rng.integers(0, 4, 300)
    assert M.auroc_weighted(y, s, w[None])[0] == pytest.approx(brute_auroc(np.repeat(y, w), np.repeat(s, w)))


def test_random_scorer_is_near_half_and_its_ci_covers_half():
    rng = np.random.default_rng(1)
    y = np.r_[np.zeros(200), np.ones(200)].astype(int)
    s = rng.random(400)
    W = M.bootstrap_weights(y, np.arange(400), 1000, seed=0)
    d = M.metric_distributions(y, s[None], [0.5], W, 0.9)
    summ = M.summarise(*d["auroc"], 0.95)
    assert abs(summ["value"] - 0.5) < 0.07
    assert summ["ci_low"] < 0.5 < summ["ci_high"]
    assert 0.05 < summ["ci_high"] - summ["ci_low"] < 0.2


def test_perfect_scorer_ci_is_one():
    y = np.array([0] * 20 + [1] * 20)
    s = np.r_[np.linspace(0, 0.4, 20), np.linspace(0.6, 1, 20)]
    W = M.bootstrap_weights(y, np.arange(40), 200, seed=0)
    summ = M.summarise(*M.metric_distributions(y, s[None], [0.5], W, 0.9)["auroc"], 0.95)
    assert summ["value"] == summ["ci_low"] == summ["ci_high"] == 1.0


def test_sensitivity_at_specificity_hand_computed():
    y = np.array([0, 0, 0, 0, 0, 1, 1, 1, 1, 1])
    s = np.array([0.1, 0.2, 0.3, 0.4, 0.9, 0.35, 0.5, 0.6, 0.8, 0.95])
    # spec >= 0.8 allows one false positive (the normal at 0.9): threshold 0.5 catches 4 of 5
    assert M.sensitivity_at_specificity(y, s, 0.8) == pytest.approx(0.8)
    # spec >= 0.9 allows none: only the abnormal above 0.9 (0.95) is caught
    assert M.sensitivity_at_specificity(y, s, 0.9) == pytest.approx(0.2)
    # spec >= 0.6: threshold 0.35 → FP 0.4 and 0.9 (2/5), TP all 5
    assert M.sensitivity_at_specificity(y, s, 0.6) == pytest.approx(1.0)


def test_balanced_accuracy_and_thresholds_hand_computed():
    y = np.array([0, 0, 0, 0, 1, 1])
    s = np.array([0.1, 0.2, 0.6, 0.3, 0.7, 0.5])
    # threshold 0.5: sens 2/2, spec 3/4 → 0.875
    assert M.balanced_accuracy(y, s, 0.5) == pytest.approx(0.875)
    assert M.youden_threshold(y, s) == pytest.approx(0.5)
    # the lowest threshold with specificity >= 1.0 is 0.7 (above the 0.6 normal)
    assert M.threshold_at_specificity(y, s, 1.0) == pytest.approx(0.7)


def test_roc_curve_endpoints_and_monotone():
    rng = np.random.default_rng(2)
    y, s = rng.integers(0, 2, 50), rng.random(50)
    fpr, tpr, thr = M.roc_curve(y, s)
    assert (fpr[0], tpr[0], fpr[-1], tpr[-1]) == (0, 0, 1, 1)
    assert np.all(np.diff(fpr) >= 0) and np.all(np.diff(tpr) >= 0)
    assert np.trapezoid(tpr, fpr) == pytest.approx(M.auroc(y, s))


def test_cluster_bootstrap_keeps_patients_together_and_both_classes():
    y = np.array([0, 0, 1, 1, 0, 1, 0, 1])
    patients = np.array(["a", "a", "b", "b", "c", "d", "e", "f"])
    W = M.bootstrap_weights(y, patients, 300, seed=3)
    assert W.shape == (300, 8)
    assert np.array_equal(W[:, 0], W[:, 1]) and np.array_equal(W[:, 2], W[:, 3])
    assert np.all((W * y).sum(1) > 0) and np.all((W * (1 - y)).sum(1) > 0)
    W2 = M.bootstrap_weights(y, patients, 300, seed=3)
    assert np.array_equal(W, W2)  # seeded


def test_paired_difference_of_identical_arms_is_zero():
    rng = np.random.default_rng(4)
    y = rng.integers(0, 2, 120)
    s = rng.random((3, 120)) + 0.3 * y
    W = M.bootstrap_weights(y, np.arange(120), 500, seed=0)
    d = M.metric_distributions(y, s, [0.5] * 3, W, 0.9)
    diff = M.paired_difference(d["auroc"], d["auroc"], 0.95)
    assert diff["delta"] == 0 and diff["ci_low"] == 0 and diff["ci_high"] == 0
    assert diff["verdict"] == "no significant difference"


def test_paired_difference_detects_a_better_arm_and_not_noise():
    rng = np.random.default_rng(5)
    y = np.r_[np.zeros(150), np.ones(150)].astype(int)
    weak = rng.normal(size=(2, 300)) + 0.3 * y
    strong = rng.normal(size=(2, 300)) + 2.0 * y
    noise = rng.normal(size=(2, 300)) + 0.3 * y
    W = M.bootstrap_weights(y, np.arange(300), 500, seed=0)
    dist = {k: M.metric_distributions(y, v, [0.0, 0.0], W, 0.9)["auroc"]
            for k, v in (("weak", weak), ("strong", strong), ("noise", noise))}
    better = M.paired_difference(dist["strong"], dist["weak"], 0.95)
    assert better["verdict"] == "better" and better["ci_low"] > 0 and better["p_bootstrap"] < 0.01
    same = M.paired_difference(dist["noise"], dist["weak"], 0.95)
    assert same["ci_low"] < 0 < same["ci_high"]
    assert M.paired_difference(dist["weak"], dist["strong"], 0.95)["verdict"] == "worse"


def test_summary_reports_seed_spread():
    point = np.array([0.7, 0.8, 0.9])
    boot = np.tile(point, (100, 1)) + np.linspace(-0.05, 0.05, 100)[:, None]
    s = M.summarise(point, boot, 0.9)
    assert s["value"] == pytest.approx(0.8) and s["seed_sd"] == pytest.approx(0.1)
    assert s["ci_low"] < 0.8 < s["ci_high"] and s["per_seed"] == [0.7, 0.8, 0.9]


def test_holm_adjustment_hand_computed():
    # sorted p: 0.01 (×3 = 0.03), 0.02 (×2 = 0.04), 0.04 (×1 = 0.04, kept monotone)
    assert M.holm([0.04, 0.01, None, 0.02]) == pytest.approx([0.04, 0.03, None, 0.04])
    assert M.holm([0.6, 0.9]) == [1.0, 1.0]
