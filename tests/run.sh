#!/usr/bin/env bash
# The test command of the README and of CI: set up .venv if needed, then run the whole suite.
# Extra arguments go to pytest (e.g. `bash tests/run.sh -k ingest -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash pipelines/setup_env.sh
exec "${XRAYMUNIT_VENV:-.venv}/bin/python" -m pytest "$@"
