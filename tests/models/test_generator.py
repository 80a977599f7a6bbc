import pytest
import torch

from xraymunit.models import AdaINGenerator, MultiScaleDiscriminator, MunitGenerators


@pytest.mark.parametrize("size", [64, 96, 128])
@pytest.mark.parametrize("dim, n_down, style_dim", [(8, 2, 8), (16, 1, 4), (8, 3, 8)])
def test_generator_shapes(size, dim, n_down, style_dim):
    gen = AdaINGenerator(dim=dim, style_dim=style_dim, n_downsample=n_down, n_res=1, mlp_dim=16)
    x = torch.rand(2, 1, size, size) * 2 - 1
    content, style = gen.encode(x)
    assert content.shape == (2, dim * 2**n_down, size // 2**n_down, size // 2**n_down)
    assert style.shape == (2, style_dim)
    y = gen.decode(content, style)
    assert y.shape == x.shape  # one channel in, one channel out
    assert y.min() >= -1 and y.max() <= 1  # tanh output


def test_paper_sized_generator_matches_the_reference_layout():
    gen = AdaINGenerator()  # dim 64, style 8, mlp 256, 2 down, 4 res
    assert gen.content_encoder.out_channels == 256
    assert gen.decoder.num_adain_params == 4 * 2 * 2 * 256  # 4 res blocks × 2 AdaIN × (γ, β) × 256
    assert gen.style_encoder.head.out_channels == 8
    # no normalisation in the style encoder: it must keep per-image statistics
    norms = [m for m in gen.style_encoder.modules() if isinstance(m, torch.nn.InstanceNorm2d)]
    assert norms == []
    params = sum(p.numel() for p in gen.parameters())
    assert 14e6 < params < 16e6  # ≈ 15M, as the reference generator (for 1-channel input)


def test_style_changes_output_but_content_is_style_free():
    torch.manual_seed(0)
    gen = AdaINGenerator(dim=8, n_res=1, mlp_dim=16)
    x = torch.rand(1, 1, 32, 32)
    content = gen.encode_content(x)
    y1 = gen.decode(content, torch.randn(1, 8))
    y2 = gen.decode(content, torch.randn(1, 8))
    assert not torch.allclose(y1, y2)
    # instance-normalised content: a global intensity scale of the input leaves it unchanged
    assert torch.allclose(gen.encode_content(x * 3), content, atol=1e-3)


@pytest.mark.parametrize("size, scales, layers", [(64, 3, 3), (128, 3, 4), (64, 2, 4)])
def test_multiscale_discriminator_outputs(size, scales, layers):
    dis = MultiScaleDiscriminator(dim=8, n_layers=layers, n_scales=scales)
    outs = dis(torch.randn(2, 1, size, size))
    assert len(outs) == scales
    for i, out in enumerate(outs):
        side = size // 2**i // 2**layers
        assert out.shape == (2, 1, side, side)


def test_batched_forward_equals_separate_calls():
    torch.manual_seed(0)
    gens = MunitGenerators(dim=8, n_res=1, mlp_dim=16)
    x_a, x_b = torch.rand(2, 1, 32, 32), torch.rand(2, 1, 32, 32)
    s_a, s_b = torch.randn(2, 8), torch.randn(2, 8)
    t = gens(x_a, x_b, s_a, s_b, with_cycle=True)
    c_a, s_a_prime = gens.gen_a.encode(x_a)
    c_b = gens.gen_b.encode_content(x_b)
    assert torch.allclose(t.x_ab, gens.gen_b.decode(c_a, s_b), atol=1e-5)
    assert torch.allclose(t.x_ba, gens.gen_a.decode(c_b, s_a), atol=1e-5)
    assert torch.allclose(t.x_a_recon, gens.gen_a.decode(c_a, s_a_prime), atol=1e-5)
    assert t.x_aba.shape == x_a.shape


@pytest.mark.parametrize("n_res", [1, 2, 4])
def test_render_many_styles_equals_plain_decode(n_res):
    torch.manual_seed(0)
    gen = AdaINGenerator(dim=8, n_res=n_res, mlp_dim=16)
    content = gen.encode_content(torch.rand(1, 1, 32, 32))
    styles = torch.randn(5, 8)
    fast = gen.render(content, styles)
    plain = gen.decode(content.expand(5, -1, -1, -1), styles)
    assert torch.allclose(fast, plain, atol=1e-5)
    shared = gen.decoder.shared_features(content)  # once per content code, for every batch of styles
    for part in (styles[:2], styles[2:]):
        assert torch.equal(gen.render(content, part, shared), gen.render(content, part))
    with pytest.raises(ValueError):
        gen.render(content.expand(2, -1, -1, -1), styles)
