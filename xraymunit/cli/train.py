"""`xraymunit train`: TrainRunOptions + config file + overrides → TrainConfig → xraymunit.training.train()."""

from __future__ import annotations

import argparse

HELP = "train a grayscale MUNIT between two labelled domains of a cohort"
DESCRIPTION = (
    "Train a grayscale MUNIT (Huang et al. 2018) between two labelled domains of a cohort "
    "(data.domain_a / data.domain_b, default normal → abnormal, train split only). Writes "
    "config.yaml, checkpoints/ (last.pt; best.pt by quality), samples/, tensorboard/, metrics.csv (losses), "
    "quality.csv + quality.png (quality tracking, train.quality_every) and shortcut_test.json "
    "(train.shortcut_test) into --out."
)
EXAMPLES = """\
examples:
  xraymunit train --config configs/munit_cxr_256.yaml --cohort cohort/ --out runs/cxr256
  xraymunit train --cohort cohort/ --out runs/cxr256 --resume --set train.steps=400000
  torchrun --nproc_per_node 4 -m xraymunit train --config configs/munit_cxr_256.yaml --cohort cohort/ --out runs/ddp
On SIGTERM the current step finishes, checkpoints/last.pt is saved and the run exits 143; --resume
continues it exactly.
"""


def register(subparsers) -> None:
    from xraymunit.cli import EXIT_CODES_HELP
    from xraymunit.options import add_options
    from xraymunit.training.options import TrainRunOptions

    p = subparsers.add_parser("train", help=HELP, description=DESCRIPTION, epilog=EXAMPLES + EXIT_CODES_HELP,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_options(p, TrainRunOptions)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    from xraymunit import config
    from xraymunit.cli import precheck
    from xraymunit.config.train import TrainConfig
    from xraymunit.options import from_args
    from xraymunit.training.options import TrainRunOptions

    opts = from_args(TrainRunOptions, args)
    config_file = opts.config
    if opts.resume and config_file is None:  # the run's own config
        saved = Path(opts.out) / "config.yaml"
        config_file = saved if saved.is_file() else None
    cfg = config.load(TrainConfig, config_file, opts.config_overrides())
    if opts.cohort is not None:
        precheck.cohort_folder(opts.cohort)  # config and paths answered before torch is imported
    if opts.out is not None:
        precheck.training_run_folder(opts.out, opts.resume)

    from xraymunit.training import train

    result = train(opts.cohort, opts.out, cfg, resume=opts.resume, progress=opts.progress, threads=opts.threads)
    print(f"trained to step {result.steps}; checkpoint: {result.checkpoint}")
    print(f"tensorboard --logdir {result.run_dir / 'tensorboard'}")
    return 0
