"""`xraymunit synthesize`: checkpoint + cohort → many target-domain images per source image."""

from __future__ import annotations

import argparse
import os

from xraymunit.cli import EXIT_CODES_HELP

DESCRIPTION = """\
Translate each source-domain image of a cohort split into many target-domain images (one per
style code) and write them with a provenance manifest (synth/manifest.parquet). The networks
are rebuilt from the checkpoint alone. Rerunning with the same arguments resumes: images
already written are skipped.
"""

EPILOG = f"""\
examples:
  xraymunit synthesize --checkpoint runs/x --cohort cohort/ --out synth/ --n-styles 20
  torchrun --nproc_per_node 4 -m xraymunit synthesize --checkpoint runs/x --cohort cohort/ --out synth/
      (several processes, e.g. one per GPU: each renders every 4th source image; the same files and
      manifest as one process with the same seed)
On SIGTERM the current batches finish, their images are kept and listed, and the run exits 143: rerun to resume.
{EXIT_CODES_HELP}
"""

def register(subparsers) -> None:
    from xraymunit.options import add_options
    from xraymunit.synthesis.options import SynthesizeOptions

    p = subparsers.add_parser("synthesize", help="generate many synthetic images per source image",
                              description=DESCRIPTION, epilog=EPILOG,
                              formatter_class=argparse.RawDescriptionHelpFormatter)
    add_options(p, SynthesizeOptions)  # --checkpoint, --cohort, --out have no default: required
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from xraymunit.cli import precheck
    from xraymunit.options import from_args
    from xraymunit.synthesis.options import SynthesizeOptions

    opts = from_args(SynthesizeOptions, args)
    opts.check()  # arguments, checkpoint and cohort answered before torch is imported
    precheck.checkpoint(opts.checkpoint)
    precheck.cohort_folder(opts.cohort)

    from xraymunit.synthesis import stage

    result = stage.run(opts)
    if int(os.environ.get("RANK", "0") or 0) == 0:  # (under torchrun: one summary, rank 0's, with the whole manifest)
            print(f"{len(result.manifest)} synthetic images in {result.out} ({result.generated} new, {result.skipped} "
              f"already there) in {result.seconds:.1f}s; manifest: {result.out / 'manifest.parquet'}")
    return 0
