"""`xraymunit train`: a grayscale MUNIT between two labelled domains of a cohort.

Modules: `options` (the run-level CLI options, declared once), `plan` (device, data, resume,
networks and optimisers), `step` (one MUNIT iteration), `loop` (the steps, SIGTERM, time
limit), `records` (metrics, samples, quality, checkpoints), `data` (domains, loader),
`distributed` (DDP ranks), `stage` (`train()`, composing them). The networks' checkpoint
layout lives in `xraymunit.checkpoint`.
"""

from __future__ import annotations

import importlib

# exported lazily: `training.options` (read by the CLI for --help) must not import torch
_EXPORTS = {"TrainResult": "stage", "train": "stage", "TrainingError": "errors", "TrainRunOptions": "options"}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"xraymunit.training.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    raise AttributeError(f"module 'xraymunit.training' has no attribute {name!r}")
