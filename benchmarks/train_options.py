"""Per-step cost of the issue-20 training options against today's step, in one process, interleaved.

    python benchmarks/train_options.py                     # 64² and 128², batch 4, the CPU recipe's networks
    python benchmarks/train_options.py --sizes 64 --amp none

Variants (configs/munit_cxr_128_cpu.yaml, perceptual off as in that recipe):
  base     today's step
  aug      + loss.d_augment=[brightness, contrast, translation, cutout] (prob 1)
  apa      + loss.apa=0.2
  resid    + model.output=residual_mask (no extra terms: the output mode alone)
  resid+   + residual_mask with identity, mask sparsity and smoothness terms
  both     aug + resid+
Every round times each variant for a few steps in turn, so a load change on the machine hits all of
them alike; the median step time per variant and its ratio to `base` are reported.
Writes benchmarks/results/train_options.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import git_revision, machine, write_results  # noqa: E402

AUG = "loss.d_augment=[brightness,contrast,translation,cutout]"
RESID = ("model.output=residual_mask",)
TERMS = ("loss.identity=1", "loss.mask_sparsity=0.1", "loss.mask_smoothness=0.1")
VARIANTS = {"base": (), "aug": (AUG,), "apa": ("loss.apa=0.2",), "resid": RESID, "resid+": RESID + TERMS,
            "both": (AUG,) + RESID + TERMS}


def build(size: int, batch: int, sets: tuple[str, ...], amp: str):
    import torch

    from xraymunit import config as C
    from xraymunit.checkpoint import build_networks
    from xraymunit.config.train import TrainConfig
    from xraymunit.runtime import amp_dtype
    from xraymunit.training.step import MunitStep, adam, aug_generator

    cfg = C.load(TrainConfig, "munit_cxr_128_cpu", [f"data.load_size={size}", f"data.crop_size={size}",
                                                    f"train.amp={amp}", *sets])
    cfg.validate()
    gens, dis = build_networks(cfg)
    device = torch.device("cpu")
    step = MunitStep(gens, dis, adam(gens.parameters(), cfg.optim), adam(dis.parameters(), cfg.optim), cfg.loss,
                     None, device, amp_dtype(cfg.train.amp, device))
    g = torch.Generator().manual_seed(0)
    x_a, x_b = (torch.rand(batch, 1, size, size, generator=g) * 2 - 1 for _ in range(2))
    s_a, s_b = (torch.randn(batch, cfg.model.style_dim, generator=g) for _ in range(2))
    counter = iter(range(10**9))

    def run() -> None:
        i = next(counter)
        step(x_a, x_b, s_a, s_b, aug_generator=aug_generator(0, i, 0) if step.needs_aug_generator else None)

    return run, str(amp_dtype(cfg.train.amp, device) or "fp32").replace("torch.", "")


def measure(size: int, batch: int, amp: str, rounds: int, per_round: int) -> list[dict]:
    runs = {name: build(size, batch, sets, amp) for name, sets in VARIANTS.items()}
    for run, _ in runs.values():
        run()  # warm-up
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(rounds):
        for name, (run, _) in runs.items():
            for _ in range(per_round):
                t = time.perf_counter()
                run()
                times[name].append(time.perf_counter() - t)
    base = statistics.median(times["base"])
    rows = []
    for name, ts in times.items():
        med = statistics.median(ts)
        rows.append({"variant": name, "sets": list(VARIANTS[name]), "size": size, "batch": batch,
                     "dtype": runs[name][1], "step_s_median": med, "steps_timed": len(ts),
                     "ratio_vs_base": med / base})
        print(f"{size}² b{batch} {runs[name][1]:8s} {name:7s}: {med * 1000:7.1f} ms/step  ×{med / base:.3f}",
              flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sizes", default="64,128")
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--amp", default="auto", help="auto (bf16 where the CPU has it), bf16 or none")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--per-round", type=int, default=3)
    args = ap.parse_args()
    rows = []
    for size in (int(s) for s in args.sizes.split(",")):
        rows += measure(size, args.batch, args.amp, args.rounds, args.per_round)
    payload = {"benchmark": "train_options", "machine": machine(), "git": git_revision(), "rows": rows}
    print(f"written {write_results('train_options' + ('' if args.amp == 'auto' else '_' + args.amp), payload)}")


if __name__ == "__main__":
    main()
