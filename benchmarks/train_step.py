"""Throughput of the full MUNIT training step (discriminator + generator update).

    python benchmarks/train_step.py                 # CPU grid: 128²/256² × batch 1/8 × perceptual on/off
    python benchmarks/train_step.py --quick         # 128² only
    python benchmarks/train_step.py --device cuda   # the same on a GPU (ours: bf16 + channels_last)
    python benchmarks/train_step.py --sizes 64 --batches 4 --model-config munit_tiny_cpu.yaml  # the default run's

Inputs are already on the device; the device is synchronised after every step. Each
configuration runs in its own subprocess so its peak memory is its own. "ours" is
xraymunit.training.step.MunitStep with the settings `train.amp/channels_last: auto` pick; "ref" is
the reference implementation's computation schedule on the same networks
(benchmarks/reference_step.py), fp32, measured in the same run. Images/s counts images per
domain (batch size / step time), as the reference's iterations do.
Writes benchmarks/results/train_step.json.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import git_revision, machine, peak_rss_mb, write_results  # noqa: E402


def run_one(impl: str, size: int, batch: int, perceptual: bool, device_name: str, steps: int,
            amp: str, channels_last: str, compile_: bool, model_config: str | None = None) -> dict:
    """One configuration's step times. model_config: a training config whose networks (model section) and
    perceptual layer are measured (default: TrainConfig()'s, the paper's)."""
    import torch

    from xraymunit.config.train import TrainConfig
    from xraymunit.losses import LossWeights, PerceptualLoss
    from xraymunit.models import build_vgg16
    from xraymunit.checkpoint import build_networks
    from xraymunit.runtime import amp_dtype, use_channels_last
    from xraymunit.training.step import MunitStep, adam

    device = torch.device(device_name)
    if device.type == "cuda":
        torch.backends.cudnn.benchmark = True
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
    from xraymunit import config

    cfg = config.load(TrainConfig, model_config) if model_config else TrainConfig()
    gens, dis = build_networks(cfg)
    weights = LossWeights(perceptual=1.0 if perceptual else 0.0)
    vgg = build_vgg16("random", cfg.perceptual.layer) if perceptual else None
    if impl == "ref":
        from reference_step import ReferenceScheduleStep, use_reference_layers

        use_reference_layers()  # before any forward: the decoder looks the function up at call time
        gens.to(device), dis.to(device)
        if vgg is not None:
            vgg.to(device)
        step = ReferenceScheduleStep(gens, dis, weights, vgg)
    else:
        dtype = amp_dtype(amp, device)
        cl = use_channels_last(channels_last, device)
        fmt = torch.channels_last if cl else torch.contiguous_format
        gens.to(device, memory_format=fmt), dis.to(device, memory_format=fmt)
        p = PerceptualLoss(vgg).to(device, memory_format=fmt) if vgg is not None else None
        g_run, d_run = (torch.compile(gens), torch.compile(dis)) if compile_ else (gens, dis)
        step = MunitStep(g_run, d_run, adam(gens.parameters(), cfg.optim), adam(dis.parameters(), cfg.optim),
                         weights, p, device, dtype, cl)
    gen = torch.Generator().manual_seed(0)
    x_a = (torch.rand(batch, 1, size, size, generator=gen) * 2 - 1).to(device)
    x_b = (torch.rand(batch, 1, size, size, generator=gen) * 2 - 1).to(device)
    s_a, s_b = torch.randn(batch, 8, generator=gen).to(device), torch.randn(batch, 8, generator=gen).to(device)

    def sync():
        if device.type == "cuda":
            torch.cuda.synchronize()

    warmup = 3 if device.type == "cuda" else 1
    for _ in range(warmup):
        step(x_a, x_b, s_a, s_b)
    sync()
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    times = []
    for _ in range(steps):
        t = time.perf_counter()
        step(x_a, x_b, s_a, s_b)
        sync()
        times.append(time.perf_counter() - t)
    med = sorted(times)[len(times) // 2]
    out = {"impl": impl, "size": size, "batch": batch, "perceptual": perceptual, "device": device_name,
           "model_config": model_config or "TrainConfig() (the paper's networks)",
           "step_s_median": med, "step_s_all": times, "images_per_s": batch / med,
           "peak_rss_mb": peak_rss_mb()}
    if impl == "ours":
        out["amp"] = str(amp_dtype(amp, device)).replace("torch.", "") if amp_dtype(amp, device) else "fp32"
        out["channels_last"] = use_channels_last(channels_last, device)
        out["compile"] = compile_
    if device.type == "cuda":
        out["peak_gpu_mb"] = torch.cuda.max_memory_allocated() / 2**20
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--sizes", default="128,256")
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--perceptual", default="off,on")
    ap.add_argument("--impls", default="ours,ref")
    ap.add_argument("--steps", type=int, default=3, help="timed steps per configuration (median reported)")
    ap.add_argument("--amp", default="auto", help="ours: auto, bf16 or none")
    ap.add_argument("--channels-last", default="auto", help="ours: auto, on or off")
    ap.add_argument("--compile", action="store_true", help="ours: torch.compile the networks")
    ap.add_argument("--model-config", default=None,
                    help="a training config whose networks and perceptual layer are timed (e.g. munit_tiny_cpu.yaml); "
                         "default: the paper's")
    ap.add_argument("--quick", action="store_true", help="128² only")
    ap.add_argument("--tag", default="", help="suffix of the results file")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        print(json.dumps(run_one(**json.loads(args.one))))
        return
    sizes = [128] if args.quick else [int(s) for s in args.sizes.split(",")]
    rows = []
    for size in sizes:
        for batch in [int(b) for b in args.batches.split(",")]:
            for perc in args.perceptual.split(","):
                pair = {}
                for impl in args.impls.split(","):
                    spec = dict(impl=impl, size=size, batch=batch, perceptual=perc == "on", device_name=args.device,
                                steps=args.steps, amp=args.amp, channels_last=args.channels_last,
                                compile_=args.compile, model_config=args.model_config)
                    proc = subprocess.run([sys.executable, __file__, "--one", json.dumps(spec)],
                                          capture_output=True, text=True)
                    if proc.returncode != 0:
                        print(proc.stderr[-2000:], file=sys.stderr)
                        continue
                    row = json.loads(proc.stdout.strip().splitlines()[-1])
                    rows.append(row)
                    pair[impl] = row
                    extra = f" {row.get('amp', 'fp32')}" if impl == "ours" else " fp32"
                    print(f"{impl:4s}{extra:6s} {size}² b{batch} perceptual {perc:3s}: "
                          f"{row['images_per_s']:7.3f} img/s  ({row['step_s_median']:.2f} s/step, "
                          f"peak RSS {row['peak_rss_mb']:.0f} MB"
                          + (f", GPU {row['peak_gpu_mb']:.0f} MB" if "peak_gpu_mb" in row else "") + ")", flush=True)
                if "ours" in pair and "ref" in pair:
                    ratio = pair["ours"]["images_per_s"] / pair["ref"]["images_per_s"]
                    pair["ours"]["speedup_vs_ref"] = ratio
                    print(f"     speed-up ours/ref: {ratio:.2f}×", flush=True)
    payload = {"benchmark": "train_step", "machine": machine(), "git": git_revision(), "rows": rows}
    path = write_results("train_step" + (f"_{args.tag}" if args.tag else ""), payload)
    print(f"written {path}")


if __name__ == "__main__":
    main()
