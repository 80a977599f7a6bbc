"""Shared pytest setup: quiet, single-threaded torch so tests are reproducible on 2 cores."""

import os

os.environ.setdefault("OMP_NUM_THREADS", "2")
os.environ.setdefault("MPLBACKEND", "Agg")
