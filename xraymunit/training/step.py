"""One MUNIT iteration (`MunitStep`), the random style codes of a step, and the optimiser."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from xraymunit.config.train import OptimConfig
from xraymunit.seeding import stable_seed
from xraymunit.losses import LossWeights, PerceptualLoss, generator_terms, lsgan_discriminator, weighted_total
from xraymunit.training import d_augment


class MunitStep:
    """One MUNIT iteration: discriminator update, then generator update, from one generator forward.

    The reference runs the generators twice per iteration (once for each update). Here
    the translations of the single forward are used detached for the discriminator step
    and with their graph for the generator step, which sees the freshly updated
    discriminator — the same order of updates as the reference, one forward less.
    The generator step reads the discriminators with their parameters frozen, so it
    never touches discriminator gradients (and under DDP never triggers their all-reduce).
    """

    def __init__(self, gens: nn.Module, dis: nn.Module, gen_opt: torch.optim.Optimizer,
                 dis_opt: torch.optim.Optimizer, weights: LossWeights, perceptual: PerceptualLoss | None,
                 device: torch.device, amp: torch.dtype | None = None, channels_last: bool = False):
        self.gens, self.dis = gens, dis  # possibly DDP / compiled wrappers
        self.dis_module = unwrap(dis)
        self.gen_opt, self.dis_opt = gen_opt, dis_opt
        self.weights, self.perceptual = weights, perceptual
        self.device, self.amp, self.channels_last = device, amp, channels_last

    def _autocast(self):
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    def __call__(self, x_a: torch.Tensor, x_b: torch.Tensor, s_a: torch.Tensor, s_b: torch.Tensor,
                 real_a: torch.Tensor | None = None, real_b: torch.Tensor | None = None,
                 s_a2: torch.Tensor | None = None, s_b2: torch.Tensor | None = None,
                 aug_generator: torch.Generator | None = None) -> dict[str, torch.Tensor]:
        """x_a, x_b: the generators' inputs; real_a, real_b: the discriminators' real samples (the
        same images without photometric augmentation, `UnpairedDomains`; None: x_a, x_b);
        s_a2, s_b2: second random styles, needed when the diversity term is on; aug_generator: the
        step's seeded source of discriminator-augmentation and APA randomness (`needs_aug_generator`)."""
        w, n = self.weights, x_a.shape[0]
        real_a = x_a if real_a is None else real_a
        real_b = x_b if real_b is None else real_b
        if self.channels_last:
            x_a, x_b, real_a, real_b = (x.contiguous(memory_format=torch.channels_last)
                                        for x in (x_a, x_b, real_a, real_b))
        with self._autocast():
            t = self.gens(x_a, x_b, s_a, s_b, with_cycle=w.cycle > 0,
                          **({"s_a2": s_a2, "s_b2": s_b2} if w.diversity > 0 else {}),
                          **({"with_identity": True} if w.identity > 0 else {}))
        see_a, see_b = self._discriminator_views(n, aug_generator)
        if w.apa > 0:  # some reals replaced by translations: the discriminator cannot trust every real
            real_a = d_augment.pseudo_augment(real_a, t.x_ba, w.apa, aug_generator)
            real_b = d_augment.pseudo_augment(real_b, t.x_ab, w.apa, aug_generator)

        # discriminators: real vs detached translations, real and fake in one batch per domain
        self.dis_module.requires_grad_(True)
        with self._autocast():
            outs_a, outs_b = self.dis(see_a(torch.cat([real_a, t.x_ba.detach()])),
                                      see_b(torch.cat([real_b, t.x_ab.detach()])))
            d_a = lsgan_discriminator([o[:n] for o in outs_a], [o[n:] for o in outs_a])
            d_b = lsgan_discriminator([o[:n] for o in outs_b], [o[n:] for o in outs_b])
            d_total = w.gan * (d_a + d_b)
        self.dis_opt.zero_grad(set_to_none=True)
        d_total.backward()
        self.dis_opt.step()

        # generators: every term against the updated, frozen discriminators
        self.dis_module.requires_grad_(False)
        with self._autocast():
            outs_ba, outs_ab = self.dis_module(see_a(t.x_ba), see_b(t.x_ab))
            terms = generator_terms(t, s_a, s_b, x_a, x_b, outs_ba, outs_ab, w, self.perceptual, s_a2, s_b2)
            g_total = weighted_total(terms, w)
        self.gen_opt.zero_grad(set_to_none=True)
        g_total.backward()
        self.gen_opt.step()
        self.dis_module.requires_grad_(True)

        losses = {f"gen/{k}": v.detach().float() for k, v in terms.items()}
        losses.update({"gen/total": g_total.detach().float(), "dis/a": d_a.detach().float(),
                       "dis/b": d_b.detach().float(), "dis/total": d_total.detach().float()})
        return losses

    @property
    def needs_aug_generator(self) -> bool:
        return bool(self.weights.d_augment) or self.weights.apa > 0

    def _discriminator_views(self, n: int, generator: torch.Generator | None):
        """Per domain, what the discriminator sees of a batch: the batch itself, or with
        loss.d_augment its augmentation with this step's parameters — the same for the reals and
        the fakes of the discriminator update and for the fakes of the generator's adversarial term."""
        w = self.weights
        if not w.d_augment:
            return (lambda x: x), (lambda x: x)
        if generator is None:
            raise ValueError("loss.d_augment is on but the step got no aug_generator")
        pa, pb = (d_augment.draw(w.d_augment, n, w.d_augment_prob, w.d_augment_strength, generator)
                  for _ in range(2))
        return (lambda x: d_augment.apply(x, pa)), (lambda x: d_augment.apply(x, pb))


def aug_generator(seed: int, step: int, rank: int) -> torch.Generator:
    """The seeded randomness of one step's discriminator augmentation: a pure function of (seed, step, rank)."""
    return torch.Generator().manual_seed(stable_seed(seed, "d_augment", step, rank))


def unwrap(module: nn.Module) -> nn.Module:
    """The network inside DDP and torch.compile wrappers."""
    module = getattr(module, "module", module)
    return getattr(module, "_orig_mod", module)


def style_codes(seed: int, step: int, rank: int, batch: int, style_dim: int,
                device: torch.device, which: str = "style") -> tuple[torch.Tensor, torch.Tensor]:
    """The random style codes of one step: N(0, I), a pure function of (seed, step, rank, which);
    which="style2" gives the second styles of the diversity term, independent of the first."""
    gen = torch.Generator().manual_seed(stable_seed(seed, which, step, rank))
    codes = torch.randn(2, batch, style_dim, generator=gen)
    return codes[0].to(device), codes[1].to(device)


def adam(params, optim: OptimConfig) -> torch.optim.Optimizer:
    """Adam with one fused kernel per step where the build has it (else the foreach loop)."""
    kwargs = dict(lr=optim.lr, betas=tuple(optim.betas), weight_decay=optim.weight_decay)
    try:
        return torch.optim.Adam(params, fused=True, **kwargs)
    except (RuntimeError, TypeError):
        return torch.optim.Adam(params, foreach=True, **kwargs)
