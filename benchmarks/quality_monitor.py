"""Cost of quality tracking during training: one measurement vs the training it interrupts.

    python benchmarks/quality_monitor.py [--configs munit_tiny_cpu munit_cxr_128_cpu] [--steps 5]

For each config: the median training step (MunitStep on a batch of the config's size and
crop, the config's precision), the median `QualityMonitor.measure` (the config's quality
settings: n_inputs × n_styles translations each way, judge scores and features, MS-SSIM,
low-pass SSIM; quality.png excluded — it is redrawn only when that costs < 2 % of the time
since the last drawing), and the share of wall-clock time tracking takes at the config's
`train.quality_every`: measure / (quality_every × step + measure). Phantom cohort
(tests/helpers/evaluate_data.py) with enough val images for the config's fixed sets; the
judge is trained once first (not timed). Results: benchmarks/results/quality_monitor.json.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the phantom cohort writer lives with the tests
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402
from common import machine, write_results  # noqa: E402
from helpers.evaluate_data import write_cohort  # noqa: E402

from xraymunit import config  # noqa: E402
from xraymunit.quality import judge as judge_mod  # noqa: E402
from xraymunit.config.train import TrainConfig  # noqa: E402
from xraymunit.io.cohort import Cohort  # noqa: E402
from xraymunit.quality.training_monitor import QualityMonitor  # noqa: E402
from xraymunit.checkpoint import build_networks  # noqa: E402
from xraymunit.runtime import amp_dtype  # noqa: E402
from xraymunit.training.plan import build_perceptual  # noqa: E402
from xraymunit.training.step import MunitStep, adam  # noqa: E402


def median_time(fn, n: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(n):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def bench(name: str, steps: int, work: Path) -> dict:
    cfg = config.load(TrainConfig, ROOT / "configs" / f"{name}.yaml", ["data.num_workers=0"])
    need = max(cfg.quality.n_inputs, cfg.quality.n_reference)
    cohort = Cohort.open(write_cohort(work / name, n_patients=int(need / 0.2 * 1.2), size=cfg.data.load_size,
                                      second_image_every=0))
    dev = torch.device("cpu")
    judge = judge_mod.load_or_train(cohort, cfg.quality.judge)
    gens, dis = build_networks(cfg)
    step = MunitStep(gens, dis, adam(gens.parameters(), cfg.optim), adam(dis.parameters(), cfg.optim), cfg.loss,
                     build_perceptual(cfg), dev, amp_dtype(cfg.train.amp, dev))
    b, s, d = cfg.train.batch_size, cfg.data.crop_size, cfg.model.style_dim
    x = torch.rand(b, 1, s, s) * 2 - 1
    styles = [torch.randn(b, d) for _ in range(4)]
    kw = {"s_a2": styles[2], "s_b2": styles[3]} if cfg.loss.diversity > 0 else {}
    t_step = median_time(lambda: step(x, x.flip(0), styles[0], styles[1], **kw), steps)
    mon = QualityMonitor(cohort, cfg, judge, dev, work / name)
    mon.png_path = work / name / "quality.png"
    mon._plot_at, mon._plot_cost = float("inf"), 0.0  # time the measurement, not the (throttled) figure
    t_measure = median_time(lambda: mon.measure(gens, 1, 1.0, 1), 3)
    every = cfg.train.quality_every
    return {"config": name, "crop": s, "batch": b, "quality_every": every,
            "n_translations_a2b": len(mon.groups), "step_s": round(t_step, 4), "measure_s": round(t_measure, 3),
            "share_of_training_time": round(t_measure / (every * t_step + t_measure), 4)}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--configs", nargs="+", default=["munit_tiny_cpu", "munit_cxr_128_cpu"])
    p.add_argument("--steps", type=int, default=5)
    args = p.parse_args()
    info = machine()  # CPU model and speed flags included
    with tempfile.TemporaryDirectory() as tmp:
        rows = [bench(n, args.steps, Path(tmp)) for n in args.configs]
    for r in rows:
        print(r)
    print(write_results("quality_monitor", {"machine": info, "results": rows}))


if __name__ == "__main__":
    main()
