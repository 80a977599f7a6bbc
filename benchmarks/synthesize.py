"""Synthesis throughput at 256² with 20 styles per input, against the naive loop, in one run.

    python benchmarks/synthesize.py                  # CPU: 4 inputs × 20 styles
    python benchmarks/synthesize.py --device cuda --inputs 64

naive: for every output, encode the input (content + style, as MUNIT's `encode`) and
       decode one image (batch 1), fp32, with the reference's decoder layers (nn.Upsample then
       the 5×5 conv; the last 7×7 conv direct) — what a straightforward loop over the reference
       model does.
core:  xraymunit's path without file writes: content encoded once per input, the N styles
       rendered in batches (first residual conv computed once per input and shared, polyphase
       upsampling convs, the last conv as tap sums) of
       `auto_batch_size` styles (CPU 256²: 2; CUDA: 20); fp32 (`core`) and bf16 (`core_bf16_cpu`:
       content under autocast, rendering by the decoder cast to bf16 once, inputs rendered side
       by side in the stage's render threads, one op-thread each) on CPU, bf16 on CUDA. Variants
       on CPU, each one change away from `core_bf16_cpu`: `_ops_threaded` one input at a time
       with every op on all threads; `_autocast` that, rendering under autocast (the cast on
       every call); `_batch20` that, all 20 styles in one call; `core_compiled` (with --compile)
       `_ops_threaded` through torch.compile. The bf16 CPU rows run only on CPUs with native
       bf16 (where `precision auto` picks it); elsewhere `core_compiled` compiles the fp32 `core`.
stage: the whole `xraymunit.synthesize()` call with its defaults (precision auto: bf16 on
       CUDA and on CPUs with native bf16), 16-bit PNG writing included, on a cohort folder and
       checkpoint made here with the paper-sized (untrained) generator.
Writes benchmarks/results/synthesize.json.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from common import git_revision, machine, peak_rss_mb, write_results  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--styles", type=int, default=20)
    ap.add_argument("--inputs", type=int, default=4, help="source images (a multiple of the render threads)")
    ap.add_argument("--batch-size", type=int, default=None,
                    help="styles per decoder call (default: xraymunit's auto choice for the device)")
    ap.add_argument("--compile", action="store_true", help="also time torch.compile'd rendering (core_compiled)")
    args = ap.parse_args()

    import torch

    from xraymunit import checkpoint
    from xraymunit.config import to_dict
    from xraymunit.config.train import TrainConfig
    from xraymunit.synthesis.stage import synthesize
    from xraymunit.checkpoint import build_networks

    device = torch.device(args.device)
    cfg = TrainConfig()
    cfg.data.load_size = cfg.data.crop_size = args.size
    gens, dis = build_networks(cfg)
    gens.to(device).eval().requires_grad_(False)
    rng = np.random.default_rng(0)
    inputs = torch.from_numpy(rng.random((args.inputs, 1, args.size, args.size), dtype=np.float32) * 2 - 1).to(device)
    styles = torch.randn(args.inputs, args.styles, 8, generator=torch.Generator().manual_seed(0)).to(device)
    n_out = args.inputs * args.styles
    from xraymunit.synthesis.renderer import auto_batch_size

    args.batch_size = args.batch_size or auto_batch_size(args.size, device)
    cuda = device.type == "cuda"

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def naive(n_inputs=args.inputs, n_styles=args.styles):
        with torch.inference_mode():
            for i in range(n_inputs):
                for j in range(n_styles):
                    content, _ = gens.gen_a.encode(inputs[i:i + 1])
                    gens.gen_b.decode(content, styles[i, j:j + 1]).cpu()

    import copy

    gen_b_bf16 = copy.deepcopy(gens.gen_b).to(torch.bfloat16)

    from concurrent.futures import ThreadPoolExecutor

    from xraymunit.synthesis.renderer import render_threads as _render_threads

    def core(amp=None, n_inputs=args.inputs, batch_size=args.batch_size, render=None, cast_once=True, threads=1):
        """amp=bf16: content under autocast; rendering by the bf16-cast decoder (as the stage
        does) or, with cast_once=False, by the fp32 decoder under autocast (casts every call).
        threads > 1: inputs rendered side by side, one op-thread each (as the stage does on CPU)."""
        bf16_decoder = amp is not None and cast_once
        render = render or (gen_b_bf16.render if bf16_decoder else gens.gen_b.render)

        def one_input(i):
            ctx = (lambda: torch.autocast(device.type, dtype=amp)) if amp else contextlib.nullcontext
            with torch.inference_mode():
                with ctx():
                    content = gens.gen_a.encode_content(inputs[i:i + 1])
                codes = styles[i]
                if bf16_decoder:
                    content, codes = content.to(torch.bfloat16), codes.to(torch.bfloat16)
                with ctx() if not bf16_decoder else contextlib.nullcontext():
                    shared = (gen_b_bf16 if bf16_decoder else gens.gen_b).decoder.shared_features(content)
                    for s in range(0, args.styles, batch_size):
                        render(content, codes[s:s + batch_size], shared).float().cpu()

        saved = torch.get_num_threads()
        try:
            torch.set_num_threads(max(1, saved // threads))
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(one_input, range(n_inputs)))
        finally:
            torch.set_num_threads(saved)

    def timed(fn, warmup):
        warmup()  # oneDNN primitive creation, cudnn autotune: not part of the steady state
        sync()
        t = time.perf_counter()
        fn()
        sync()
        return time.perf_counter() - t

    results = {}
    from xraymunit.models import blocks

    polyphase, output_conv = blocks.upsample2x_conv, blocks.OutputConvBlock.forward
    blocks.upsample2x_conv = blocks._upsample2x_conv_direct  # the naive loop runs the reference's layers:
    blocks.OutputConvBlock.forward = blocks.ConvBlock.forward  # upsample then conv, a direct last conv
    results["naive_fp32"] = n_out / timed(naive, lambda: naive(1, 2))
    blocks.upsample2x_conv, blocks.OutputConvBlock.forward = polyphase, output_conv
    def core_rate(**kw) -> float:
        """images/s of `core(**kw)` over all inputs, after a warm-up on as many inputs as threads."""
        return n_out / timed(lambda: core(**kw), lambda: core(**{**kw, "n_inputs": kw.get("threads", 1)}))

    amp = torch.bfloat16 if cuda else None
    results["core"] = core_rate(amp=amp)
    from xraymunit.runtime import amp_dtype

    # bf16 on a CPU only where xraymunit would use it (native bf16): emulated, it runs ~40× slower than fp32
    # (AVX2: 0.38 vs 14 img/s at 64²) and measures a path no user runs
    if not cuda and amp_dtype("auto", device) == torch.bfloat16:
        bf16 = torch.bfloat16
        threads = _render_threads(None, device, False)[0]
        results["core_bf16_cpu"] = core_rate(amp=bf16, threads=threads)
        results["core_bf16_cpu_ops_threaded"] = core_rate(amp=bf16)  # one image at a time, ops on all threads
        results["core_bf16_cpu_autocast"] = core_rate(amp=bf16, cast_once=False)  # what casting once is worth
        if args.batch_size != 20:  # what the batch size alone is worth: all 20 styles in one call
            results["core_bf16_cpu_batch20"] = core_rate(amp=bf16, batch_size=20)

    if args.compile:  # compiling (~1 min at 256²) happens in the warm-up, outside the timing
        amp_c = torch.bfloat16 if cuda or "core_bf16_cpu" in results else None
        compiled = torch.compile((gen_b_bf16 if amp_c else gens.gen_b).render, dynamic=False)
        results["core_compiled"] = core_rate(amp=amp_c, render=compiled)

    with tempfile.TemporaryDirectory() as tmp:
        tmp = Path(tmp)
        ckpt = checkpoint.save(tmp / "ckpt.pt", models={"gen_a": gens.gen_a, "gen_b": gens.gen_b,
                                                        "dis_a": dis.dis_a, "dis_b": dis.dis_b},
                               optimizers={}, schedulers={}, step=0, config=to_dict(cfg))
        cohort = _cohort(tmp / "cohort", inputs, args.size)
        synthesize(ckpt, cohort, tmp / "warm", n_styles=2, limit=1, device=args.device, progress=False)
        t = time.perf_counter()
        res = synthesize(ckpt, cohort, tmp / "synth", n_styles=args.styles,
                         device=args.device, progress=False)
        results["stage_with_png"] = len(res.manifest) / (time.perf_counter() - t)

    payload = {"benchmark": "synthesize", "machine": machine(), "git": git_revision(), "size": args.size,
               "styles_per_input": args.styles, "inputs": args.inputs, "device": args.device,
               "batch_size": args.batch_size,
               "images_per_s": results,
               "speedup_core_vs_naive": results["core"] / results["naive_fp32"],
               "speedup_stage_vs_naive": results["stage_with_png"] / results["naive_fp32"],
               "peak_rss_mb": peak_rss_mb()}
    if "core_bf16_cpu" in results:
        payload["speedup_core_bf16_vs_naive"] = results["core_bf16_cpu"] / results["naive_fp32"]
    for name, value in results.items():
        print(f"{name:22s} {value:8.2f} img/s   ({value / results['naive_fp32']:.2f}× naive)")
    print(json.dumps({k: v for k, v in payload.items() if k.startswith("speedup")}, indent=1))
    print(f"written {write_results('synthesize', payload)}")


def _cohort(root: Path, inputs, size: int) -> Path:
    import pandas as pd

    (root / "cache").mkdir(parents=True)
    images = np.round((inputs[:, 0].float().cpu().numpy() + 1) / 2 * 65535).astype(np.uint16)
    np.save(root / "cache" / "images.npy", images)
    rows = [{"image_key": f"img{i:04d}", "patient_key": f"pat{i:04d}", "label": "normal", "split": "train",
             "status": "ok", "reason": None, "cache_index": i, "rows": size, "columns": size,
             "spacing_row_mm": None, "spacing_col_mm": None} for i in range(len(images))]
    pd.DataFrame(rows).to_parquet(root / "manifest.parquet", index=False)
    return root


if __name__ == "__main__":
    main()
