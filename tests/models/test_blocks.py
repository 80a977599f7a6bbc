import pytest
import torch

from xraymunit.models.blocks import MLP, AdaptiveInstanceNorm, ChannelLayerNorm, ConvBlock, ResBlock


def test_adain_uses_each_samples_own_parameters():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 8, 8)
    params = torch.tensor([[1.0, 2.0, 3.0, 0.5, 0.5, 0.5], [-1.0, 0.0, 1.0, 2.0, 2.0, 2.0]])
    y = AdaptiveInstanceNorm(3)(x, params)
    # after AdaIN each (sample, channel) map has the requested mean (shift) and std (scale)
    assert torch.allclose(y.mean(dim=(2, 3)), params[:, :3], atol=1e-5)
    assert torch.allclose(y.std(dim=(2, 3), unbiased=False), params[:, 3:], atol=1e-3)


def test_channel_layer_norm_normalises_per_sample_with_per_channel_affine():
    x = torch.randn(2, 4, 5, 7) * 3 + 2
    ln = ChannelLayerNorm(4)
    y = ln(x)
    assert torch.allclose(y.mean(dim=(1, 2, 3)), torch.zeros(2), atol=1e-5)
    with torch.no_grad():
        ln.weight.copy_(torch.tensor([1.0, 2.0, 3.0, 4.0]))
    assert ln(x).shape == x.shape  # works at any spatial size: one affine per channel


def test_adain_block_refuses_to_run_without_params():
    block = ConvBlock(2, 2, 3, 1, 1, norm="adain")
    with pytest.raises(ValueError, match="adain_params"):
        block(torch.randn(1, 2, 4, 4))


def test_resblock_adain_param_count_and_skip():
    block = ResBlock(8, norm="adain")
    assert block.num_adain_params == 2 * 2 * 8
    x = torch.randn(1, 8, 6, 6)
    assert block(x, torch.randn(1, block.num_adain_params)).shape == x.shape


def test_mlp_shapes():
    mlp = MLP(8, 100, hidden_dim=16, n_layers=3)
    assert mlp(torch.randn(5, 8)).shape == (5, 100)
    assert len([m for m in mlp.modules() if isinstance(m, torch.nn.Linear)]) == 3


@pytest.mark.parametrize("pad_type", ["reflect", "replicate", "zeros"])
@pytest.mark.parametrize("kernel", [3, 5, 7])
@pytest.mark.parametrize("size", [(8, 8), (5, 7), (16, 9), (2, 2)])
def test_polyphase_upsample_conv_equals_upsample_then_conv(pad_type, kernel, size):
    from xraymunit.models.blocks import upsample2x_conv

    torch.manual_seed(0)
    x = torch.randn(2, 4, *size, dtype=torch.float64, requires_grad=True)
    w = torch.randn(3, 4, kernel, kernel, dtype=torch.float64, requires_grad=True)
    b = torch.randn(3, dtype=torch.float64, requires_grad=True)
    up = torch.nn.functional.interpolate(x, scale_factor=2, mode="nearest")
    half = kernel // 2
    if pad_type == "zeros":
        expected = torch.nn.functional.conv2d(up, w, b, padding=half)
    else:
        expected = torch.nn.functional.conv2d(torch.nn.functional.pad(up, (half,) * 4, mode=pad_type), w, b)
    got = upsample2x_conv(x, w, b, pad_type)
    assert torch.allclose(got, expected, atol=1e-10)
    g_expected = torch.autograd.grad((expected * expected.cos()).sum(), (x, w, b))
    g_got = torch.autograd.grad((got * got.cos()).sum(), (x, w, b))
    for a, c in zip(g_expected, g_got):
        assert torch.allclose(a, c, atol=1e-9)


def test_upsample_conv_block_matches_the_module_it_replaces():
    from xraymunit.models.blocks import UpsampleConvBlock

    torch.manual_seed(0)
    block = UpsampleConvBlock(8, 4, 5, "ln", "relu", "reflect")
    plain = torch.nn.Sequential(torch.nn.Upsample(scale_factor=2, mode="nearest"),
                                ConvBlock(8, 4, 5, 1, 2, "ln", "relu", "reflect"))
    plain[1].load_state_dict(block.state_dict())
    x = torch.randn(2, 8, 12, 10)
    assert torch.allclose(block(x), plain(x), atol=1e-5)


@pytest.mark.parametrize("pad_type", ["reflect", "replicate", "zeros"])
@pytest.mark.parametrize("out_channels,kernel", [(1, 7), (1, 3), (3, 3), (4, 4)])
def test_output_conv_block_tap_sums_equal_the_direct_conv(pad_type, out_channels, kernel):
    from xraymunit.models.blocks import OutputConvBlock, tap_sum_conv2d

    torch.manual_seed(0)
    block = OutputConvBlock(5, out_channels, kernel, 1, kernel // 2, "none", "tanh", pad_type).double()
    plain = ConvBlock(5, out_channels, kernel, 1, kernel // 2, "none", "tanh", pad_type).double()
    plain.load_state_dict(block.state_dict())
    x = torch.randn(2, 5, 11, 9, dtype=torch.float64)
    with torch.no_grad():
        assert torch.allclose(block(x), plain(x), atol=1e-12)
    x.requires_grad_(True)
    y = block(x)  # with autograd: the direct conv (same result, gradients as ConvBlock's)
    assert torch.allclose(y, plain(x), atol=1e-12) and y.requires_grad
    w = torch.randn(out_channels, 5, kernel, kernel, dtype=torch.float64)
    assert torch.allclose(tap_sum_conv2d(x.detach(), w, None), torch.nn.functional.conv2d(x.detach(), w), atol=1e-12)


def test_output_conv_block_in_bf16_is_as_close_as_the_direct_conv():
    from xraymunit.models.blocks import OutputConvBlock

    torch.manual_seed(0)
    block = OutputConvBlock(64, 1, 7, 1, 3, "none", "none", "reflect")
    x = torch.randn(1, 64, 40, 40)
    with torch.no_grad():
        exact = block(x)
        fast = block.bfloat16()(x.bfloat16()).float()
        direct = torch.nn.functional.conv2d(torch.nn.functional.pad(x.bfloat16(), (3,) * 4, mode="reflect"),
                                            block.conv.weight, block.conv.bias).float()
    assert fast.dtype == torch.float32 and (fast - exact).abs().mean() < 2 * (direct - exact).abs().mean()
