#!/usr/bin/env python
"""Train one of a per-level pipeline's generators on its own, beside the pipeline, to use a second core.

    python pipelines/cxr_equalized/train_generator.py --config pipelines/cxr_equalized/study.yaml \
        --generator 25_g1 --threads 1

The pipeline trains its generators one after another. This script resolves the pipeline config exactly
as the pipeline does (same train config, same K keys, same seed) and trains OUT/train_<generator>/ with
`xraymunit.train`; when the pipeline reaches that generator it finds the finished run and resumes it
at its last step (nothing left to train), then synthesizes from it as usual. Stopped runs resume
(rerun the same command). It refuses a generator name the config does not define.
"""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

import xraymunit
from xraymunit import config
from xraymunit.pipeline.config import PipelineConfig
from xraymunit.pipeline.layout import RunLayout
from xraymunit.pipeline.run import level_generators, resolve_configs
from xraymunit.runtime import threads_scope
from xraymunit.stopping import Stopped


def generator_configs(cfg: PipelineConfig) -> dict:
    """{generator name → train config} for every generator of the per-level pipeline `cfg`, resolved by
    the pipeline's own `level_generators`."""
    train_cfg, eval_cfg = resolve_configs(cfg)
    plan = level_generators(RunLayout(Path(cfg.out).resolve()).cohort, train_cfg, eval_cfg, cfg.generators_per_level)
    return {gen.name: gen.config for gen in plan.generators}


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--config", required=True, type=Path)
    ap.add_argument("--generator", required=True, help="e.g. 25_g1 (trains OUT/train_25_g1/)")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s",
                        datefmt="%H:%M:%S")
    cfg = config.load(PipelineConfig, args.config)
    if cfg.generators != "per_level":
        ap.error(f"{args.config}: generators is {cfg.generators!r}; this script is for per_level pipelines")
    configs = generator_configs(cfg)
    if args.generator not in configs:
        ap.error(f"--generator {args.generator}: the config defines {', '.join(configs)}")
    layout = RunLayout(Path(cfg.out).resolve())
    run_dir = layout.train(args.generator)
    resume = RunLayout.last_checkpoint(run_dir).is_file()
    try:
        with threads_scope(args.threads):
            result = xraymunit.train(layout.cohort, run_dir, configs[args.generator], resume=resume, progress=False)
    except Stopped as exc:  # SIGTERM: the step finished and last.pt saved; the same command resumes
        print(f"{args.generator}: stopped: {exc}", file=sys.stderr)
        return 143
    print(f"{args.generator}: {result.images_per_second:.2f} img/s → {run_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
