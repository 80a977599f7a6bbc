"""How long does `xraymunit evaluate` take on this machine?

    python benchmarks/evaluate.py            # all cases (~10 min on 2 cores)
    python benchmarks/evaluate.py --quick    # only the ~60-image cohort
    python benchmarks/evaluate.py --quick --workers 2   # also the tiny config with 2 worker processes

Cases: a cohort like the bundled default data (~60 real images, 256 px) and a large one
(~1,000 real + 1,000 synthetic images, 256 px), both written in the on-disk formats of
xraymunit/FORMATS.md from procedural phantoms into a temporary folder; each evaluated with the
tiny config (configs/evaluate_tiny.yaml) and the built-in CPU defaults (no --config).
The full DenseNet121 study (configs/evaluate.yaml) is far too slow for a CPU: its time
per training step is measured and the whole study extrapolated from it.
Prints a table and writes benchmarks/results/evaluate.json.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))  # the phantom cohort writer lives with the tests
sys.path.insert(0, str(ROOT / "benchmarks"))

import torch  # noqa: E402

from common import machine  # noqa: E402
from helpers.evaluate_data import write_cohort, write_synthetic  # noqa: E402
from xraymunit import config  # noqa: E402
from xraymunit.config.evaluate import EvaluateConfig  # noqa: E402
from xraymunit.evaluation.stage import evaluate  # noqa: E402
from xraymunit.io import atomic  # noqa: E402

CASES = {  # name: (patients, synthetic styles per normal image); every 6th patient has 2 images
    "default-data (~60 real)": (52, 5),
    "1000 real + 1000 synthetic": (858, 2),
}


def make_case(root: Path, patients: int, styles: int) -> tuple[Path, Path, dict]:
    t = time.perf_counter()
    cohort = write_cohort(root / "cohort", n_patients=patients, size=256, seed=0)
    synth = write_synthetic(root / "synth", cohort, n_styles=styles, unknown_sources=0)
    import pandas as pd

    n_real = int((pd.read_parquet(cohort / "manifest.parquet")["status"] == "ok").sum())
    n_syn = len(pd.read_parquet(synth / "manifest.parquet"))
    return cohort, synth, {"real_images": n_real, "synthetic_images": n_syn,
                           "write_s": round(time.perf_counter() - t, 1)}


def run_case(cohort: Path, synth: Path, out: Path, cfg: EvaluateConfig) -> dict:
    t = time.perf_counter()
    m = evaluate(cohort, synth, out, dataclasses.replace(cfg, progress=False))
    wall = time.perf_counter() - t
    n_runs = len(m["runs"])
    return {"wall_s": round(wall, 1), "phases_s": m["timings"], "training_runs": n_runs, "steps_per_run": cfg.classifier.steps,
            "workers": cfg.workers, "arms": m["arms"], "levels": [lv["name"] for lv in m["levels"]], "seeds": len(m["seeds"]),
            "auroc_real_all": m["results"][m["levels"][-1]["name"]]["arms"]["real"]["auroc"]["value"],
            "load_avg_after": os.getloadavg()}


def densenet121_step(batch: int = 32, size: int = 224, steps: int = 2) -> float:
    """Seconds per training step of the evaluate.yaml classifier on this CPU."""
    from xraymunit.config.evaluate import ClassifierConfig
    from xraymunit.evaluation.classifier import build_classifier

    model = build_classifier(ClassifierConfig(arch="densenet121", image_size=size), 0)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-4)
    x, y = torch.rand(batch, 1, size, size), torch.randint(0, 2, (batch,)).float()
    times = []
    for _ in range(steps + 1):
        t = time.perf_counter()
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
        times.append(time.perf_counter() - t)
    return float(min(times[1:]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="only the ~60-image cohort")
    ap.add_argument("--workers", type=int, default=1, help="also run the tiny config with N worker processes")
    args = ap.parse_args()
    tiny = config.load(EvaluateConfig, ROOT / "configs" / "evaluate_tiny.yaml")
    configs = {"tiny (configs/evaluate_tiny.yaml)": tiny, "cpu defaults (no --config)": EvaluateConfig()}
    if args.workers > 1:  # threads=0: each worker gets cpu_count // workers threads
        configs[f"tiny --workers {args.workers}"] = dataclasses.replace(tiny, workers=args.workers, threads=0)
    results = {"machine": machine(), "cases": []}  # machine() records the load average: noisy runs show
    cases = list(CASES.items())[:1] if args.quick else list(CASES.items())
    with tempfile.TemporaryDirectory(prefix="xraymunit-bench-") as tmp:
        for case, (patients, styles) in cases:
            root = Path(tmp) / case.split()[0]
            cohort, synth, info = make_case(root, patients, styles)
            for i, (cname, cfg) in enumerate(configs.items()):
                r = run_case(cohort, synth, root / f"report-{i}", cfg)  # a fresh folder: no run reused
                row = {"case": case, **info, "config": cname, **r}
                results["cases"].append(row)
                print(f"{case:28s} {cname:34s} real={info['real_images']:5d} synth={info['synthetic_images']:5d} "
                      f"runs={r['training_runs']:3d}×{r['steps_per_run']} steps  wall={r['wall_s']:7.1f} s  "
                      f"(train {r['phases_s']['training_s']} s, quality {r['phases_s']['quality_s']} s)", flush=True)
    step = densenet121_step()
    study = config.load(EvaluateConfig, ROOT / "configs" / "evaluate.yaml")
    n_runs = len(study.arms) * study.seeds * len(study.real_abnormal)
    results["densenet121_224_cpu"] = {
        "seconds_per_step_batch32": round(step, 2),
        "study_runs": n_runs, "steps_per_run": study.classifier.steps,
        "extrapolated_training_hours": round(step * n_runs * study.classifier.steps / 3600, 1),
    }
    print(f"DenseNet121 224px batch 32 on CPU: {step:.2f} s/step → configs/evaluate.yaml "
          f"({n_runs} runs × {study.classifier.steps} steps) ≈ "
          f"{results['densenet121_224_cpu']['extrapolated_training_hours']} h of training on this CPU")
    path = ROOT / "benchmarks" / "results" / "evaluate.json"
    atomic.write_json(path, results)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
