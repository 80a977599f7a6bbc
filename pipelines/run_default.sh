#!/usr/bin/env bash
# The README's main job on a fresh machine: set up .venv (CPU torch first), then run
# ingest → train → synthesize → evaluate on the bundled DICOM sample. Outputs: runs/default/.
# Extra arguments go to the pipeline (e.g. `bash pipelines/run_default.sh --set train.set='[train.steps=2000]'`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash pipelines/setup_env.sh
exec "${XRAYMUNIT_VENV:-.venv}/bin/python" pipelines/normal_to_abnormal.py --config configs/pipeline_default.yaml "$@"
