"""Measure a pilot's checkpoint again with today's quality monitor (e.g. after a measure's definition
changed), into a JSON file next to its quality.csv — the csv itself is never rewritten.

    python pipelines/cxr_equalized/remeasure.py RUN_DIR COHORT OUT_JSON
"""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path

import torch

from xraymunit import config
from xraymunit.checkpoint import load_generators
from xraymunit.config.train import TrainConfig
from xraymunit.io.cohort import Cohort
from xraymunit.quality import judge
from xraymunit.quality.training_monitor import QualityMonitor


def main(run_dir: str, cohort_dir: str, out_json: str) -> None:
    run, cohort, device = Path(run_dir), Cohort.open(cohort_dir), torch.device("cpu")
    cfg = config.load(TrainConfig, run / "config.yaml")
    loaded = load_generators(run / "checkpoints" / "last.pt", device)
    j = judge.load_or_train(cohort, cfg.quality.judge, device=device)
    with tempfile.TemporaryDirectory() as tmp:
        monitor = QualityMonitor(cohort, cfg, j, device, Path(tmp))
        row = monitor.measure(loaded.gens, loaded.step, math.nan, loaded.step * cfg.train.batch_size)
    row = {k: (None if isinstance(v, float) and not math.isfinite(v) else v) for k, v in row.items()}
    Path(out_json).write_text(json.dumps({"checkpoint": "checkpoints/last.pt", "row": row}, indent=1) + "\n")
    print(json.dumps(row))


if __name__ == "__main__":
    main(*sys.argv[1:4])
