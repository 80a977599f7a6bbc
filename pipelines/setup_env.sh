#!/usr/bin/env bash
# Create (or refresh) the project virtualenv: CPU torch first, then xraymunit with its dev extras.
# Installing torch first matters: anything that asks for torch later (monai) is then satisfied,
# whereas an unpinned torch would pull a multi-GB CUDA build. Without a local CPU wheel, take torch
# from PyTorch's CPU-only index: TORCH_INDEX_URL=https://download.pytorch.org/whl/cpu (used for the
# torch install only). Override TORCH_SPEC for a GPU box, e.g. TORCH_SPEC="torch==2.13.0".
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
VENV=${XRAYMUNIT_VENV:-.venv}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
if [ ! -x "$VENV/bin/python" ]; then
  echo "[setup] creating $VENV"
  "$PY" -m venv "$VENV"
fi
stamp="$VENV/.xraymunit-installed"
if [ ! -f "$stamp" ] || [ setup.cfg -nt "$stamp" ] || [ pyproject.toml -nt "$stamp" ]; then
  echo "[setup] installing $TORCH_SPEC, then xraymunit[dev] (a minute or two on first run)"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  "$VENV/bin/python" -m pip install -q "$TORCH_SPEC" ${TORCH_INDEX_URL:+--index-url "$TORCH_INDEX_URL"}
  "$VENV/bin/python" -m pip install -q -e ".[dev]"
  touch "$stamp"
fi
