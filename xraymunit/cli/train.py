"""`xraymunit train`: config file + overrides → TrainConfig → xraymunit.training.stage.train()."""

from __future__ import annotations

import argparse

HELP = "train a grayscale MUNIT between two labelled domains of a cohort"
DESCRIPTION = (
    "Train a grayscale MUNIT (Huang et al. 2018) between two labelled domains of a cohort "
    "(data.domain_a / data.domain_b, default normal → abnormal, train split only). Writes "
    "config.yaml, checkpoints/, samples/, tensorboard/ and metrics.csv into --out."
)


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "train", help=HELP, description=DESCRIPTION)
    p.add_argument("--config", default=None,
                   help="YAML config (e.g. configs/munit_cxr_256.yaml); omitted keys take the paper defaults")
    p.add_argument("--cohort", required=True, help="cohort folder written by `xraymunit ingest`")
    p.add_argument("--out", required=True, help="run folder to create (or to continue with --resume)")
    p.add_argument("--resume", action="store_true",
                   help="continue the run in --out exactly from checkpoints/last.pt "
                        "(train.steps may be raised to train longer)")
    p.add_argument("--device", default=None,
                   help="cpu, cuda or cuda:N (overrides train.device; default from the config: auto)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. --set train.steps=5000 --set loss.perceptual=0 (repeatable)")
    p.add_argument("--no-progress", action="store_true", help="no progress bar (for logs)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xraymunit import config
    from xraymunit.config.train import TrainConfig
    from xraymunit.training.stage import train

    overrides = list(args.overrides)
    if args.device:
        overrides.append(f"train.device={args.device}")
    if args.resume and args.config is None:
        from pathlib import Path

        saved = Path(args.out) / "config.yaml"
        cfg = config.load(TrainConfig, saved if saved.is_file() else None, overrides)
    else:
        cfg = config.load(TrainConfig, args.config, overrides)
    result = train(args.cohort, args.out, cfg, resume=args.resume, show_progress=not args.no_progress)
    print(f"trained to step {result.steps}; checkpoint: {result.checkpoint}")
    print(f"tensorboard --logdir {result.run_dir / 'tensorboard'}")
    return 0
