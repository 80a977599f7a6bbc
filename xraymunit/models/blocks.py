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
        x = self.conv(x)
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
