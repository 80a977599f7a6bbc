"""Discriminator augmentation (loss.d_augment) and APA (loss.apa): same parameters for reals and fakes,
gradients reach the generator, and switched off a step is bit-identical to one without them."""

import copy

import pytest
import torch

from xraymunit import config as C
from xraymunit.checkpoint import build_networks
from xraymunit.config.train import TrainConfig
from xraymunit.training import d_augment
from xraymunit.training.step import MunitStep, adam, aug_generator

ALL = ["brightness", "contrast", "translation", "cutout"]


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


def test_each_row_gets_the_same_parameters_in_the_real_and_the_fake_batch():
    x = torch.rand(3, 1, 16, 16) * 2 - 1
    params = d_augment.draw(ALL, 3, 1.0, 1.0, _gen())
    both = d_augment.apply(torch.cat([x, x]), params)
    assert torch.equal(both[:3], both[3:])  # identical inputs, identical augmentation
    assert not torch.equal(both[:3], x)
    assert torch.equal(d_augment.apply(x, params), both[:3])  # alone (the generator's term) = in the pair


@pytest.mark.parametrize("name", ALL)
def test_each_augmentation_changes_the_image_and_passes_gradients(name):
    x = (torch.rand(2, 1, 16, 16) * 2 - 1).requires_grad_(True)
    y = d_augment.apply(x, d_augment.draw([name], 2, 1.0, 1.0, _gen(3)))
    assert y.shape == x.shape and not torch.equal(y, x)
    y.square().sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_translation_moves_by_whole_pixels_with_mid_grey_coming_in():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    params = d_augment.AugmentParams(on={"translation": torch.tensor([True])}, shift=torch.tensor([[0.25, 0.0]]))
    y = d_augment.apply(x, params)
    assert torch.equal(y[0, 0, 1:], x[0, 0, :3]) and torch.equal(y[0, 0, 0], torch.zeros(4))


def test_probability_zero_leaves_every_image_alone():
    x = torch.rand(4, 1, 16, 16)
    assert torch.equal(d_augment.apply(x, d_augment.draw(ALL, 4, 0.0, 1.0, _gen())), x)


def test_apa_swaps_reals_for_detached_fakes_at_its_rate():
    real, fake = torch.zeros(2000, 1, 1, 1), torch.ones(2000, 1, 1, 1, requires_grad=True)
    mixed = d_augment.pseudo_augment(real, fake, 0.25, _gen())
    assert 0.2 < mixed.mean().item() < 0.3 and not mixed.requires_grad


def _config(*sets) -> TrainConfig:
    cfg = C.load(TrainConfig, "munit_tiny_cpu", ["loss.perceptual=0", "data.crop_size=32", *sets])
    cfg.validate()
    return cfg


def _step(cfg, seed_batch=0):
    gens, dis = build_networks(cfg)
    step = MunitStep(gens, dis, adam(gens.parameters(), cfg.optim), adam(dis.parameters(), cfg.optim), cfg.loss,
                     None, torch.device("cpu"))
    g = _gen(seed_batch)
    x_a, x_b = torch.rand(2, 1, 32, 32, generator=g) * 2 - 1, torch.rand(2, 1, 32, 32, generator=g) * 2 - 1
    s_a, s_b = torch.randn(2, cfg.model.style_dim, generator=g), torch.randn(2, cfg.model.style_dim, generator=g)
    return gens, dis, step, (x_a, x_b, s_a, s_b)


@pytest.mark.parametrize("sets", [["loss.d_augment=[]", "loss.apa=0"], ["loss.d_augment=[brightness]",
                                                                        "loss.d_augment_prob=0"]])
def test_switched_off_the_step_is_bit_identical_to_todays(sets):
    torch.manual_seed(0)
    g1, d1, plain, batch = _step(_config())
    plain(*batch)
    torch.manual_seed(0)
    g2, d2, off, _ = _step(_config(*sets))
    off(*batch, aug_generator=aug_generator(0, 1, 0) if off.needs_aug_generator else None)
    for a, b in ((g1, g2), (d1, d2)):
        assert all(torch.equal(p, q) for p, q in zip(a.state_dict().values(), b.state_dict().values()))


def test_the_generators_adversarial_gradient_flows_through_the_augmentation(monkeypatch):
    cfg = _config("loss.d_augment=[translation,cutout]", "loss.image_recon=0", "loss.style_recon=0",
                  "loss.content_recon=0")
    gens, dis, step, batch = _step(cfg)
    seen = []
    real_apply = d_augment.apply
    monkeypatch.setattr(d_augment, "apply", lambda x, p: seen.append(x.requires_grad) or real_apply(x, p))
    before = copy.deepcopy(gens.state_dict())
    step(*batch, aug_generator=aug_generator(0, 1, 0))
    assert seen == [False, False, True, True]  # D update (detached fakes), then the generator's term
    assert any(not torch.equal(before[k], v) for k, v in gens.state_dict().items())  # only GAN → it learned


def test_a_step_with_augmentation_needs_its_seeded_generator():
    _, _, step, batch = _step(_config("loss.d_augment=[brightness]"))
    with pytest.raises(ValueError, match="aug_generator"):
        step(*batch)


def test_old_configs_load_with_everything_off():
    cfg = _config()
    assert cfg.model.output == "image" and cfg.loss.d_augment == [] and cfg.loss.apa == 0 == cfg.loss.identity


@pytest.mark.parametrize("sets, message", [
    (["loss.mask_sparsity=1"], "needs model.output: residual_mask"),
    (["loss.d_augment=[blur]"], "must be one of"),
    (["loss.apa=1"], "must be in [0, 1)"),
    (["loss.d_augment=[cutout,cutout]"], "twice"),
])
def test_bad_settings_are_one_line(sets, message):
    with pytest.raises(C.ConfigError, match=message.replace("[", r"\[").replace(")", r"\)")):
        _config(*sets)
