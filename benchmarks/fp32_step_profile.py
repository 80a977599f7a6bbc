"""Where an fp32 training step of the tiny config goes on a CPU (the default run's step without native bf16).

    OMP_NUM_THREADS=1 python benchmarks/fp32_step_profile.py

Prints: the median step time (perceptual loss on and off, contiguous and channels_last), torch profiler's
top operators of one configuration, and the one-channel 7×7 convolutions (first encoder layer, last decoder
layer) timed alone, oneDNN against ATen's own kernel. One thread, as each pytest-xdist worker runs.
"""

from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from xraymunit import config
from xraymunit.checkpoint import build_networks
from xraymunit.config.train import TrainConfig
from xraymunit.losses import LossWeights, PerceptualLoss
from xraymunit.models import build_vgg16
from xraymunit.runtime import cpu_description
from xraymunit.training.step import MunitStep, adam


def make_step(perceptual: bool, channels_last: bool):
    cfg = config.load(TrainConfig, "munit_tiny_cpu")
    gens, dis = build_networks(cfg)
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    gens.to(memory_format=fmt), dis.to(memory_format=fmt)
    weights = LossWeights(perceptual=cfg.loss.perceptual if perceptual else 0.0)
    loss = PerceptualLoss(build_vgg16("random", cfg.perceptual.layer)).to(memory_format=fmt) if perceptual else None
    step = MunitStep(gens, dis, adam(gens.parameters(), cfg.optim), adam(dis.parameters(), cfg.optim), weights, loss,
                     torch.device("cpu"), None, channels_last)
    g, b = torch.Generator().manual_seed(0), cfg.train.batch_size
    batch = (torch.rand(b, 1, 64, 64, generator=g) * 2 - 1, torch.rand(b, 1, 64, 64, generator=g) * 2 - 1,
             torch.randn(b, 8, generator=g), torch.randn(b, 8, generator=g))
    return step, batch


def median_ms(fn, n: int) -> float:
    for _ in range(2):
        fn()
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return sorted(times)[n // 2] * 1000


def main() -> None:
    torch.set_num_threads(1)
    print(cpu_description())
    for perceptual in (True, False):
        for cl in (False, True):
            step, batch = make_step(perceptual, cl)
            print(f"perceptual {perceptual!s:5} channels_last {cl!s:5}: {median_ms(lambda: step(*batch), 8):7.0f} ms/step")
    step, batch = make_step(True, False)
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(3):
            step(*batch)
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=8))
    for cin, cout, batch_n in ((16, 1, 8), (1, 16, 4)):  # decoder's last layer, an encoder's first
        x = torch.randn(batch_n, cin, 70, 70, requires_grad=True)
        w = torch.randn(cout, cin, 7, 7, requires_grad=True)
        for name, enabled in (("oneDNN", True), ("ATen", False)):
            with torch.backends.mkldnn.flags(enabled=enabled):
                fwd = median_ms(lambda: F.conv2d(x.detach(), w.detach()), 20)
                both = median_ms(lambda: F.conv2d(x, w).sum().backward(), 20)
            print(f"conv {cin}->{cout} 7x7 at 64², batch {batch_n}, {name}: forward {fwd:.1f} ms, "
                  f"forward+backward {both:.1f} ms")


if __name__ == "__main__":
    main()
