"""MUNIT generator: content encoder, style encoder, AdaIN decoder (Huang et al. 2018, §3/App. B).

encode(x) → (content, style); decode(content, style) → image. One input channel end to
end: grayscale radiographs are never converted to RGB here.

Two output modes (`output`):
- "image": the paper's; the decoder draws the whole image (tanh).
- "residual_mask": the decoder draws a change Δ and a mask m ∈ [0, 1] (one channel each) and
  the output is clamp(source + m ⊙ Δ, -1, 1), `source` being the image the content code came
  from. MUNIT's style is global (one AdaIN scale/shift per channel over the whole image), so in
  "image" mode a global intensity shift is the cheapest way to look like the other domain; a
  masked residual makes "change only a region" the easy path instead (VA-GAN, Baumgartner et al.
  2018; attention-guided translation, Mejjati et al. 2018). The head starts at zero, so an
  untrained generator is the identity (Δ = 0) and only the change has to be learned.
"""

from __future__ import annotations

from typing import Literal, NamedTuple

import torch
from torch import nn
from torch.nn import functional as F

from xraymunit.models.blocks import MLP, ConvBlock, OutputConvBlock, PadType, ResBlock, UpsampleConvBlock


OutputMode = Literal["image", "residual_mask"]
OUTPUT_MODES = ("image", "residual_mask")


class Decoded(NamedTuple):
    """A decoder's output: the image, and in "residual_mask" mode its mask m and change Δ (else None)."""

    image: torch.Tensor
    mask: torch.Tensor | None
    delta: torch.Tensor | None


def compose_residual(raw: torch.Tensor, source: torch.Tensor) -> Decoded:
    """The residual head's two raw channels + the source image → clamp(source + m ⊙ Δ, -1, 1).

    Δ = 2·tanh (any value in [-1, 1] can reach any other), m = sigmoid; fp32 like the image head."""
    raw = raw.float()
    delta = 2.0 * torch.tanh(raw[:, :1])
    mask = torch.sigmoid(raw[:, 1:2])
    image = (source.float() + mask * delta).clamp(-1.0, 1.0)
    return Decoded(image, mask, delta)


