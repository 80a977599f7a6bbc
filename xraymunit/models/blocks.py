"""Building blocks of the MUNIT networks (Huang et al. 2018), written for one-channel images.

Normalisation is a constructor choice; AdaIN parameters are *arguments of forward*,
never attributes written onto layers, so one decoder can render a whole batch of
different style codes in one call (and stays safe under DDP / torch.compile).
"""

from __future__ import annotations

from typing import Literal

import torch
from torch import nn
from torch.nn import functional as F

Norm = Literal["none", "in", "ln", "adain"]
Activation = Literal["relu", "lrelu", "tanh", "none"]
PadType = Literal["reflect", "replicate", "zeros"]


class ChannelLayerNorm(nn.Module):
    """MUNIT's layer norm: normalise each sample over (C, H, W), then a per-channel affine.

    Unlike nn.LayerNorm over (C, H, W) the affine has one scale/shift per channel, so the
    layer works at any spatial size.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.weight = nn.Parameter(torch.ones(channels))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.layer_norm(x, x.shape[1:], eps=self.eps)
        return x * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)


class AdaptiveInstanceNorm(nn.Module):
    """Instance norm whose per-sample scale and shift come from the style MLP.

    forward(x, params) with params (B, 2*C): the first C are the shift (mean), the
    next C the scale (std), as in the paper: AdaIN(z, γ, β) = γ·(z − μ)/σ + β.
    """

    def __init__(self, channels: int, eps: float = 1e-5):
        super().__init__()
        self.channels = channels
        self.eps = eps

    @property
    def num_params(self) -> int:
        return 2 * self.channels

    def forward(self, x: torch.Tensor, params: torch.Tensor) -> torch.Tensor:
        shift, scale = params[:, : self.channels], params[:, self.channels :]
        x = F.instance_norm(x, eps=self.eps)
        return x * scale[:, :, None, None] + shift[:, :, None, None]


def _norm(norm: Norm, channels: int) -> nn.Module | None:
    if norm == "none":
        return None
    if norm == "in":
        return nn.InstanceNorm2d(channels, affine=False)
    if norm == "ln":
        return ChannelLayerNorm(channels)
    if norm == "adain":
        return AdaptiveInstanceNorm(channels)
    raise ValueError(f"unknown norm {norm!r}")


def _activation(activation: Activation) -> nn.Module | None:
    if activation == "relu":
        return nn.ReLU(inplace=True)
    if activation == "lrelu":
        return nn.LeakyReLU(0.2, inplace=True)
    if activation == "tanh":
        return nn.Tanh()
    if activation == "none":
        return None
    raise ValueError(f"unknown activation {activation!r}")


class ConvBlock(nn.Module):
    """Padding → conv → norm → activation; the unit every MUNIT network is made of.

    Args:
        in_channels, out_channels: channel counts.
        kernel_size, stride, padding: as nn.Conv2d; padding uses `pad_type`.
        norm: "none", "in" (instance), "ln" (MUNIT layer norm) or "adain" (needs params in forward).
        activation: "relu", "lrelu" (slope 0.2), "tanh" or "none".
        pad_type: "reflect" (the paper's choice), "replicate" or "zeros".
    """

    def __init__(
        self,
        in_channels: int,
        out_channels: int,
        kernel_size: int,
        stride: int = 1,
        padding: int = 0,
        norm: Norm = "none",
        activation: Activation = "relu",
        pad_type: PadType = "reflect",
    ):
        super().__init__()
        self.conv = nn.Conv2d(
            in_channels, out_channels, kernel_size, stride, padding,
            padding_mode=pad_type, bias=True,
        )
        self.norm = _norm(norm, out_channels)
        self.act = _activation(activation)

    @property
    def num_adain_params(self) -> int:
        return self.norm.num_params if isinstance(self.norm, AdaptiveInstanceNorm) else 0

    def forward(self, x: torch.Tensor, adain_params: torch.Tensor | None = None) -> torch.Tensor:
        return self.norm_and_activate(self.conv(x), adain_params)

    def norm_and_activate(self, x: torch.Tensor, adain_params: torch.Tensor | None = None) -> torch.Tensor:
        """What follows the conv: norm (AdaIN with its parameters), then the activation."""
        if isinstance(self.norm, AdaptiveInstanceNorm):
            if adain_params is None:
                raise ValueError("an AdaIN block needs adain_params in forward()")
            x = self.norm(x, adain_params)
        elif self.norm is not None:
            x = self.norm(x)
        if self.act is not None:
            x = self.act(x)
        return x


class ResBlock(nn.Module):
    """Two 3×3 ConvBlocks with a skip connection (activation only after the first)."""

    def __init__(self, channels: int, norm: Norm = "in", activation: Activation = "relu",
                 pad_type: PadType = "reflect"):
        super().__init__()
        self.block1 = ConvBlock(channels, channels, 3, 1, 1, norm, activation, pad_type)
        self.block2 = ConvBlock(channels, channels, 3, 1, 1, norm, "none", pad_type)

    @property
    def num_adain_params(self) -> int:
        return self.block1.num_adain_params + self.block2.num_adain_params

    def forward(self, x: torch.Tensor, adain_params: torch.Tensor | None = None) -> torch.Tensor:
        if adain_params is None:
            return x + self.block2(self.block1(x))
        n1 = self.block1.num_adain_params
        y = self.block1(x, adain_params[:, :n1])
        y = self.block2(y, adain_params[:, n1:])
        return x + y


class MLP(nn.Module):
    """Style code → AdaIN parameters: `n_layers` linear layers with ReLU between them."""

    def __init__(self, in_dim: int, out_dim: int, hidden_dim: int = 256, n_layers: int = 3):
        super().__init__()
        if n_layers < 1:
            raise ValueError("n_layers must be >= 1")
        layers: list[nn.Module] = []
        dim = in_dim
        for _ in range(n_layers - 1):
            layers += [nn.Linear(dim, hidden_dim), nn.ReLU(inplace=True)]
            dim = hidden_dim
        layers.append(nn.Linear(dim, out_dim))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1))


# Nearest ×2 upsampling followed by a k×k conv equals, at every output pixel of phase
# (dy, dx) ∈ {0,1}², a (k//2+1)-wide conv of the *low-resolution* input whose taps are sums
# of the original taps (neighbouring upsampled pixels are equal). Four phase kernels, one
# conv and a pixel shuffle give the same result with 36 instead of 100 multiply-adds per
# output pixel for k = 5. With replicate or zero padding this is exact everywhere; with
# reflect padding the outermost output row/column on each side differs and is recomputed
# directly from a thin strip.


def _low_res_pad(kernel_size: int) -> int:
    """Low-resolution reach of the folded kernel on each side: ceil((k//2) / 2)."""
    return (kernel_size // 2 + 1) // 2


def _phase_taps(kernel_size: int, phase: int, device, dtype) -> torch.Tensor:
    """(2·pad+1, k) 0/1 matrix: which original taps fold onto each low-resolution tap."""
    half, pad = kernel_size // 2, _low_res_pad(kernel_size)
    taps = torch.zeros(2 * pad + 1, kernel_size, device=device, dtype=dtype)
    for a in range(kernel_size):
        # output pixel 2m+phase reads upsampled row 2m+phase+a-half, i.e. low-res row m + (phase+a-half)//2
        taps[(phase + a - half) // 2 + pad, a] = 1.0
    return taps


def phase_weight(weight: torch.Tensor) -> torch.Tensor:
    """(Cout, Cin, k, k) conv weight → (4·Cout, Cin, K, K) polyphase weight in pixel-shuffle order."""
    k = weight.shape[-1]
    r = [_phase_taps(k, p, weight.device, weight.dtype) for p in (0, 1)]
    phases = [torch.einsum("ya,oiab,xb->oiyx", r[dy], weight, r[dx]) for dy in (0, 1) for dx in (0, 1)]
    cout, cin, kk = weight.shape[0], weight.shape[1], r[0].shape[0]
    return torch.stack(phases, dim=1).reshape(cout * 4, cin, kk, kk)


def upsample2x_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                    pad_type: str = "reflect") -> torch.Tensor:
    """conv2d(pad(upsample_nearest_2x(x)), weight, bias) with "same" padding, computed polyphase."""
    k = weight.shape[-1]
    if k % 2 == 0 or k < 3 or weight.shape[-2] != k or min(x.shape[-2:]) < k // 2 + 2:
        return _upsample2x_conv_direct(x, weight, bias, pad_type)
    half = k // 2
    mode = {"reflect": "replicate", "replicate": "replicate", "zeros": "constant"}[pad_type]
    xp = F.pad(x, (_low_res_pad(k),) * 4, mode=mode)
    b4 = bias.repeat_interleave(4) if bias is not None else None
    y = F.pixel_shuffle(F.conv2d(xp, phase_weight(weight), b4), 2)
    if pad_type == "reflect":
        y = _fix_reflect_border(y, x, weight, bias, half)
    return y


def _upsample2x_conv_direct(x, weight, bias, pad_type):
    u = F.interpolate(x, scale_factor=2, mode="nearest")
    half = weight.shape[-1] // 2
    if pad_type == "zeros":
        return F.conv2d(u, weight, bias, padding=half)
    return F.conv2d(F.pad(u, (half,) * 4, mode=pad_type), weight, bias)


def _fix_reflect_border(y, x, weight, bias, half):
    """Recompute the outermost `half - 1` output rows/columns on each side directly.

    Reflect and replicate padding of the upsampled image agree on the first padded row
    (both repeat x[0]) and differ from the second on, so only outputs whose window reaches
    two or more rows past the edge differ. Each is recomputed from a strip of `half + 1`
    low-resolution rows (its whole receptive field), convolving only the padded rows
    those outputs read, and written over `y` (a fresh tensor; autograd tracks the writes).
    """
    bad = half - 1
    if bad <= 0:
        return y
    n = half + 1
    for dim in (-2, -1):
        length = x.shape[dim]
        y.narrow(dim, 0, bad).copy_(_edge_outputs(x.narrow(dim, 0, n), weight, bias, half, bad, dim, end=False))
        y.narrow(dim, y.shape[dim] - bad, bad).copy_(
            _edge_outputs(x.narrow(dim, length - n, n), weight, bias, half, bad, dim, end=True))
    return y


def _edge_outputs(strip, weight, bias, half, count, dim, end):
    """The `count` outputs at one edge of upsample→reflect-pad→conv, from a strip at that edge."""
    padded = F.pad(F.interpolate(strip, scale_factor=2, mode="nearest"), (half,) * 4, mode="reflect")
    rows = count + 2 * half  # padded rows that the first (last) `count` outputs read
    start = padded.shape[dim] - rows if end else 0
    return F.conv2d(padded.narrow(dim, start, rows), weight, bias)


class UpsampleConvBlock(ConvBlock):
    """Nearest ×2 upsampling + k×k conv (+ norm + activation), as MUNIT's decoder has it.

    Same parameters and output as `Upsample(2) → ConvBlock(k, padding=k//2)`, computed in the
    polyphase form above (2.8× fewer multiply-adds for k = 5), forward and backward.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int = 5, norm: Norm = "ln",
                 activation: Activation = "relu", pad_type: PadType = "reflect"):
        super().__init__(in_channels, out_channels, kernel_size, 1, kernel_size // 2, norm, activation, pad_type)
        self.pad_type = pad_type

    def forward(self, x: torch.Tensor, adain_params: torch.Tensor | None = None) -> torch.Tensor:
        return self.norm_and_activate(upsample2x_conv(x, self.conv.weight, self.conv.bias, self.pad_type),
                                      adain_params)


# --------------------------------------------------------------------------- few-channel output conv
# A decoder ends in a 7×7 conv to 1 (grayscale) channel. oneDNN (PyTorch's CPU convs)
# computes output channels in blocks of 16, so that conv costs as much as a 16-channel one:
# ~9 % of a 256² render for ~1.4 % of its multiply-adds. As a 1×1 conv to the k² per-tap
# maps followed by k² shifted sums it takes about 1/4 of the time (same result up to
# rounding; sums in fp32).

def tap_sum_conv2d(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """conv2d(x, weight, bias) (valid, stride 1) for weights with few output channels."""
    n, c, hp, wp = x.shape
    co, k = weight.shape[0], weight.shape[-1]
    h, w = hp - k + 1, wp - k + 1
    taps = F.conv2d(x, weight.permute(0, 2, 3, 1).reshape(co * k * k, c, 1, 1)).view(n, co, k * k, hp, wp)
    acc = torch.promote_types(x.dtype, torch.float32)  # bf16 tap maps are summed in fp32
    out = taps[:, :, 0, :h, :w].to(acc, copy=True)
    for t in range(1, k * k):
        i, j = divmod(t, k)
        out += taps[:, :, t, i:i + h, j:j + w]
    if bias is not None:
        out += bias.to(acc).view(1, co, 1, 1)
    return out.to(x.dtype)


class OutputConvBlock(ConvBlock):
    """A stride-1 ConvBlock with few output channels (a decoder's last layer), always in fp32.

    Same parameters as ConvBlock. The conv and its activation (tanh) run in fp32 on every
    device and under any autocast, with the weights in fp32 even when the rest of the network
    was cast to bf16: in bf16 a tanh output lies on a grid of 1/256 wherever |y| >= 0.5, so a
    16-bit PNG of it would hold ~9 bits in lung and bone. The layer is ~1.4 % of a decoder's
    multiply-adds.

    On a CPU without autograd (synthesis, sample grids) the conv runs as `tap_sum_conv2d`.
    Training keeps the direct conv (its backward is the cheap one there), GPUs too (the
    16-channel blocking is oneDNN's). `tap_sum` overrides that choice (class or instance
    attribute): None picks as above, False always takes the direct conv (the GPU path, e.g. to
    test it on a CPU), True takes the tap sums wherever the layer's shape allows.
    """

    tap_sum: bool | None = None

    def uses_tap_sum(self, x: torch.Tensor) -> bool:
        """Whether forward(x) computes the conv as tap sums (see the class docstring)."""
        conv = self.conv
        k = conv.kernel_size[0]
        if (self.tap_sum is False or conv.padding_mode not in _TAP_SUM_PADDING or conv.stride != (1, 1)
                or conv.kernel_size != (k, k) or conv.padding != (conv.padding[0],) * 2
                or conv.dilation != (1, 1) or conv.groups != 1 or conv.out_channels * k * k > 64):
            return False
        return self.tap_sum is True or (not torch.is_grad_enabled() and x.device.type == "cpu")

    def forward(self, x: torch.Tensor, adain_params: torch.Tensor | None = None) -> torch.Tensor:
        conv = self.conv
        dtype = torch.promote_types(torch.promote_types(x.dtype, conv.weight.dtype), torch.float32)
        upcast = torch.is_autocast_enabled(x.device.type) or x.dtype != dtype
        with torch.autocast(x.device.type, enabled=False):  # fp32 at least (fp64 stays fp64)
            x = x.to(dtype)
            weight = conv.weight.to(dtype)
            bias = conv.bias.to(dtype) if conv.bias is not None else None
            if not self.uses_tap_sum(x):
                if upcast and x.device.type == "cpu":
                    # oneDNN's fp32 conv to one channel runs 1.2-1.7× faster channels_last (forward +
                    # backward, 64²-256²), near the bf16 conv's time. fp32 runs keep the plain conv.
                    return self.norm_and_activate(_conv_channels_last(conv, x, weight, bias), adain_params)
                return self.norm_and_activate(conv._conv_forward(x, weight, bias), adain_params)
            p = conv.padding[0]
            if p:
                x = F.pad(x, (p,) * 4, mode=_TAP_SUM_PADDING[conv.padding_mode])
            return self.norm_and_activate(tap_sum_conv2d(x, weight, bias), adain_params)


_TAP_SUM_PADDING = {"reflect": "reflect", "replicate": "replicate", "zeros": "constant"}


def _conv_channels_last(conv: nn.Conv2d, x: torch.Tensor, weight: torch.Tensor,
                        bias: torch.Tensor | None) -> torch.Tensor:
    """`conv._conv_forward(x, weight, bias)` with input and weight in channels_last layout."""
    padding = conv.padding
    if conv.padding_mode != "zeros":
        x, padding = F.pad(x, conv._reversed_padding_repeated_twice, mode=conv.padding_mode), 0
    return F.conv2d(x.contiguous(memory_format=torch.channels_last),
                    weight.contiguous(memory_format=torch.channels_last), bias,
                    conv.stride, padding, conv.dilation, conv.groups)


def cast_for_rendering(module: nn.Module, dtype: torch.dtype) -> nn.Module:
    """`module.to(dtype)`, except its `OutputConvBlock`s, which keep their fp32 weights (they
    run in fp32 anyway; a bf16 copy of their weights would only round them). In place."""
    outputs = [m for m in module.modules() if isinstance(m, OutputConvBlock)]
    saved = [{k: v.detach().clone() for k, v in m.state_dict().items()} for m in outputs]
    module.to(dtype)
    for m, state in zip(outputs, saved):
        m.float().load_state_dict(state)
    return module
