import pytest
import torch

from xraymunit.losses import (
    LossWeights,
    PerceptualLoss,
    instance_normalized_distance,
    lsgan_discriminator,
    lsgan_generator,
    recon_l1,
    weighted_total,
)
from xraymunit.models import build_vgg16


def test_loss_values_on_known_tensors():
    assert recon_l1(torch.zeros(2, 3), torch.full((2, 3), 0.5)).item() == pytest.approx(0.5)
    ones, zeros = [torch.ones(1, 1, 2, 2)] * 2, [torch.zeros(1, 1, 2, 2)] * 2
    assert lsgan_discriminator(ones, zeros).item() == 0.0  # perfect discriminator
    assert lsgan_discriminator(zeros, ones).item() == pytest.approx(4.0)  # 2 scales × (1 + 1)
    assert lsgan_generator(ones).item() == 0.0
    half = [torch.full((1, 1, 2, 2), 0.5)] * 3
    assert lsgan_generator(half).item() == pytest.approx(3 * 0.25)


def test_perceptual_distance_ignores_per_channel_affine_changes():
    torch.manual_seed(0)
    f = torch.randn(2, 16, 8, 8)
    scale = torch.rand(1, 16, 1, 1) * 3 + 0.5
    shift = torch.randn(1, 16, 1, 1) * 5
    assert instance_normalized_distance(f * scale + shift, f).item() < 1e-6
    # but a change of spatial layout is seen
    assert instance_normalized_distance(torch.roll(f, 3, dims=-1), f).item() > 0.5


def test_perceptual_loss_gradient_flows_only_to_the_translation():
    net = build_vgg16("random", "relu2_2")
    loss_fn = PerceptualLoss(net)
    x = (torch.rand(1, 1, 32, 32) * 2 - 1).requires_grad_(True)
    src = (torch.rand(1, 1, 32, 32) * 2 - 1).requires_grad_(True)
    loss = loss_fn(x, src)
    loss.backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert src.grad is None
    assert loss_fn(src.detach(), src.detach()).item() == pytest.approx(0.0, abs=1e-6)


def test_weighted_total_is_the_one_sum():
    terms = {"gan_a": torch.tensor(1.0), "image_recon_a": torch.tensor(2.0), "perceptual_b": torch.tensor(5.0)}
    w = LossWeights(gan=1.0, image_recon=10.0, perceptual=0.0)
    assert weighted_total(terms, w).item() == pytest.approx(21.0)
    with pytest.raises(ValueError):
        weighted_total({"cycle_a": torch.tensor(1.0)}, LossWeights(cycle=0.0))


def test_mode_seeking_term_rewards_styles_that_change_the_image():
    from xraymunit.losses import mode_seeking

    s1, s2 = torch.zeros(2, 8), torch.ones(2, 8)
    x = torch.zeros(2, 1, 8, 8)
    near, far = mode_seeking(x, x + 0.01, s1, s2), mode_seeking(x, x + 0.5, s1, s2)
    assert far < near  # more different translations of one content → lower loss
    y = (x + 0.1).requires_grad_()
    mode_seeking(x, y, s1, s2).backward()
    assert y.grad.abs().sum() > 0


def test_diversity_term_trains_with_second_styles():
    from xraymunit.losses import LossWeights
    from xraymunit.models import MunitDiscriminators, MunitGenerators
    from xraymunit.training.step import MunitStep

    torch.manual_seed(0)
    gens = MunitGenerators(dim=8, n_res=1, mlp_dim=16)
    dis = MunitDiscriminators(dim=8, n_layers=3, n_scales=2)
    step = MunitStep(gens, dis, torch.optim.Adam(gens.parameters(), 1e-3), torch.optim.Adam(dis.parameters(), 1e-3),
                     LossWeights(diversity=1.0), None, torch.device("cpu"))
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    s = [torch.randn(2, 8) for _ in range(4)]
    losses = step(x, x.flip(0), s[0], s[1], s_a2=s[2], s_b2=s[3])
    assert torch.isfinite(losses["gen/diversity_a"]) and torch.isfinite(losses["gen/diversity_b"])
    with pytest.raises(ValueError, match="second styles"):
        step(x, x.flip(0), s[0], s[1])
