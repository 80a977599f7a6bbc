"""`xraymunit evaluate`: flags built from EvaluateInputs and EvaluateConfig → xraymunit.evaluation.stage.evaluate().

The study flags (--seeds, --real-abnormal, --device, --workers, --no-progress) are fields of
EvaluateConfig: given, they override --config and --set; not given, the config's value stands.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from xraymunit.cli import EXIT_CODES_HELP
from xraymunit.options import cli_fields

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

EPILOG = f"""\
examples:
  xraymunit evaluate --cohort cohort/ --synthetic synth/ --out reports/cxr
  xraymunit evaluate --cohort cohort/ --synthetic synth/ --out reports/low \\
      --config configs/evaluate.yaml --real-abnormal 25,50,100,all --seeds 3 --device cuda
  xraymunit evaluate --cohort cohort/ --out reports/baseline      # arms 1-2 only
  xraymunit evaluate --cohort cohort/ --out reports/honest --real-abnormal 25,all \\
      --synthetic 25=synth_25/ --synthetic all=synth_all/ --set real_abnormal_subset=shared
  xraymunit evaluate ... --real-abnormal 25 --synthetic 25=synth_25_g1/ --synthetic 25=synth_25_g2/ \\
      --training-run 25=train_25_g1/ --training-run 25=train_25_g2/   # 2 generators: their variance in the CIs
  xraymunit evaluate ... --set classifier.steps=500 --set stats.bootstrap=2000
  xraymunit evaluate ... --workers 4       # 4 classifier runs at a time (one GPU each when several)
  xraymunit evaluate ... --test-cohort site_b_cohort/   # external validation: also scored on site B's test split
  torchrun --nproc_per_node 4 -m xraymunit evaluate ...   # the runs spread over 4 ranks; rank 0 reports
Finished runs are kept in OUT/runs/: on SIGTERM the current run is abandoned, the finished ones
are kept, and the command exits 143; rerun it to resume. The report is the same however many
processes trained the runs.
{EXIT_CODES_HELP}
"""


def register(subparsers) -> None:
    from xraymunit.config.evaluate import EvaluateConfig, EvaluateInputs
    from xraymunit.options import add_options

    p = subparsers.add_parser(
        "evaluate", help="downstream classifier study + synthetic image quality → report",
        description=DESCRIPTION, epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    add_options(p, EvaluateInputs)
    study = p.add_argument_group("study options (override --config and --set)")
    add_options(study, EvaluateConfig, absent_unless_given=True)  # not given: the config file's value stands
    p.set_defaults(func=run)


def parse_synthetic(values: list[str] | None, option: str = "--synthetic"):
    """--synthetic (or --training-run) values: None; plain DIRs (one → that folder, several → a list of
    generators for every level); or LEVEL=DIR pairs → {level name: DIR}, a level named again → its list of
    generators ({level: [DIR, DIR]}) in the order given."""
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
        pairs.setdefault(name, []).append(folder)
    if plain and pairs:
        raise ConfigError(f"{option} takes either DIRs (the same generator(s) for every level) or LEVEL=DIR for "
                          f"each level (one or more generators per level), not both: {values}")
    if plain:
        return plain[0] if len(plain) == 1 else plain
    return {name: folders[0] if len(folders) == 1 else folders for name, folders in pairs.items()}


def build_config(args: argparse.Namespace):
    """EvaluateConfig from --config, then --set, then the study flags given on the command line."""
    import dataclasses

    from xraymunit import config
    from xraymunit.config.evaluate import EvaluateConfig

    cfg = config.load(EvaluateConfig, args.config, args.overrides or [])
    given = {f.name: getattr(args, f.name) for f in cli_fields(EvaluateConfig) if hasattr(args, f.name)}
    if not given:
        return cfg
    cfg = dataclasses.replace(cfg, **given)
    cfg.validate()
    return cfg


def check_paths(cohort, synthetic, training_run, test_cohorts=None) -> None:
    """The folders named on the command line, checked before torch and MONAI are imported."""
    from xraymunit.cli import precheck

    for folder in [cohort, *(test_cohorts or [])]:
        precheck.cohort_folder(folder)
    for folder in (synthetic.values() if isinstance(synthetic, dict) else [synthetic] if synthetic else []):
        precheck.synthetic_folder(folder)
    for folder in (training_run.values() if isinstance(training_run, dict) else [training_run] if training_run else []):
        precheck.existing_folder(folder, "--training-run")


def run(args: argparse.Namespace) -> int:
    cfg = build_config(args)
    synthetic = parse_synthetic(args.synthetic)
    training_run = parse_synthetic(args.training_run, "--training-run")
    check_paths(args.cohort, synthetic, training_run, args.test_cohort)

    from xraymunit.evaluation.report import headline
    from xraymunit.evaluation.stage import evaluate

    metrics = evaluate(args.cohort, synthetic, args.out, cfg, resume=not args.fresh, training_run=training_run,
                       test_cohorts=args.test_cohort)
    if metrics.get("report", True) is None:  # a torchrun rank other than 0: rank 0 prints the report
        return 0
    out = Path(args.out)
    print(f"report: {out / 'summary.md'}  (metrics: {out / 'metrics.json'})")
    for line in headline(metrics):
        print(line.replace("**", ""))
    for note in metrics["notes"]:
        print(f"note: {note}")
    return 0
