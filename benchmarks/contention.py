"""Training throughput when another program competes for the cores, by torch thread count.

    python benchmarks/contention.py                  # 120 steps per case (configs/munit_tiny_cpu.yaml)
    python benchmarks/contention.py --steps 60 --cases alone-2,busy-2,busy-1

Ingests the bundled sample once (64 px), then trains the tiny config for `--steps` steps in a
fresh process per case (threads are set once per process): alone or beside one CPU-bound
competitor (a Python busy loop, started before and stopped after the case), with `--threads 2`,
`--threads 1` or the automatic rule (`xraymunit.runtime.resolve_threads`, OMP_NUM_THREADS
removed from the child's environment). Quality tracking, the shortcut test, sample images and
checkpoints are off, so the time is the training loop's. The 1-minute load average is recorded
before and after every case: other users of the machine show up there. Writes
benchmarks/results/contention.json.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import git_revision, machine, write_results  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
CONFIG = REPO / "configs" / "munit_tiny_cpu.yaml"
CASES = ("alone-2", "alone-1", "busy-2", "busy-1", "alone-auto", "busy-auto")
QUIET = ["train.shortcut_test=false", "train.quality_every=0", "train.image_every=100000",
         "train.checkpoint_every=100000", "train.keep_every=100000", "train.log_every=20", "train.device=cpu"]


def child(cohort: str, out: str, steps: int, threads: str) -> None:
    """One case in this fresh process: train and print the timing as one JSON line."""
    import torch

    from xraymunit import config
    from xraymunit.config.train import TrainConfig
    from xraymunit.training import train

    cfg = config.load(TrainConfig, CONFIG, [*QUIET, f"train.steps={steps}"])
    t0 = time.perf_counter()
    result = train(cohort, out, cfg, progress=False, threads=None if threads == "auto" else int(threads))
    seconds = time.perf_counter() - t0
    print(json.dumps({"seconds": round(seconds, 1), "steps": result.steps,
                      "images_per_second": round(result.images_per_second, 2),
                      "torch_threads": torch.get_num_threads()}))


def ingest_sample(folder: Path) -> Path:
    import xraymunit
    import xraymunit.sample_data as sample

    cohort = folder / "cohort"
    xraymunit.ingest(sample.path(), cohort, labels=sample.labels_csv(), size=64, progress=False)
    return cohort


def run_case(case: str, cohort: Path, folder: Path, steps: int) -> dict:
    where, threads = case.split("-")
    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    competitor = None
    if where == "busy":
        competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        time.sleep(2)  # let it take its core
    load_before = os.getloadavg()[0]
    try:
        proc = subprocess.run([sys.executable, __file__, "--child", str(cohort), str(folder / case), str(steps),
                               threads], env=env, capture_output=True, text=True, check=False)
    finally:
        if competitor is not None:
            competitor.kill()
            competitor.wait()
    if proc.returncode != 0:
        raise SystemExit(f"case {case} failed:\n{proc.stderr[-3000:]}")
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    return {"case": case, "competitor": where == "busy", "threads": threads, **result,
            "load_1min_before": round(load_before, 2), "load_1min_after": round(os.getloadavg()[0], 2)}


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        child(*sys.argv[2:4], int(sys.argv[4]), sys.argv[5])
        return
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--steps", type=int, default=120)
    ap.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {','.join(CASES)}")
    args = ap.parse_args()
    from xraymunit.runtime import resolve_threads

    env = {k: v for k, v in os.environ.items() if k != "OMP_NUM_THREADS"}
    auto = resolve_threads(environ=env)
    payload = {"machine": machine(), "git": git_revision(), "config": str(CONFIG.relative_to(REPO)),
               "steps": args.steps, "automatic_rule": {"threads": auto[0], "why": auto[1]}, "cases": []}
    with tempfile.TemporaryDirectory() as tmp:
        folder = Path(tmp)
        cohort = ingest_sample(folder)
        for case in args.cases.split(","):
            row = run_case(case, cohort, folder, args.steps)
            payload["cases"].append(row)
            print(json.dumps(row), flush=True)
            path = write_results("contention", payload)  # after every case: a stopped run keeps its rows
    print(f"→ {path}")


if __name__ == "__main__":
    main()
