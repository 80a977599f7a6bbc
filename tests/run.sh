#!/usr/bin/env bash
# The test command of the README and of CI: set up .venv if needed, then run the whole suite.
# Extra arguments go to pytest (e.g. `bash tests/run.sh -k ingest -x`).
set -euo pipefail
cd "$(dirname "$0")/.."
bash pipelines/setup_env.sh
# One pytest-xdist worker per CPU this process may use (affinity, cgroup quota, SLURM: the rule the stages
# use for threads); XRAYMUNIT_TEST_WORKERS=0: one process, no workers. The default run's tests stay on
# one worker (--dist loadgroup, tests/conftest.py).
PY="${XRAYMUNIT_VENV:-.venv}/bin/python"
WORKERS="${XRAYMUNIT_TEST_WORKERS:-$("$PY" -c 'from xraymunit.runtime import available_cpus; print(available_cpus()[0])')}"
exec "$PY" -m pytest -n "$WORKERS" --dist loadgroup --durations=20 "$@"
