"""xraymunit: grayscale MUNIT augmentation for chest X-ray cohorts.

The stages are plain functions — `xraymunit.ingest(...)`, `xraymunit.merge(...)`,
`xraymunit.train(...)`, `xraymunit.synthesize(...)`, `xraymunit.evaluate(...)`. They live in
the packages `ingestion`, `training`, `synthesis` and `evaluation` (named apart from the
functions, so importing a package never shadows a function) and are imported lazily, so that
`import xraymunit` stays cheap (no torch until a stage is used). `xraymunit.Translator` runs a
trained generator on your own arrays (see `xraymunit.translator`).
"""

from __future__ import annotations

from xraymunit.lazy import exports, listing

__version__ = "0.1.0"

_STAGES = {
    "ingest": "xraymunit.ingestion",
    "merge": "xraymunit.ingestion",
    "train": "xraymunit.training",
    "synthesize": "xraymunit.synthesis",
    "evaluate": "xraymunit.evaluation",
}
_API = {**_STAGES, "Translator": "xraymunit.translator"}


__getattr__ = exports(__name__, _API)
__dir__ = listing(__name__, _API)

__all__ = ["__version__", *_API]
