"""model.output = residual_mask: the translation is clamp(source + m ⊙ Δ) and starts as the identity."""

import pytest
import torch

from xraymunit.models import AdaINGenerator, MunitGenerators, init_weights
from xraymunit.models.generator import compose_residual

KW = dict(dim=8, style_dim=4, n_downsample=2, n_res=1, mlp_dim=16)


def _residual(seed=0) -> MunitGenerators:
    gens = MunitGenerators(**KW, output="residual_mask")
    init_weights(gens, "kaiming", seed=seed)
    return gens


def test_an_untrained_residual_generator_is_the_identity_in_every_path():
    gens = _residual()
    gens.reset_output_heads()
    x_a, x_b = torch.rand(2, 1, 32, 32) * 2 - 1, torch.rand(2, 1, 32, 32) * 2 - 1
    s = torch.randn(2, 4)
    t = gens(x_a, x_b, s, s, with_cycle=True, with_identity=True)
    for got, want in ((t.x_ab, x_a), (t.x_ba, x_b), (t.x_a_recon, x_a), (t.x_aa_id, x_a), (t.x_aba, x_a)):
        assert torch.equal(got, want)
    assert torch.allclose(t.m_ab, torch.full_like(t.m_ab, 0.5))  # Δ = 0 whatever the mask


def test_without_the_reset_the_change_is_not_zero_and_stays_in_range():
    gens = _residual()
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    c, s = gens.gen_a.encode(x)
    parts = gens.gen_b.decode_parts(c, torch.randn(2, 4), x)
    assert parts.mask.shape == parts.delta.shape == x.shape
    assert 0 <= parts.mask.min() and parts.mask.max() <= 1 and parts.delta.abs().max() <= 2
    assert parts.image.min() >= -1 and parts.image.max() <= 1
    expected = (x + parts.mask * parts.delta).clamp(-1, 1)
    assert torch.allclose(parts.image, expected) and not torch.equal(parts.image, x)


def test_compose_clamps_to_the_image_range():
    raw = torch.tensor([10.0, 10.0]).view(1, 2, 1, 1)  # Δ ≈ +2, m ≈ 1
    assert compose_residual(raw, torch.full((1, 1, 1, 1), 0.5)).image.item() == 1.0


def test_residual_mode_needs_the_source_and_render_equals_decode():
    gen = AdaINGenerator(**KW, output="residual_mask")
    x = torch.rand(1, 1, 32, 32) * 2 - 1
    content = gen.encode_content(x)
    styles = torch.randn(3, 4)
    with pytest.raises(ValueError, match="needs the source image"):
        gen.decode(content, styles[:1])
    with torch.no_grad():
        rendered = gen.render_parts(content, styles, source=x)
        decoded = gen.decode_parts(content.expand(3, -1, -1, -1), styles, x.expand(3, -1, -1, -1))
    assert torch.allclose(rendered.image, decoded.image, atol=1e-5)
    assert torch.allclose(rendered.mask, decoded.mask, atol=1e-5)


def test_image_mode_is_unchanged_and_ignores_the_source():
    gen = AdaINGenerator(**KW)
    x = torch.rand(2, 1, 32, 32) * 2 - 1
    c, s = gen.encode(x)
    parts = gen.decode_parts(c, s, x)
    assert parts.mask is None and parts.delta is None
    assert torch.equal(parts.image, gen.decode(c, s)) and gen.decoder.upsample[-1].conv.out_channels == 1


def test_unknown_output_mode_is_refused():
    with pytest.raises(ValueError, match="output must be one of"):
        AdaINGenerator(**KW, output="heatmap")
