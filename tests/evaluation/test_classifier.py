"""Classifier, batch sampling, augmentation and the synthetic-selection (leakage) rules."""

import numpy as np
import pytest
import torch

from helpers.evaluate_data import write_cohort, write_synthetic
from xraymunit.config.evaluate import AugmentConfig, ClassifierConfig, SyntheticConfig
from xraymunit.evaluation import datasets as D
from xraymunit.evaluation.classifier import (BatchSampler, TrainPool, build_classifier, predict,
                                             train_classifier)
from xraymunit.evaluation.metrics import auroc
from xraymunit.io.cohort import Cohort, SyntheticSet

SMALL = dict(image_size=32, init_features=8, growth_rate=4, block_config=(1, 1), bn_size=2)


@pytest.fixture(scope="module")
def folders(tmp_path_factory):
    root = tmp_path_factory.mktemp("clf")
    cohort = write_cohort(root / "cohort", n_patients=80, size=48, seed=11)
    synth = write_synthetic(root / "synth", cohort, n_styles=2, unknown_sources=2)
    return Cohort.open(cohort), SyntheticSet.open(synth)


@pytest.mark.parametrize("cfg, size", [
    (ClassifierConfig(**SMALL), 32),
    (ClassifierConfig(image_size=64, block_config=(2, 2, 2)), 64),
    (ClassifierConfig(arch="densenet121", image_size=64), 64),
])
def test_classifier_shapes_one_channel(cfg, size):
    model = build_classifier(cfg, seed=0).eval()
    x = torch.rand(2, 1, size, size)
    with torch.no_grad():
        assert model(x).shape == (2,)
        emb = model.embed(x)
        maps = model.feature_maps(x)
    assert emb.ndim == 2 and emb.shape[0] == 2
    assert len(maps) == 1 + (len(cfg.block_config) if cfg.arch == "densenet" else 4)
    first = next(model.parameters())
    assert first.shape[1] == 1  # one input channel, no RGB replication


def test_initial_weights_depend_only_on_seed():
    cfg = ClassifierConfig(**SMALL)
    a, b, c = build_classifier(cfg, 3), build_classifier(cfg, 3), build_classifier(cfg, 4)
    sa, sb, sc = a.state_dict(), b.state_dict(), c.state_dict()
    assert all(torch.equal(sa[k], sb[k]) for k in sa)
    assert not all(torch.equal(sa[k], sc[k]) for k in sa)


def test_sampler_real_stream_is_identical_across_arms():
    normal, abnormal = torch.arange(10.0).view(10, 1, 1, 1), 100 + torch.arange(5.0).view(5, 1, 1, 1)
    synthetic = 1000 + torch.arange(20.0).view(20, 1, 1, 1)
    real = BatchSampler(TrainPool(normal, abnormal), 64, seed=7)
    mixed = BatchSampler(TrainPool(normal, abnormal, synthetic, synthetic_mix=0.5), 64, seed=7)
    n_synth = n_abn = 0
    for _ in range(20):
        (xr, yr), (xm, ym) = real(), mixed()
        assert torch.equal(yr, ym)  # same labels
        assert torch.equal(xr[yr == 0], xm[ym == 0])  # same normal images
        abn = xm[ym == 1].flatten()
        n_synth += int((abn >= 1000).sum())
        n_abn += len(abn)
        real_slots = abn[abn < 1000]
        assert torch.all((real_slots >= 100) & (real_slots < 105))
    assert 0.4 < n_synth / n_abn < 0.6


def test_training_learns_the_signal_and_is_deterministic(folders):
    cohort, _ = folders
    cfg = ClassifierConfig(**SMALL, steps=60, batch_size=16, lr=3e-3, eval_every=20)
    train = D.real_split(cohort, "train", 32, "normal", "abnormal")
    val = D.real_split(cohort, "val", 32, "normal", "abnormal")
    test = D.real_split(cohort, "test", 32, "normal", "abnormal")
    pool = TrainPool(train.images[torch.as_tensor(train.where(0))], train.images[torch.as_tensor(train.where(1))])
    torch.set_num_threads(1)
    r1 = train_classifier(pool, val, cfg, seed=0)
    r2 = train_classifier(pool, val, cfg, seed=0)
    s1, s2 = predict(r1.model, test.images, "cpu"), predict(r2.model, test.images, "cpu")
    assert np.array_equal(s1, s2)
    assert auroc(test.labels, s1) > 0.75
    assert [h["step"] for h in r1.history] == [20, 40, 60]
    assert r1.best_val_auroc == max(h["val_auroc"] for h in r1.history)
    assert r1.best_step == next(h["step"] for h in r1.history if h["val_auroc"] == r1.best_val_auroc)


