"""`xraymunit evaluate`: parse options → EvaluateConfig → xraymunit.evaluation.stage.evaluate()."""

from __future__ import annotations

import argparse
from pathlib import Path

DESCRIPTION = """\
Does adding synthetic abnormal images help a normal-vs-abnormal classifier?

Trains the same classifier (same steps, batch and seeds) in four arms:
  (1) real only   (2) real + classical augmentation (MONAI affine, intensity, noise)
  (3) real + synthetic abnormal images from --synthetic   (4) real + classical + synthetic
on the cohort's train split, selects each model on val AUROC, and scores it on the real
test images only. Synthetic images derived from val/test patients are never trained on.
Reports AUROC, sensitivity at fixed specificity and balanced accuracy with patient-
bootstrap CIs, paired differences vs (1) and vs (2), per source dataset, and the synthetic
images' diversity, realism (FID/KID in a cohort-trained feature space), content
preservation and memorisation, each next to a real-image yardstick.

Writes OUT/metrics.json, OUT/summary.md, OUT/predictions.csv, PNG plots and the resolved
config OUT/evaluate_config.yaml.
"""

EPILOG = """\
examples:
  xraymunit evaluate --cohort cohort/ --synthetic synth/ --out reports/cxr
  xraymunit evaluate --cohort cohort/ --synthetic synth/ --out reports/low \\
      --config configs/evaluate.yaml --real-abnormal 25,50,100,all --seeds 3 --device cuda
  xraymunit evaluate --cohort cohort/ --out reports/baseline      # arms 1-2 only
  xraymunit evaluate --cohort cohort/ --out reports/honest --real-abnormal 25,all \
      --synthetic 25=synth_25/ --synthetic all=synth_all/ --set real_abnormal_subset=shared
  xraymunit evaluate ... --set classifier.steps=500 --set stats.bootstrap=2000
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "evaluate", help="downstream classifier study + synthetic image quality → report",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--cohort", required=True, metavar="DIR",
                   help="cohort folder written by `xraymunit ingest` (manifest.parquet + cache/)")
    p.add_argument("--synthetic", metavar="[LEVEL=]DIR", action="append", default=None,
                   help="synthetic folder written by `xraymunit synthesize`; without it arms 3 and 4 "
                        "and the quality metrics are skipped (the report says so). One generator per "
                        "low-data level: repeat as LEVEL=DIR (e.g. --synthetic 25=synth_25 --synthetic "
                        "all=synth_all); arms 3/4 of level K then use only that level's images")
    p.add_argument("--out", required=True, metavar="DIR",
                   help="report folder to write (created; files in it are replaced atomically)")
    p.add_argument("--config", metavar="YAML", default=None,
                   help="evaluation config (e.g. configs/evaluate.yaml for a study, "
                        "configs/evaluate_tiny.yaml for a quick CPU smoke run); default: built-in CPU defaults")
    p.add_argument("--real-abnormal", metavar="LEVELS", default=None,
                   help="comma-separated numbers of real abnormal training images to keep, e.g. "
                        "25,50,100,all (low-data study; the same K images for every arm of a seed)")
    p.add_argument("--seeds", type=int, metavar="N", default=None,
                   help="number of seeds per arm (every arm uses the same seeds)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", dest="overrides",
                   help="override any config key, e.g. --set classifier.steps=500 (repeatable; "
                        "applied after --config, before --real-abnormal/--seeds/--device)")
    p.add_argument("--device", default=None, metavar="DEV",
                   help="cpu, cuda or cuda:N (overrides the config's device)")
    p.add_argument("--training-run", metavar="[LEVEL=]RUN_DIR", action="append", default=None,
                   help="the MUNIT run folder behind the synthetic images (repeat as LEVEL=RUN_DIR, like "
                        "--synthetic): its quality tracking (quality.csv, quality.png) goes into the report")
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    p.add_argument("--fresh", action="store_true",
                   help="retrain every run; by default finished runs kept in OUT/runs/ are reused when "
                        "their fingerprint (config, seed, image keys) matches, so an interrupted study resumes")
    p.set_defaults(func=run)


def parse_synthetic(values: list[str] | None, option: str = "--synthetic") -> str | dict[str, str] | None:
    """--synthetic (or --training-run) values: None, one plain DIR, or LEVEL=DIR pairs → {level name: DIR}."""
    from xraymunit.config import ConfigError
    from xraymunit.config.evaluate import parse_level

    if not values:
        return None
    pairs, plain = {}, []
    for value in values:
        level, sep, folder = value.partition("=")
        if not sep or Path(value).is_dir() or not (level.strip().isdigit() or level.strip().lower() == "all"):
            plain.append(value)
            continue
        parsed = parse_level(level)
        name = "all" if parsed == "all" else str(parsed)
        if name in pairs:
            raise ConfigError(f"{option} names level {name} twice")
        pairs[name] = folder
    if plain and (pairs or len(plain) > 1):
        raise ConfigError(f"{option} takes either one DIR (one generator for every level) or LEVEL=DIR "
                          f"for each level (one generator per level), not {values}")
    return plain[0] if plain else pairs


def run(args: argparse.Namespace) -> int:
    from xraymunit import config
    from xraymunit.config import ConfigError
    from xraymunit.config.evaluate import EvaluateConfig, parse_levels
    from xraymunit.evaluation.stage import evaluate
    from xraymunit.evaluation.report import headline

    overrides = list(args.overrides)
    if args.real_abnormal is not None:
        levels = parse_levels(args.real_abnormal)
        overrides.append("real_abnormal=[" + ", ".join(str(v) for v in levels) + "]")
    if args.seeds is not None:
        if args.seeds < 1:
            raise ConfigError("--seeds must be >= 1")
        overrides.append(f"seeds={args.seeds}")
    if args.device is not None:
        overrides.append(f"device={args.device}")
    if args.no_progress:
        overrides.append("progress=false")
    cfg = config.load(EvaluateConfig, args.config, overrides)
    metrics = evaluate(args.cohort, parse_synthetic(args.synthetic), args.out, cfg, resume=not args.fresh,
                       training_run=parse_synthetic(args.training_run, "--training-run"))
    out = Path(args.out)
    print(f"report: {out / 'summary.md'}  (metrics: {out / 'metrics.json'})")
    for line in headline(metrics):
        print(line.replace("**", ""))
    for note in metrics["notes"]:
        print(f"note: {note}")
    return 0
