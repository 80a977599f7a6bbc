"""`xraymunit pipeline`: options → PipelineConfig → xraymunit.pipeline.run(), then where things are."""

from __future__ import annotations

import argparse
import sys

from xraymunit.cli import EXIT_CODES_HELP, EXIT_INTERRUPTED
from xraymunit.options import add_options, from_args

HELP = "the whole chain (ingest → train → synthesize → evaluate) from one YAML, resumable"
DESCRIPTION = """\
ingest → train → synthesize → evaluate, from one YAML (configs/pipeline_default.yaml: the
README's main job on the bundled DICOM sample), into one output folder:
OUT/cohort/ train/ synth/ report/ pipeline.log pipeline_state.json.

Every stage is skipped when its outputs are up to date for its inputs and settings (a
fingerprint of both is stored in OUT/pipeline_state.json), so a rerun after a crash or a
Ctrl-C picks up where it stopped. When a stage's settings change, its old outputs are moved
to <stage>.previous/ (later changes: <stage>.previous.2/, .3/, ...; never deleted) and the
stage and everything after it run again.
`generators: per_level` trains one generator per low-data level (OUT/train_K/, OUT/synth_K/).
"""


def epilog() -> str:
    return f"""\
examples:
  xraymunit pipeline --out runs/default                       # configs/pipeline_default.yaml
  xraymunit pipeline --config my_pipeline.yaml --set train.steps=2000   # a stage config's key
  xraymunit pipeline --set synthesize.n_styles=20 --set evaluate.seeds=3 --no-progress

{EXIT_CODES_HELP}
"""


def register(subparsers) -> None:
    from xraymunit.pipeline.options import PipelineOptions

    p = subparsers.add_parser("pipeline", help=HELP, description=DESCRIPTION, epilog=epilog(),
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_options(p, PipelineOptions)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xraymunit.pipeline import run as run_pipeline, where_things_are
    from xraymunit.pipeline.options import PipelineOptions
    from xraymunit.runtime import progress_enabled

    options = from_args(PipelineOptions, args)
    cfg = options.load()
    try:
        summary = run_pipeline(cfg, progress=progress_enabled(options.progress), threads=options.threads)
    except KeyboardInterrupt:
        print(f"xraymunit pipeline: interrupted; rerun the same command to resume from {cfg.out}", file=sys.stderr)
        return EXIT_INTERRUPTED
    print("\n".join(where_things_are(cfg, summary)))
    return 0
