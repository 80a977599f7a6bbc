"""The control arms' training images (issue 21), built from a real plan without training anything:
intensity_control is the synthetic set row for row with each image replaced by its source normal
histogram-matched to one of the level's K real abnormals; duplicate_real is those K repeated to the
synthetic arm's count."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch
from skimage.exposure import match_histograms

from helpers.evaluate_data import write_cohort, write_synthetic
from xraymunit import config
from xraymunit.config.evaluate import EvaluateConfig, arm_parts
from xraymunit.evaluation import controls
from xraymunit.evaluation.plan import plan_study
from xraymunit.evaluation.runcache import RunCache
from xraymunit.evaluation.runs import RunExecutor

REPO = Path(__file__).resolve().parents[2]
K = 3


@pytest.fixture(scope="module")
def executor(tmp_path_factory):
    root = tmp_path_factory.mktemp("controls")
    cohort = write_cohort(root / "cohort", n_patients=30, size=32, seed=5)
    synth = write_synthetic(root / "synth", cohort, n_styles=2)
    cfg = config.load(EvaluateConfig, REPO / "configs" / "evaluate_tiny.yaml",
                      [f"real_abnormal=[{K}, all]", "progress=false", "quality.enabled=false"])
    plan = plan_study(cohort, synth, cfg)
    return RunExecutor(plan, cfg, "cpu", RunCache(root / "runs", enabled=False))


def level(ex, name):
    return next(lv for lv in ex.plan.levels if lv.name == name)


@pytest.mark.parametrize("seed", [0, 1])
def test_intensity_control_rows_are_source_normals_matched_to_a_chosen_real_abnormal(executor, seed):
    ex, lv = executor, level(executor, str(K))
    pool = ex.added_images(lv, seed, "intensity_control")
    synth = ex.plan.synthetic[lv.name][0]
    rows, train = synth.selection.used, ex.plan.train
    assert pool.shape == synth.images.images.shape and pool.dtype == synth.images.images.dtype
    keep = ex.real_abnormal_rows(lv, seed)  # sorted rows of the level's K real abnormals (this seed's subset)
    assert len(keep) == K and set(train.labels[keep]) == {1}
    position = {k: i for i, k in enumerate(train.keys)}
    chosen = []
    for i, (synth_key, source_key) in enumerate(zip(rows["synth_key"], rows["source_image_key"])):
        assert train.labels[position[source_key]] == 0  # the row's own source normal
        j = controls.reference_index(synth_key, K, ex.cfg.seed_base)
        chosen.append(j)
        expected = match_histograms(train.images[position[source_key], 0].numpy(), train.images[keep[j], 0].numpy())
        np.testing.assert_allclose(pool[i, 0].float().numpy(), np.clip(expected, 0, 1), atol=1e-3)
    assert len(set(chosen)) == K  # the hash spreads the rows over every real abnormal of the level
    assert not torch.allclose(pool.float(), synth.images.images.float(), atol=0.05)  # not the synthetic images
    assert torch.equal(ex.added_images(lv, seed, "classical+intensity_control"), pool)  # augmentation is per batch


def test_duplicate_real_repeats_the_k_real_abnormals_to_the_synthetic_count(executor):
    ex = executor
    for name in (str(K), "all"):
        lv = level(ex, name)
        pool = ex.added_images(lv, 0, "duplicate_real")
        synthetic = ex.added_images(lv, 0, "synthetic")
        assert len(pool) == len(synthetic) > lv.n_abnormal  # count-matched to arm 3
        real = ex.plan.train.images[torch.as_tensor(ex.real_abnormal_rows(lv, 0))]
        which = [int(torch.argmin(((real - img.float()) ** 2).flatten(1).sum(1))) for img in pool]
        np.testing.assert_allclose(pool.float().numpy(), real[which].numpy(), atol=1e-3)  # copies of the K reals
        counts = Counter(which)
        assert len(counts) == lv.n_abnormal and max(counts.values()) - min(counts.values()) <= 1  # evenly repeated


def test_arms_without_synthetic_images_add_nothing_and_controls_change_the_fingerprint(executor):
    ex, lv = executor, level(executor, "all")
    assert ex.added_images(lv, 0, "real") is None and ex.added_images(lv, 0, "classical") is None
    prints = {arm: ex.fingerprint(lv, 0, arm) for arm in ("synthetic", "intensity_control", "duplicate_real")}
    assert len(set(prints.values())) == 3
    assert arm_parts("classical+duplicate_real") == (True, "duplicate_real")
    assert arm_parts("classical") == (True, None) and arm_parts("real") == (False, None)


def test_reference_choice_is_a_pure_function_of_the_key():
    picks = [controls.reference_index(f"key{i}", 5, 0) for i in range(200)]
    assert picks == [controls.reference_index(f"key{i}", 5, 0) for i in range(200)]
    assert set(picks) == set(range(5)) and picks != [controls.reference_index(f"key{i}", 5, 1) for i in range(200)]
    with pytest.raises(ValueError, match="at least one real abnormal"):
        controls.intensity_control(torch.zeros((1, 1, 4, 4)), torch.zeros((0, 1, 4, 4)), ["k"], 0)
