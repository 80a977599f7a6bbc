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


class MunitGenerators(nn.Module):
    """gen_a (domain A auto-encoder) and gen_b (domain B), see AdaINGenerator for the args."""

    def __init__(self, **generator_kwargs):
        super().__init__()
        self.gen_a = AdaINGenerator(**generator_kwargs)
        self.gen_b = AdaINGenerator(**generator_kwargs)

    @property
    def style_dim(self) -> int:
        return self.gen_a.style_dim

    def forward(self, x_a: torch.Tensor, x_b: torch.Tensor, s_a: torch.Tensor, s_b: torch.Tensor,
                with_cycle: bool = False, s_a2: torch.Tensor | None = None,
                s_b2: torch.Tensor | None = None) -> Translation:
        """s_a2, s_b2: second random styles for the diversity (mode-seeking) term, or None."""
        n = x_a.shape[0]
        c_a, s_a_prime = self.gen_a.encode(x_a)
        c_b, s_b_prime = self.gen_b.encode(x_b)
        # decoder A renders a's reconstruction and b→a (and b→a with a second style) in one batch;
        # decoder B likewise.
        second = s_a2 is not None and s_b2 is not None
        out_a = self.gen_a.decode(torch.cat([c_a, c_b] + ([c_b] if second else [])),
                                  torch.cat([s_a_prime, s_a] + ([s_a2] if second else [])))
        out_b = self.gen_b.decode(torch.cat([c_b, c_a] + ([c_a] if second else [])),
                                  torch.cat([s_b_prime, s_b] + ([s_b2] if second else [])))
        x_a_recon, x_ba = out_a[:n], out_a[n:2 * n]
        x_b_recon, x_ab = out_b[:n], out_b[n:2 * n]
        x_ba2, x_ab2 = (out_a[2 * n:], out_b[2 * n:]) if second else (None, None)
        c_b_recon, s_a_recon = self.gen_a.encode(x_ba)
        c_a_recon, s_b_recon = self.gen_b.encode(x_ab)
        x_aba = self.gen_a.decode(c_a_recon, s_a_prime) if with_cycle else None
        x_bab = self.gen_b.decode(c_b_recon, s_b_prime) if with_cycle else None
        return Translation(c_a, c_b, s_a_prime, s_b_prime, x_a_recon, x_b_recon, x_ab, x_ba,
                           c_a_recon, c_b_recon, s_a_recon, s_b_recon, x_aba, x_bab, x_ab2, x_ba2)


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
