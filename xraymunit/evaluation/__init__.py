"""The pieces of `xraymunit evaluate`: data selection, classifier, metrics, quality, report.

Each module has one job; `stage` composes them into the stage function `evaluate()`, exported
here lazily (the pieces do not need torch's classifier stack to import).
"""

from __future__ import annotations

from xraymunit.lazy import exports

__getattr__ = exports(__name__, {"evaluate": "stage"})
