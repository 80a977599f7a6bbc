"""Quality metrics on cases with known answers."""

import numpy as np
import pytest
import torch

from helpers.evaluate_data import add_lesions, anatomy, finish
from xraymunit.quality import image_metrics as Q


@pytest.fixture(scope="module")
def features():
    rng = np.random.default_rng(0)
    a = rng.normal(size=(300, 12))
    b = rng.normal(size=(300, 12))  # same distribution
    return a, b


def test_frechet_identical_is_zero_and_grows_with_shift(features):
    a, b = features
    assert Q.frechet_distance(a, a) == pytest.approx(0.0, abs=1e-8)
    same = Q.frechet_distance(a, b)
    small, large = Q.frechet_distance(a, b + 0.5), Q.frechet_distance(a, b + 2.0)
    assert same < small < large
    # a pure mean shift of 2 in 12 dims adds |μ|² = 48
    assert large == pytest.approx(48, rel=0.1)


def test_frechet_agrees_with_monai(features):
    from monai.metrics import FIDMetric
    import warnings

    a, b = features
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        ref = float(FIDMetric()(torch.tensor(a), torch.tensor(b + 0.3)))
    assert Q.frechet_distance(a, b + 0.3) == pytest.approx(ref, rel=1e-6)


def test_frechet_survives_fewer_samples_than_dimensions():
    rng = np.random.default_rng(1)
    v = Q.frechet_distance(rng.normal(size=(5, 40)), rng.normal(size=(6, 40)))
    assert np.isfinite(v) and v >= 0


def test_kid_same_distribution_near_zero_shifted_larger(features):
    a, b = features
    same, sd = Q.kernel_distance(a, b, subset_size=100, subsets=20)
    shifted, _ = Q.kernel_distance(a, b + 1.0, subset_size=100, subsets=20)
    assert abs(same) < 0.05 and sd >= 0
    assert shifted > 10 * abs(same) and shifted > 0.3


def test_lpips_style_zero_for_identical_positive_and_symmetric():
    rng = torch.Generator().manual_seed(0)
    maps_a = [torch.rand(3, 8, 10, 10, generator=rng), torch.rand(3, 16, 5, 5, generator=rng)]
    maps_b = [torch.rand(3, 8, 10, 10, generator=rng), torch.rand(3, 16, 5, 5, generator=rng)]
    assert np.allclose(Q.lpips_style(maps_a, maps_a), 0)
    d = Q.lpips_style(maps_a, maps_b)
    assert d.shape == (3,) and np.all(d > 0)
    assert np.allclose(d, Q.lpips_style(maps_b, maps_a))
    # channel-unit normalisation: a per-position rescaling of the features changes nothing
    scaled = [m * torch.rand(3, 1, *m.shape[2:], generator=rng).add(0.5) for m in maps_a]
    assert np.allclose(Q.lpips_style(maps_a, scaled), 0, atol=1e-10)


@pytest.mark.parametrize("size, scales", [(16, 1), (32, 2), (64, 3), (128, 4), (256, 5)])
def test_ms_ssim_reduces_scales_for_small_images(size, scales):
    kernel, weights = Q.ms_ssim_setup(size, 11, 5)
    assert len(weights) == scales and sum(weights) == pytest.approx(1.0)
    x = torch.rand(2, 1, size, size)
    assert np.allclose(Q.ms_ssim(x, x), 1.0, atol=1e-5)


def test_ms_ssim_orders_similarity():
    rng = np.random.default_rng(2)
    base, geom = anatomy(rng, 64)
    x = torch.from_numpy(finish(base, rng))[None, None]
    near = torch.from_numpy(finish(base, rng))[None, None]  # same anatomy, new noise
    other = torch.from_numpy(finish(anatomy(rng, 64)[0], rng))[None, None]
    assert Q.ms_ssim(x, near)[0] > Q.ms_ssim(x, other)[0]


def test_lowpass_ssim_keeps_anatomy_and_separates_patients():
    rng = np.random.default_rng(3)
    base, geom = anatomy(rng, 64)
    src = torch.from_numpy(finish(base, rng))[None, None]
    translated = torch.from_numpy(finish(add_lesions(base, geom, rng), rng))[None, None]
    other = torch.from_numpy(finish(anatomy(rng, 64)[0], rng))[None, None]
    lp = lambda t: Q.lowpass(t, 2.0)
    kept = Q.ssim(lp(src), lp(translated))[0]
    assert Q.ssim(lp(src), lp(src))[0] == pytest.approx(1.0, abs=1e-5)
    assert kept > Q.ssim(lp(src), lp(other))[0]
    assert kept > 0.7


def test_memorisation_flags_copies_but_not_own_source():
    rng = np.random.default_rng(4)
    train = torch.from_numpy(np.stack([finish(anatomy(rng, 32)[0], rng) for _ in range(12)]))[:, None]
    patients = np.array([f"p{i}" for i in range(12)], object)
    # synthetic 0: a verbatim copy of training image 5 attributed to patient p0 → flagged
    # synthetic 1: near-identical to its own source (p3) → not flagged (own patient excluded)
    synth = torch.stack([train[5], train[3] + 0.001])
    out = Q.memorisation(Q.pixel_vectors(synth, 32), np.array(["p0", "p3"], object),
                         Q.pixel_vectors(train, 32), patients,
                         synth_keys=np.array(["s0", "s1"]), train_keys=np.array([f"t{i}" for i in range(12)]))
    assert out["n_flagged"] == 1
    assert out["flagged"][0]["synth_key"] == "s0" and out["flagged"][0]["nearest_train_key"] == "t5"
    assert out["flagged"][0]["distance"] == pytest.approx(0, abs=1e-6)
    assert out["threshold_closest_real_pair"] > 0


def test_frechet_with_dead_feature_units_is_quiet_and_finite(features):
    import warnings

    a, b = features
    a, b = a.copy(), b.copy()
    a[:, :3] = 0.0  # ReLU units that never fire → singular covariance
    b[:, :3] = 0.0
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        same = Q.frechet_distance(a, a)
        shifted = Q.frechet_distance(a, b + 1.0)
    assert same == pytest.approx(0.0, abs=1e-4) and shifted > 1.0


def test_mean_ci_covers_the_mean_and_resamples_whole_groups():
    rng = np.random.default_rng(6)
    x = rng.normal(1.0, 1.0, 400)
    r = Q.mean_sd(x, n_boot=500)
    assert r["ci_low"] < r["mean"] < r["ci_high"] and r["ci_low"] < 1.0 < r["ci_high"]
    # 20 groups of 20 identical values: effectively n = 20, so the CI must be much wider
    g = np.repeat(np.arange(20), 20)
    y = np.repeat(rng.normal(1.0, 1.0, 20), 20)
    naive, grouped = Q.mean_sd(y, n_boot=500), Q.mean_sd(y, groups=g, n_boot=500)
    assert (grouped["ci_high"] - grouped["ci_low"]) > 3 * (naive["ci_high"] - naive["ci_low"])


def test_frechet_and_kid_intervals(features):
    a, b = features
    fd = Q.frechet_with_ci(a, b + 1.0, n_boot=20)
    assert fd["frechet_ci_low"] < fd["frechet"] * 1.5 and fd["frechet_ci_low"] < fd["frechet_ci_high"]
    assert fd["frechet_ci_low"] > Q.frechet_distance(a, b)  # the shift is resolved
    kid = Q.kernel_distance_summary(a, b + 1.0, subset_size=50, subsets=20)
    assert kid["kid_ci_low"] <= kid["kid"] <= kid["kid_ci_high"] and kid["kid_ci_low"] > 0
