"""Multi-scale PatchGAN discriminator (MUNIT/pix2pixHD style), trained with LSGAN."""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from xraymunit.models.blocks import ConvBlock, PadType


class PatchDiscriminator(nn.Module):
    """`n_layers` stride-2 4×4 convs with LeakyReLU(0.2), no normalisation, 1×1 conv to a score map."""

    def __init__(self, in_channels: int = 1, dim: int = 64, n_layers: int = 4, pad_type: PadType = "reflect"):
        super().__init__()
        layers: list[nn.Module] = [ConvBlock(in_channels, dim, 4, 2, 1, "none", "lrelu", pad_type)]
        for _ in range(n_layers - 1):
            layers.append(ConvBlock(dim, dim * 2, 4, 2, 1, "none", "lrelu", pad_type))
            dim *= 2
        layers.append(nn.Conv2d(dim, 1, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class MultiScaleDiscriminator(nn.Module):
    """The same patch discriminator architecture applied at `n_scales` scales (each ½ the last).

    Args:
        in_channels: image channels.
        dim: channels of the first conv (doubled per layer).
        n_layers: stride-2 convs per scale (the paper: 4).
        n_scales: number of scales (the paper: 3).
        pad_type: padding of every conv.

    forward(x) returns a list of score maps, one per scale.
    """

    def __init__(self, in_channels: int = 1, dim: int = 64, n_layers: int = 4, n_scales: int = 3,
                 pad_type: PadType = "reflect"):
        super().__init__()
        self.scales = nn.ModuleList(
            PatchDiscriminator(in_channels, dim, n_layers, pad_type) for _ in range(n_scales)
        )

    def forward(self, x: torch.Tensor) -> list[torch.Tensor]:
        outputs = []
        for i, disc in enumerate(self.scales):
            if i:
                x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
            outputs.append(disc(x))
        return outputs