def test_real_split_is_sorted_and_single_split(folders):
    cohort, _ = folders
    s = D.real_split(cohort, "val", 32, "normal", "abnormal")
    m = cohort.ok()
    assert list(s.keys) == sorted(m[m["split"] == "val"]["image_key"])
    assert s.images.shape[1:] == (1, 32, 32) and 0 <= float(s.images.min()) and float(s.images.max()) <= 1


def test_select_synthetic_excludes_held_out_and_unknown_sources(folders):
    cohort, synth = folders
    sel = D.select_synthetic(synth.manifest, cohort.manifest, SyntheticConfig())
    split_of = cohort.ok().groupby("patient_key")["split"].first()
    assert set(split_of[sel.used["source_patient_key"]]) == {"train"}
    held = sel.excluded[sel.excluded["reason"] == D.EXCLUDE_HELD_OUT]
    assert len(held) > 0 and set(split_of[held["source_patient_key"]]) <= {"val", "test"}
    c = sel.counts()
    assert c["excluded_by_reason"][D.EXCLUDE_UNKNOWN] == 2 * 2  # 2 unknown sources × 2 styles
    assert c["used_for_training"] + c["excluded"] == c["total"] == len(synth.manifest)


def test_select_synthetic_checks_patient_not_just_row_split(folders):
    cohort, synth = folders
    m = synth.manifest.copy()
    ok = cohort.ok()
    val_patient = ok[ok["split"] == "val"]["patient_key"].iloc[0]
    m.loc[0, ["source_patient_key", "split"]] = [val_patient, "train"]  # the row lies about its split
    m.loc[1, "source_patient_key"] = None  # only the image key is known → resolved through the cohort
    sel = D.select_synthetic(m, cohort.manifest, SyntheticConfig())
    reasons = dict(zip(sel.excluded["synth_key"], sel.excluded["reason"]))
    assert reasons[m.loc[0, "synth_key"]] == D.EXCLUDE_HELD_OUT
    src_split = ok.set_index("image_key").loc[m.loc[1, "source_image_key"], "split"]
    assert (m.loc[1, "synth_key"] in set(sel.used["synth_key"])) == (src_split == "train")


def test_select_synthetic_label_and_style_cap(folders):
    cohort, synth = folders
    m = synth.manifest.copy()
    m.loc[0, "intended_label"] = "normal"
    sel = D.select_synthetic(m, cohort.manifest, SyntheticConfig(max_styles_per_source=1))
    assert sel.used.groupby("source_image_key").size().max() == 1
    assert D.EXCLUDE_LABEL in set(sel.excluded["reason"]) and D.EXCLUDE_MAX_STYLES in set(sel.excluded["reason"])


def test_low_data_order_is_a_seeded_nested_permutation():
    a, b, c = D.low_data_order(30, 0), D.low_data_order(30, 0), D.low_data_order(30, 1)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert sorted(a) == list(range(30))
    assert set(a[:5]) <= set(a[:10])  # K=5 ⊂ K=10 by construction


def test_classical_augment_is_seeded_changes_images_and_stays_in_range():
    x = torch.rand(6, 1, 32, 32)
    cfg = AugmentConfig(prob=1.0)
    a1, a2, a3 = D.ClassicalAugment(cfg, 32, 0)(x), D.ClassicalAugment(cfg, 32, 0)(x), D.ClassicalAugment(cfg, 32, 1)(x)
    assert torch.equal(a1, a2) and not torch.equal(a1, a3)
    assert not torch.allclose(a1, x) and a1.shape == x.shape
    assert float(a1.min()) >= 0 and float(a1.max()) <= 1
    assert type(a1) is torch.Tensor


def test_a_stop_request_abandons_the_run_between_steps(folders):
    from xraymunit.evaluation.classifier import RunAbandoned

    cohort, _ = folders
    cfg = ClassifierConfig(**SMALL, steps=50, batch_size=8, eval_every=25)
    train = D.real_split(cohort, "train", 32, "normal", "abnormal")
    val = D.real_split(cohort, "val", 32, "normal", "abnormal")
    pool = TrainPool(train.images[torch.as_tensor(train.where(0))], train.images[torch.as_tensor(train.where(1))])

    class StopAfter:  # like xraymunit.stopping's flag, set by "SIGTERM" after 3 steps
        def __init__(self):
            self.asked = 0

        @property
        def requested(self):
            self.asked += 1
            return self.asked > 3

    flag = StopAfter()
    with pytest.raises(RunAbandoned, match="abandoned at step 3 of 50"):
        train_classifier(pool, val, cfg, seed=0, stop=flag)
