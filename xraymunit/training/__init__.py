"""`xraymunit train`: a grayscale MUNIT between two labelled domains of a cohort.

Modules: `options` (the run-level CLI options, declared once), `plan` (device, data, resume,
networks and optimisers), `step` (one MUNIT iteration), `loop` (the steps, SIGTERM, time
limit), `records` (metrics, samples, quality, checkpoints), `data` (domains, loader),
`distributed` (DDP ranks), `stage` (`train()`, composing them). The networks' checkpoint
layout lives in `xraymunit.checkpoint`.
"""

from __future__ import annotations

from xraymunit.lazy import exports

# exported lazily: `training.options` (read by the CLI for --help) must not import torch
_EXPORTS = {"TrainResult": "stage", "train": "stage", "TrainingError": "errors", "TrainRunOptions": "options"}
__all__ = sorted(_EXPORTS)
__getattr__ = exports(__name__, _EXPORTS)
