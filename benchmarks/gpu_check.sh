#!/usr/bin/env bash
# The prepared GPU check: everything we want measured on a GPU in at most 8 minutes, one JSON line
# per measurement (details: benchmarks/gpu_check.py, or --help).
#
#   bash benchmarks/gpu_check.sh                  # on a GPU machine; lines also go to $OUT/gpu_check.jsonl if $OUT is set
#   bash benchmarks/gpu_check.sh --out DIR        # lines, item logs and quality.csv/png into DIR
#   bash benchmarks/gpu_check.sh --smoke          # CPU rehearsal of every code path at tiny sizes (~1 minute)
#
# Python: $XRAYMUNIT_PYTHON, else .venv/bin/python, else python3. Exit status: 0 every item ran or
# was skipped for time, 1 an item failed (its JSON line says why), 2 bad arguments.
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${XRAYMUNIT_PYTHON:-}"
if [[ -z "$PY" ]]; then
    if [[ -x .venv/bin/python ]]; then PY=.venv/bin/python; else PY=python3; fi
fi
exec "$PY" benchmarks/gpu_check.py "$@"
