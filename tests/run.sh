#!/usr/bin/env bash
# The test command of the README and of CI: set up .venv if needed, then run the whole suite.
# Extra arguments go to pytest (e.g. `bash tests/run.sh -k ingest -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash pipelines/setup_env.sh
# One pytest-xdist worker per core (XRAYMUNIT_TEST_WORKERS=0: one process, no workers); the default
# run's tests stay on one worker (--dist loadgroup, tests/conftest.py).
exec "${XRAYMUNIT_VENV:-.venv}/bin/python" -m pytest -n "${XRAYMUNIT_TEST_WORKERS:-auto}" --dist loadgroup "$@"
