"""xraymunit: grayscale MUNIT augmentation for chest X-ray cohorts.

The four stages are plain functions — `xraymunit.ingest(...)`, `xraymunit.train(...)`,
`xraymunit.synthesize(...)`, `xraymunit.evaluate(...)` — imported lazily so that
`import xraymunit` stays cheap (no torch until a stage is used). Each stage module is
also callable (see `_api.py`), so the spelling works whichever was imported first.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

_STAGES = {
    "ingest": "xraymunit.ingest",
    "train": "xraymunit.train",
    "synthesize": "xraymunit.synthesize",
    "evaluate": "xraymunit.evaluate",
}


def __getattr__(name: str):
    if name in _STAGES:
        func = getattr(importlib.import_module(_STAGES[name]), name)
        globals()[name] = func
        return func
    raise AttributeError(f"module 'xraymunit' has no attribute {name!r}")


__all__ = ["__version__", *_STAGES]
