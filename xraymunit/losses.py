"""MUNIT objectives: reconstruction, LSGAN and the domain-invariant perceptual loss.

Every loss is computed in fp32, also when the networks run under bf16 autocast.

`weighted_total` is the one place where the terms are summed with their weights, so a
logged term and its contribution to the gradient can never disagree.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

from xraymunit.config.train import LossConfig as LossWeights  # the term weights: one definition, the config's
from xraymunit.models.munit import Translation


def recon_l1(x: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Mean absolute error (images, content codes and style codes alike), in fp32 under autocast."""
    return torch.mean(torch.abs(x.float() - target.float()))


def lsgan_discriminator(real_outs: list[torch.Tensor], fake_outs: list[torch.Tensor]) -> torch.Tensor:
    """Least-squares GAN loss of a multi-scale discriminator: real → 1, fake → 0, summed over scales."""
    return sum(torch.mean((r.float() - 1.0) ** 2) + torch.mean(f.float() ** 2) for r, f in zip(real_outs, fake_outs))


def lsgan_generator(fake_outs: list[torch.Tensor]) -> torch.Tensor:
    """Least-squares GAN loss of the generator: push fake scores to 1, summed over scales."""
    return sum(torch.mean((f.float() - 1.0) ** 2) for f in fake_outs)


def instance_normalized_distance(features: torch.Tensor, target_features: torch.Tensor) -> torch.Tensor:
    """Squared distance after instance-normalising each feature map (no affine).

    Normalising removes each map's mean and variance — the domain-specific statistics —
    so what remains compared is the spatial layout (content), hence domain-invariant.
    """
    a, b = features.float(), target_features.float()  # fp32 statistics even under bf16 autocast
    return torch.mean((F.instance_norm(a) - F.instance_norm(b)) ** 2)


class PerceptualLoss(nn.Module):
    """Domain-invariant perceptual loss between a translation and its content source.

    The source's features need no gradient, so they are computed under no_grad.
    """

    def __init__(self, feature_net: nn.Module):
        super().__init__()
        self.net = feature_net

    def forward(self, translation: torch.Tensor, source: torch.Tensor) -> torch.Tensor:
        with torch.no_grad():
            target = self.net(source)
        return instance_normalized_distance(self.net(translation), target)


def mode_seeking(x1: torch.Tensor, x2: torch.Tensor, s1: torch.Tensor, s2: torch.Tensor,
                 eps: float = 1e-5) -> torch.Tensor:
    """Mode-seeking term (Mao et al. 2019, MSGAN), per sample: the inverse of the distance between two
    translations of one content over the distance between their style codes. Minimising it pushes
    different styles to give different images — what MUNIT's style reconstruction alone can leave
    weak (styles that barely change the image)."""
    d_img = torch.mean(torch.abs(x1.float() - x2.float()), dim=tuple(range(1, x1.dim())))
    d_style = torch.mean(torch.abs(s1.float() - s2.float()), dim=1)
    return torch.mean(1.0 / (d_img / d_style + eps))


def total_variation(m: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference between neighbouring pixels (rows and columns): small for masks made
    of a few smooth regions, large for speckle."""
    m = m.float()
    return torch.mean(torch.abs(m[..., 1:, :] - m[..., :-1, :])) + torch.mean(torch.abs(m[..., 1:] - m[..., :-1]))


def weighted_total(terms: dict[str, torch.Tensor], weights: LossWeights) -> torch.Tensor:
    """Sum the generator terms with their weights (terms named `<weight>_a` / `<weight>_b`)."""
    total = None
    for name, value in terms.items():
        weight = getattr(weights, name.rsplit("_", 1)[0])
        if weight == 0:
            continue
        total = weight * value if total is None else total + weight * value
    if total is None:
        raise ValueError("every loss weight is zero")
    return total


def generator_terms(t: Translation, s_a: torch.Tensor, s_b: torch.Tensor, x_a: torch.Tensor,
                    x_b: torch.Tensor, dis_outs_ba: list[torch.Tensor], dis_outs_ab: list[torch.Tensor],
                    weights: LossWeights, perceptual: PerceptualLoss | None, s_a2: torch.Tensor | None = None,
                    s_b2: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
    """Every generator loss term, per direction, unweighted.

    dis_outs_ba: dis_a's scores of x_ba; dis_outs_ab: dis_b's scores of x_ab.
    """
    terms = {
        "image_recon_a": recon_l1(t.x_a_recon, x_a),
        "image_recon_b": recon_l1(t.x_b_recon, x_b),
        "style_recon_a": recon_l1(t.s_a_recon, s_a),
        "style_recon_b": recon_l1(t.s_b_recon, s_b),
        "content_recon_a": recon_l1(t.c_a_recon, t.c_a),
        "content_recon_b": recon_l1(t.c_b_recon, t.c_b),
        "gan_a": lsgan_generator(dis_outs_ba),
        "gan_b": lsgan_generator(dis_outs_ab),
    }
    if weights.cycle > 0:
        if t.x_aba is None or t.x_bab is None:
            raise ValueError("the cycle loss is on but the forward ran without with_cycle=True")
        terms["cycle_a"] = recon_l1(t.x_aba, x_a)
        terms["cycle_b"] = recon_l1(t.x_bab, x_b)
    if weights.diversity > 0:
        if t.x_ab2 is None or t.x_ba2 is None or s_a2 is None or s_b2 is None:
            raise ValueError("the diversity term is on but the forward ran without second styles")
        terms["diversity_a"] = mode_seeking(t.x_ba, t.x_ba2, s_a, s_a2)
        terms["diversity_b"] = mode_seeking(t.x_ab, t.x_ab2, s_b, s_b2)
    if weights.identity > 0:
        if t.x_aa_id is None or t.x_bb_id is None:
            raise ValueError("the identity term is on but the forward ran without with_identity=True")
        terms["identity_a"] = recon_l1(t.x_aa_id, x_a)
        terms["identity_b"] = recon_l1(t.x_bb_id, x_b)
    if weights.mask_sparsity > 0 or weights.mask_smoothness > 0:
        if t.m_ab is None or t.m_ba is None:
            raise ValueError("a mask term is on but the generators have no mask (model.output: image)")
        if weights.mask_sparsity > 0:
            terms["mask_sparsity_a"] = t.m_ba.float().mean()
            terms["mask_sparsity_b"] = t.m_ab.float().mean()
        if weights.mask_smoothness > 0:
            terms["mask_smoothness_a"] = total_variation(t.m_ba)
            terms["mask_smoothness_b"] = total_variation(t.m_ab)
    if weights.perceptual > 0:
        if perceptual is None:
            raise ValueError("the perceptual loss is on but no perceptual network was given")
        n = x_a.shape[0]
        # one call for both directions: translations vs their content sources
        with torch.no_grad():
            target = perceptual.net(torch.cat([x_b, x_a]))
        feats = perceptual.net(torch.cat([t.x_ba, t.x_ab]))
        terms["perceptual_a"] = instance_normalized_distance(feats[:n], target[:n])
        terms["perceptual_b"] = instance_normalized_distance(feats[n:], target[n:])
    return terms
