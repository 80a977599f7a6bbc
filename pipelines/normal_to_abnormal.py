#!/usr/bin/env python
"""ingest → train → synthesize → evaluate, from one YAML: `xraymunit pipeline`, as a script.

    python pipelines/normal_to_abnormal.py --config configs/pipeline_default.yaml
    python pipelines/normal_to_abnormal.py --config configs/pipeline_default.yaml --set train.set='[train.steps=2000]'

Same options and behaviour as `xraymunit pipeline` (see `--help`); the pipeline itself is
`xraymunit.pipeline` (stages, resume, run-folder layout).
"""

from __future__ import annotations

import sys

from xraymunit.cli import main as cli_main


def main(argv: list[str] | None = None) -> int:
    return cli_main(["pipeline", *(sys.argv[1:] if argv is None else argv)])


if __name__ == "__main__":
    sys.exit(main())
