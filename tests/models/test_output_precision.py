"""The decoder's last conv + tanh run in fp32 on every path: training under bf16 autocast,
synthesis with a bf16-cast decoder on the CPU (tap sums) and on the GPU code path (direct conv,
forced here on the CPU). A bf16 output would sit on a grid of 1/256 wherever |y| >= 0.5."""

import copy

import pytest
import torch

from xraymunit.models import AdaINGenerator
from xraymunit.models import blocks
from xraymunit.models.blocks import ConvBlock, OutputConvBlock, cast_for_rendering, tap_sum_conv2d


def off_bf16_grid(y: torch.Tensor) -> float:
    """Share of values that bf16 cannot represent exactly (0 for a bf16 output)."""
    return float((y.to(torch.bfloat16).float() != y).float().mean())


@pytest.fixture(scope="module")
def gen():
    torch.manual_seed(0)
    return AdaINGenerator(dim=16, n_res=2, mlp_dim=32)


@pytest.mark.parametrize("grad", [True, False])
def test_decoder_output_has_fp32_resolution_under_bf16_autocast(gen, grad):
    x = torch.rand(1, 1, 64, 64) * 2 - 1
    with torch.set_grad_enabled(grad), torch.autocast("cpu", dtype=torch.bfloat16):
        y = gen(x)
    assert y.dtype == torch.float32
    assert off_bf16_grid(y) > 0.5
    assert y.unique().numel() > 3000  # of 4096 pixels; a bf16 output had ~800 distinct values


def test_output_block_under_autocast_equals_the_fp32_conv_with_its_gradients():
    torch.manual_seed(0)
    block = OutputConvBlock(16, 1, 7, 1, 3, "none", "tanh", "reflect")
    plain = ConvBlock(16, 1, 7, 1, 3, "none", "tanh", "reflect")
    plain.load_state_dict(block.state_dict())
    x = torch.randn(2, 16, 20, 20).bfloat16().requires_grad_(True)  # what bf16 layers before it pass on
    with torch.autocast("cpu", dtype=torch.bfloat16):
        y = block(x)
    x32 = x.detach().float().requires_grad_(True)
    ref = plain(x32)
    assert y.dtype == torch.float32 and torch.allclose(y, ref, atol=1e-6)
    g = torch.randn_like(ref)
    y.backward(g)
    ref.backward(g)
    assert x.grad.dtype == torch.bfloat16  # within one bf16 step of the fp32 gradient
    assert torch.allclose(x.grad.float(), x32.grad, rtol=2 ** -7, atol=1e-6)
    assert block.conv.weight.grad.dtype == torch.float32
    assert torch.allclose(block.conv.weight.grad, plain.conv.weight.grad, rtol=1e-5, atol=1e-4)
    assert torch.allclose(block.conv.bias.grad, plain.conv.bias.grad, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("tap_sum", [None, False], ids=["cpu-tap-sums", "gpu-path-direct-conv"])
def test_bf16_rendering_outputs_fp32_resolution_on_both_synthesis_paths(gen, tap_sum, monkeypatch):
    monkeypatch.setattr(OutputConvBlock, "tap_sum", tap_sum)
    with torch.inference_mode():
        content = gen.encode_content(torch.rand(1, 1, 64, 64) * 2 - 1)
        styles = torch.randn(3, 8)
        exact = gen.render(content, styles)
    fast = cast_for_rendering(copy.deepcopy(gen), torch.bfloat16)  # what synthesize does for bf16
    out = fast.decoder.upsample[-1]
    assert isinstance(out, OutputConvBlock)
    assert out.conv.weight.dtype == torch.float32 and torch.equal(out.conv.weight, gen.decoder.upsample[-1].conv.weight)
    assert fast.decoder.res_blocks[0].block1.conv.weight.dtype == torch.bfloat16
    calls = []
    monkeypatch.setattr(blocks, "tap_sum_conv2d", lambda *a: calls.append(1) or tap_sum_conv2d(*a))
    with torch.inference_mode():
        y = fast.render(content.bfloat16(), styles.bfloat16())
    assert bool(calls) is (tap_sum is None)  # the path under test was taken
    assert y.dtype == torch.float32
    assert off_bf16_grid(y) > 0.5 and y[0].unique().numel() > 3000
    assert (y - exact).abs().mean() < 0.02  # bf16 everywhere before the last layer


def test_fp32_rendering_is_unchanged_by_the_cast(gen):
    with torch.inference_mode():
        content = gen.encode_content(torch.rand(1, 1, 64, 64) * 2 - 1)
        styles = torch.randn(2, 8)
        before = gen.render(content, styles)
        after = cast_for_rendering(copy.deepcopy(gen), torch.float32).render(content, styles)
    assert torch.equal(before, after)