class ContentEncoder(nn.Module):
    """Strided convs + residual blocks, all instance-normalised (removes per-image style stats).

    Args:
        in_channels: image channels (1 for radiographs).
        dim: channels after the first 7×7 conv; doubled at each downsampling.
        n_downsample: number of stride-2 4×4 convs (the paper: 2).
        n_res: residual blocks at the bottleneck (the paper: 4).
        pad_type: padding of every conv.
    """

    def __init__(self, in_channels: int = 1, dim: int = 64, n_downsample: int = 2, n_res: int = 4,
                 pad_type: PadType = "reflect"):
        super().__init__()
        layers: list[nn.Module] = [ConvBlock(in_channels, dim, 7, 1, 3, "in", "relu", pad_type)]
        for _ in range(n_downsample):
            layers.append(ConvBlock(dim, dim * 2, 4, 2, 1, "in", "relu", pad_type))
            dim *= 2
        layers += [ResBlock(dim, "in", "relu", pad_type) for _ in range(n_res)]
        self.net = nn.Sequential(*layers)
        self.out_channels = dim

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class StyleEncoder(nn.Module):
    """Strided convs without normalisation, global average pool, 1×1 conv to the style code.

    No normalisation: instance norm would erase the very statistics that carry style.

    Args:
        in_channels: image channels.
        dim: channels after the first conv; doubled for the first two downsamplings only.
        style_dim: length of the style code (the paper: 8).
        n_downsample: stride-2 convs (the paper: 4).
        pad_type: padding of every conv.
    """

    def __init__(self, in_channels: int = 1, dim: int = 64, style_dim: int = 8, n_downsample: int = 4,
                 pad_type: PadType = "reflect"):
        super().__init__()
        layers: list[nn.Module] = [ConvBlock(in_channels, dim, 7, 1, 3, "none", "relu", pad_type)]
        for i in range(n_downsample):
            out = dim * 2 if i < 2 else dim
            layers.append(ConvBlock(dim, out, 4, 2, 1, "none", "relu", pad_type))
            dim = out
        self.features = nn.Sequential(*layers)
        self.head = nn.Conv2d(dim, style_dim, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = self.features(x)
        x = F.adaptive_avg_pool2d(x, 1)
        return self.head(x).flatten(1)  # (B, style_dim)


class Decoder(nn.Module):
    """AdaIN residual blocks, then (nearest ×2 upsample + 5×5 conv + layer norm) steps, 7×7 conv + tanh.

    forward(content, adain_params): `adain_params` (B, num_adain_params) come from the
    style MLP; they are split across the residual blocks in order.

    Args:
        content_channels: channels of the content code.
        out_channels: image channels.
        n_upsample: upsampling steps (mirror of the content encoder's downsampling).
        n_res: AdaIN residual blocks.
        pad_type: padding of every conv.
    """

    def __init__(self, content_channels: int, out_channels: int = 1, n_upsample: int = 2, n_res: int = 4,
                 pad_type: PadType = "reflect", activation: str = "tanh"):
        super().__init__()
        dim = content_channels
        self.res_blocks = nn.ModuleList(ResBlock(dim, "adain", "relu", pad_type) for _ in range(n_res))
        up: list[nn.Module] = []
        for _ in range(n_upsample):
            up.append(UpsampleConvBlock(dim, dim // 2, 5, "ln", "relu", pad_type))
            dim //= 2
        up.append(OutputConvBlock(dim, out_channels, 7, 1, 3, "none", activation, pad_type))
        self.upsample = nn.Sequential(*up)

    @property
    def num_adain_params(self) -> int:
        return sum(block.num_adain_params for block in self.res_blocks)

    def forward(self, content: torch.Tensor, adain_params: torch.Tensor) -> torch.Tensor:
        if adain_params.shape[1] != self.num_adain_params:
            raise ValueError(f"expected {self.num_adain_params} AdaIN params, got {adain_params.shape[1]}")
        x, offset = content, 0
        for block in self.res_blocks:
            n = block.num_adain_params
            x = block(x, adain_params[:, offset : offset + n])
            offset += n
        return self.upsample(x)

    def shared_features(self, content: torch.Tensor) -> torch.Tensor | None:
        """What every style of one content code shares: the first residual conv of the
        content, instance-normalised (before that block's AdaIN); None without residual
        blocks. Compute it once per content code and pass it to each `render_styles` call."""
        if not self.res_blocks:
            return None
        conv = self.res_blocks[0].block1
        return F.instance_norm(conv.conv(content), eps=conv.norm.eps)

    def render_styles(self, content: torch.Tensor, adain_params: torch.Tensor,
                      shared: torch.Tensor | None = None) -> torch.Tensor:
        """Decode ONE content code (1, C, h, w) with N AdaIN parameter sets (N, P) → (N, out, H, W).

        Equal to `forward(content.expand(N, ...), adain_params)`, cheaper: the first conv of
        the first residual block and its instance-norm statistics depend on the content
        only, so they are computed once (`shared`, from `shared_features`, or here) and
        broadcast over the N styles.
        """
        if content.shape[0] != 1:
            raise ValueError("render_styles takes a single content code (batch 1)")
        if adain_params.shape[1] != self.num_adain_params or not self.res_blocks:
            return self.forward(content.expand(adain_params.shape[0], -1, -1, -1), adain_params)
        first = self.res_blocks[0]
        conv = first.block1
        c = conv.conv.out_channels
        y = self.shared_features(content) if shared is None else shared  # shared by every style
        shift, scale = adain_params[:, :c], adain_params[:, c : 2 * c]
        y = y * scale[:, :, None, None] + shift[:, :, None, None]
        y = conv.act(y) if conv.act is not None else y
        n1 = first.block1.num_adain_params
        x = content + first.block2(y, adain_params[:, n1 : first.num_adain_params])
        offset = first.num_adain_params
        for block in self.res_blocks[1:]:
            n = block.num_adain_params
            x = block(x, adain_params[:, offset : offset + n])
            offset += n
        return self.upsample(x)


class AdaINGenerator(nn.Module):
    """One domain's auto-encoder: content + style encoders, style MLP, AdaIN decoder.

    Args:
        in_channels: image channels (1: grayscale end to end).
        dim: base channel count (the paper: 64).
        style_dim: style code length (the paper: 8).
        n_downsample: content downsamplings (the paper: 2).
        n_res: residual blocks in content encoder and decoder (the paper: 4).
        mlp_dim: hidden width of the style MLP (the paper: 256).
        mlp_layers: layers of the style MLP (the paper: 3).
        style_downsample: style-encoder downsamplings (the paper: 4).
        pad_type: padding of every conv (the paper: reflect).
        output: "image" (the paper) or "residual_mask" (see the module docstring).
    """

    def __init__(self, in_channels: int = 1, dim: int = 64, style_dim: int = 8, n_downsample: int = 2,
                 n_res: int = 4, mlp_dim: int = 256, mlp_layers: int = 3, style_downsample: int = 4,
                 pad_type: PadType = "reflect", output: OutputMode = "image"):
        super().__init__()
        if output not in OUTPUT_MODES:
            raise ValueError(f"output must be one of {OUTPUT_MODES}, got {output!r}")
        if output == "residual_mask" and in_channels != 1:
            raise ValueError("output 'residual_mask' draws one mask and one change channel: in_channels must be 1")
        self.style_dim, self.output = style_dim, output
        self.content_encoder = ContentEncoder(in_channels, dim, n_downsample, n_res, pad_type)
        self.style_encoder = StyleEncoder(in_channels, dim, style_dim, style_downsample, pad_type)
        head = (in_channels, "tanh") if output == "image" else (2, "none")
        self.decoder = Decoder(self.content_encoder.out_channels, head[0], n_downsample, n_res, pad_type, head[1])
        self.mlp = MLP(style_dim, self.decoder.num_adain_params, mlp_dim, mlp_layers)

    @property
    def residual(self) -> bool:
        return self.output == "residual_mask"

    def reset_output_head(self) -> None:
        """Residual mode: zero the last conv, so Δ = 0 and the untrained generator is the identity
        (called after weight init; no-op in image mode)."""
        if self.residual:
            last = self.decoder.upsample[-1].conv
            with torch.no_grad():
                last.weight.zero_()
                if last.bias is not None:
                    last.bias.zero_()

    def _finish(self, raw: torch.Tensor, source: torch.Tensor | None) -> Decoded:
        if not self.residual:
            return Decoded(raw, None, None)
        if source is None:
            raise ValueError("output 'residual_mask' needs the source image the content code came from")
        if source.shape[0] != raw.shape[0]:
            source = source.expand(raw.shape[0], -1, -1, -1)
        return compose_residual(raw, source)

    def encode(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.content_encoder(x), self.style_encoder(x)

    def encode_content(self, x: torch.Tensor) -> torch.Tensor:
        return self.content_encoder(x)

    def encode_style(self, x: torch.Tensor) -> torch.Tensor:
        return self.style_encoder(x)

    def decode(self, content: torch.Tensor, style: torch.Tensor, source: torch.Tensor | None = None) -> torch.Tensor:
        """The image of `content` with `style`; `source`: the images the content codes came from
        (needed in residual_mask mode, ignored in image mode)."""
        return self.decode_parts(content, style, source).image

    def decode_parts(self, content: torch.Tensor, style: torch.Tensor,
                     source: torch.Tensor | None = None) -> Decoded:
        """Like `decode`, with the mask and change of residual_mask mode (None in image mode)."""
        return self._finish(self.decoder(content, self.mlp(style)), source)

    def render(self, content: torch.Tensor, styles: torch.Tensor, shared: torch.Tensor | None = None,
               source: torch.Tensor | None = None) -> torch.Tensor:
        """One content code (1, C, h, w) rendered with each of N style codes (N, style_dim);
        `shared`: `decoder.shared_features(content)`, computed once for all calls on that code;
        `source`: the (1, 1, H, W) image of that code (residual_mask mode)."""
        return self.render_parts(content, styles, shared, source).image

    def render_parts(self, content: torch.Tensor, styles: torch.Tensor, shared: torch.Tensor | None = None,
                     source: torch.Tensor | None = None) -> Decoded:
        """`render` with the mask and change of residual_mask mode (None in image mode)."""
        return self._finish(self.decoder.render_styles(content, self.mlp(styles), shared), source)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Within-domain reconstruction."""
        content, style = self.encode(x)
        return self.decode(content, style, x)
