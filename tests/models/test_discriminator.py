"""xraymunit/models/discriminator.py: the multi-scale PatchGAN's score maps, layers and init."""

import pytest
import torch
from torch import nn

from xraymunit.losses import lsgan_discriminator
from xraymunit.models import MunitDiscriminators, init_weights
from xraymunit.models.discriminator import MultiScaleDiscriminator, PatchDiscriminator


def test_patch_discriminator_halves_the_side_per_layer_and_doubles_the_channels():
    d = PatchDiscriminator(in_channels=1, dim=4, n_layers=3)
    out = d(torch.randn(2, 1, 64, 64))
    assert out.shape == (2, 1, 8, 8)  # 64 / 2**3, one score per patch
    convs = [m for m in d.modules() if isinstance(m, nn.Conv2d)]
    assert [c.out_channels for c in convs] == [4, 8, 16, 1]
    assert all(c.stride == (2, 2) and c.kernel_size == (4, 4) for c in convs[:-1])
    assert convs[-1].kernel_size == (1, 1)
    assert not any(isinstance(m, (nn.BatchNorm2d, nn.InstanceNorm2d, nn.GroupNorm)) for m in d.modules())


@pytest.mark.parametrize("side, n_scales, sides", [(64, 3, [8, 4, 2]), (48, 2, [6, 3]), (64, 1, [8])])
def test_multiscale_returns_one_map_per_scale_each_half_the_last(side, n_scales, sides):
    d = MultiScaleDiscriminator(in_channels=1, dim=4, n_layers=3, n_scales=n_scales)
    outs = d(torch.randn(2, 1, side, side))
    assert isinstance(outs, list) and [tuple(o.shape) for o in outs] == [(2, 1, s, s) for s in sides]


def test_scales_have_their_own_weights_and_see_the_downsampled_image():
    d = MultiScaleDiscriminator(dim=4, n_layers=2, n_scales=2)
    single = sum(p.numel() for p in PatchDiscriminator(dim=4, n_layers=2).parameters())
    assert sum(p.numel() for p in d.parameters()) == 2 * single  # not shared between scales
    d.scales[1].load_state_dict(d.scales[0].state_dict())  # same weights: scale 1 = scale 0 on the pooled image
    x = torch.randn(1, 1, 32, 32)
    pooled = nn.functional.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
    assert torch.allclose(d(x)[1], d.scales[0](pooled), atol=1e-6)


def test_scores_depend_on_the_input_and_pass_gradients_back():
    d = MultiScaleDiscriminator(dim=4, n_layers=2, n_scales=2)
    x = torch.randn(2, 1, 32, 32, requires_grad=True)
    outs = d(x)
    sum(o.sum() for o in outs).backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    assert not torch.allclose(outs[0][0], outs[0][1])  # two images, two score maps


def test_gaussian_init_is_seeded_small_and_zero_biased():
    a, b = MunitDiscriminators(dim=8, n_layers=3, n_scales=2), MunitDiscriminators(dim=8, n_layers=3, n_scales=2)
    init_weights(a, "gaussian", seed=3)
    init_weights(b, "gaussian", seed=3)
    assert all(torch.equal(pa, pb) for pa, pb in zip(a.parameters(), b.parameters()))
    convs = [m for m in a.modules() if isinstance(m, nn.Conv2d)]
    weights = torch.cat([c.weight.flatten() for c in convs])
    assert abs(weights.std().item() - 0.02) < 0.003 and abs(weights.mean().item()) < 0.003
    assert all(c.bias is None or torch.count_nonzero(c.bias) == 0 for c in convs)


def test_lsgan_loss_of_its_outputs_is_zero_only_for_a_perfect_discriminator():
    d = MultiScaleDiscriminator(dim=4, n_layers=2, n_scales=2)
    outs = d(torch.randn(2, 1, 32, 32))
    perfect = lsgan_discriminator([torch.ones_like(o) for o in outs], [torch.zeros_like(o) for o in outs])
    assert perfect.item() == 0.0
    assert lsgan_discriminator(outs, outs).item() > 0  # cannot tell real from fake: a positive loss
