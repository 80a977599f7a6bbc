"""The MUNIT reference implementation's training-step *schedule*, rebuilt on xraymunit's networks.

Used only as the baseline of benchmarks/train_step.py, measured in the same run as our step.
It follows the order of computation of NVlabs/MUNIT's trainer (read for facts, not copied):
  dis_update: fresh style codes → encode both domains → decode both translations →
              discriminator on fake and on real in two separate calls → backward → Adam step;
  gen_update: encode both → 4 separate decoder calls (2 reconstructions, 2 translations) →
              re-encode both translations → (cycle decodes) → adversarial terms through the
              discriminators *with their parameters still requiring grad* → VGG features of
              translation and target (target without grad) → backward → Adam step.
fp32, for-loop Adam (the reference's default on current PyTorch for CPU tensors), no fusion,
and the reference's decoder layers: `use_reference_layers()` makes the decoder upsample with
nn.Upsample and then run the 5×5 conv (xraymunit computes the same result polyphase).
"""

from __future__ import annotations

import torch

from xraymunit.losses import instance_normalized_distance, lsgan_generator, recon_l1
from xraymunit.models import blocks


def use_reference_layers() -> None:
    """Decoder upsampling as the reference computes it: nearest ×2 upsample, then the conv."""
    blocks.upsample2x_conv = blocks._upsample2x_conv_direct


class ReferenceScheduleStep:
    def __init__(self, gens, dis, weights, perceptual_net, lr=1e-4):
        self.gens, self.dis, self.w, self.vgg = gens, dis, weights, perceptual_net
        kw = dict(lr=lr, betas=(0.5, 0.999), weight_decay=1e-4, foreach=False)
        self.gen_opt = torch.optim.Adam(gens.parameters(), **kw)
        self.dis_opt = torch.optim.Adam(dis.parameters(), **kw)

    def _dis_loss(self, dis, fake, real):
        outs_fake, outs_real = dis(fake), dis(real)
        return sum(torch.mean(f**2) + torch.mean((r - 1) ** 2) for f, r in zip(outs_fake, outs_real))

    def __call__(self, x_a, x_b, s_a, s_b):
        g, d, w = self.gens, self.dis, self.w
        # dis_update (its own generator forward)
        self.dis_opt.zero_grad()
        c_a, _ = g.gen_a.encode(x_a)
        c_b, _ = g.gen_b.encode(x_b)
        x_ba = g.gen_a.decode(c_b, s_a)
        x_ab = g.gen_b.decode(c_a, s_b)
        loss_d = w.gan * (self._dis_loss(d.dis_a, x_ba.detach(), x_a) + self._dis_loss(d.dis_b, x_ab.detach(), x_b))
        loss_d.backward()
        self.dis_opt.step()
        # gen_update
        self.gen_opt.zero_grad()
        c_a, s_a_prime = g.gen_a.encode(x_a)
        c_b, s_b_prime = g.gen_b.encode(x_b)
        x_a_recon = g.gen_a.decode(c_a, s_a_prime)
        x_b_recon = g.gen_b.decode(c_b, s_b_prime)
        x_ba = g.gen_a.decode(c_b, s_a)
        x_ab = g.gen_b.decode(c_a, s_b)
        c_b_recon, s_a_recon = g.gen_a.encode(x_ba)
        c_a_recon, s_b_recon = g.gen_b.encode(x_ab)
        total = (w.image_recon * (recon_l1(x_a_recon, x_a) + recon_l1(x_b_recon, x_b))
                 + w.style_recon * (recon_l1(s_a_recon, s_a) + recon_l1(s_b_recon, s_b))
                 + w.content_recon * (recon_l1(c_a_recon, c_a) + recon_l1(c_b_recon, c_b))
                 + w.gan * (lsgan_generator(d.dis_a(x_ba)) + lsgan_generator(d.dis_b(x_ab))))
        if w.cycle > 0:
            x_aba = g.gen_a.decode(c_a_recon, s_a_prime)
            x_bab = g.gen_b.decode(c_b_recon, s_b_prime)
            total = total + w.cycle * (recon_l1(x_aba, x_a) + recon_l1(x_bab, x_b))
        if w.perceptual > 0:
            for fake, target in ((x_ba, x_b), (x_ab, x_a)):
                with torch.no_grad():
                    tf = self.vgg(target)
                total = total + w.perceptual * instance_normalized_distance(self.vgg(fake), tf)
        total.backward()
        self.gen_opt.step()
        return total.detach()
