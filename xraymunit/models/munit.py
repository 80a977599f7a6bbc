"""The two-domain MUNIT system: both generators and both discriminators as two modules.

`MunitGenerators.forward` runs everything the generator losses need in as few calls as
possible: the within-domain reconstruction and the cross-domain translation that share a
decoder are decoded in one batched call (AdaIN params are per sample, so batching is
exact). One forward serves the discriminator update (detached) and the generator update,
instead of the reference's two forwards. Each wrapper has a real `forward` so it can be
wrapped in DistributedDataParallel.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from xraymunit.models.discriminator import MultiScaleDiscriminator
from xraymunit.models.generator import AdaINGenerator


@dataclass
class Translation:
    """Everything one generator forward produces for a batch of (x_a, x_b)."""

    c_a: torch.Tensor
    c_b: torch.Tensor
    s_a_prime: torch.Tensor  # style encoded from x_a
    s_b_prime: torch.Tensor
    x_a_recon: torch.Tensor
    x_b_recon: torch.Tensor
    x_ab: torch.Tensor  # a's content with a random b style
    x_ba: torch.Tensor
    c_a_recon: torch.Tensor  # content re-encoded from x_ab
    c_b_recon: torch.Tensor
    s_a_recon: torch.Tensor  # style re-encoded from x_ba
    s_b_recon: torch.Tensor
    x_aba: torch.Tensor | None  # style-augmented cycle (only if requested)
    x_bab: torch.Tensor | None
    x_ab2: torch.Tensor | None = None  # a's content with a second random b style (diversity term only)
    x_ba2: torch.Tensor | None = None
    m_ab: torch.Tensor | None = None  # residual_mask mode: the mask of x_ab (None in image mode)
    m_ba: torch.Tensor | None = None
    x_aa_id: torch.Tensor | None = None  # identity: x_a through the b→a translator with its own style
    x_bb_id: torch.Tensor | None = None


class MunitGenerators(nn.Module):
    """gen_a (domain A auto-encoder) and gen_b (domain B), see AdaINGenerator for the args."""

    def __init__(self, **generator_kwargs):
        super().__init__()
        self.gen_a = AdaINGenerator(**generator_kwargs)
        self.gen_b = AdaINGenerator(**generator_kwargs)

    @property
    def style_dim(self) -> int:
        return self.gen_a.style_dim

    @property
    def output(self) -> str:
        return self.gen_a.output

    def reset_output_heads(self) -> None:
        """After weight init: residual heads at zero, so both translators start as the identity."""
        self.gen_a.reset_output_head()
        self.gen_b.reset_output_head()

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor, s_a: torch.Tensor, s_b: torch.Tensor,
                with_cycle: bool = False, s_a2: torch.Tensor | None = None,
                s_b2: torch.Tensor | None = None, with_identity: bool = False) -> Translation:
        """s_a2, s_b2: second random styles for the diversity (mode-seeking) term, or None.
        with_identity: also translate each image into its own domain through the cross-domain
        translator (the other generator's content encoder) with its own style (the identity term)."""
        n = x_a.shape[0]
        second = s_a2 is not None and s_b2 is not None
        if with_identity:  # one content-encoder call per generator for both of its inputs
            c_a, c_b_via_a = self.gen_a.encode_content(torch.cat([x_a, x_b])).split(n)
            c_b, c_a_via_b = self.gen_b.encode_content(torch.cat([x_b, x_a])).split(n)
            s_a_prime, s_b_prime = self.gen_a.encode_style(x_a), self.gen_b.encode_style(x_b)
        else:
            c_a, s_a_prime = self.gen_a.encode(x_a)
            c_b, s_b_prime = self.gen_b.encode(x_b)
        # decoder A renders a's reconstruction and b→a (and b→a with a second style, and the identity
        # a→a) in one batch; decoder B likewise. Sources: the images the content codes came from.
        rows_a = [(c_a, s_a_prime, x_a), (c_b, s_a, x_b)] + ([(c_b, s_a2, x_b)] if second else []) + (
            [(c_a_via_b, s_a_prime, x_a)] if with_identity else [])
        rows_b = [(c_b, s_b_prime, x_b), (c_a, s_b, x_a)] + ([(c_a, s_b2, x_a)] if second else []) + (
            [(c_b_via_a, s_b_prime, x_b)] if with_identity else [])
        out_a, out_b = (gen.decode_parts(*(torch.cat(col) for col in zip(*rows)))
                        for gen, rows in ((self.gen_a, rows_a), (self.gen_b, rows_b)))
        a, b = out_a.image.split(n), out_b.image.split(n)
        x_a_recon, x_ba, x_b_recon, x_ab = a[0], a[1], b[0], b[1]
        x_ba2, x_ab2 = (a[2], b[2]) if second else (None, None)
        x_aa_id, x_bb_id = (a[-1], b[-1]) if with_identity else (None, None)
        m_ba = out_a.mask[n:2 * n] if out_a.mask is not None else None
        m_ab = out_b.mask[n:2 * n] if out_b.mask is not None else None
        c_b_recon, s_a_recon = self.gen_a.encode(x_ba)
        c_a_recon, s_b_recon = self.gen_b.encode(x_ab)
        x_aba = self.gen_a.decode(c_a_recon, s_a_prime, x_ab) if with_cycle else None
        x_bab = self.gen_b.decode(c_b_recon, s_b_prime, x_ba) if with_cycle else None
        return Translation(c_a, c_b, s_a_prime, s_b_prime, x_a_recon, x_b_recon, x_ab, x_ba,
                           c_a_recon, c_b_recon, s_a_recon, s_b_recon, x_aba, x_bab, x_ab2, x_ba2,
                           m_ab, m_ba, x_aa_id, x_bb_id)


class MunitDiscriminators(nn.Module):
    """dis_a judges domain-A images, dis_b domain-B images; see MultiScaleDiscriminator for the args."""

    def __init__(self, **discriminator_kwargs):
        super().__init__()
        self.dis_a = MultiScaleDiscriminator(**discriminator_kwargs)
        self.dis_b = MultiScaleDiscriminator(**discriminator_kwargs)

    def forward(self, images_a: torch.Tensor, images_b: torch.Tensor) -> tuple[list[torch.Tensor], list[torch.Tensor]]:
        return self.dis_a(images_a), self.dis_b(images_b)


def init_weights(module: nn.Module, scheme: str = "kaiming", seed: int | None = None) -> None:
    """Initialise conv/linear weights: "kaiming" (fan-in normal, the MUNIT generator) or
    "gaussian" (N(0, 0.02), the MUNIT discriminator); biases zero."""
    gen = torch.Generator().manual_seed(seed) if seed is not None else None
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.Linear)):
            with torch.no_grad():
                if scheme == "kaiming":
                    fan_in = m.weight[0].numel()
                    m.weight.normal_(0.0, (2.0 / fan_in) ** 0.5, generator=gen)
                elif scheme == "gaussian":
                    m.weight.normal_(0.0, 0.02, generator=gen)
                else:
                    raise ValueError(f"unknown init scheme {scheme!r}")
                if m.bias is not None:
                    m.bias.zero_()
