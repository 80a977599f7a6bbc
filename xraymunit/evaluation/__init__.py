"""The pieces of `xraymunit evaluate`: data selection, classifier, metrics, quality, report.

Each module has one job; `stage` composes them into the stage function `evaluate()`, exported
here lazily (the pieces do not need torch's classifier stack to import).
"""

from __future__ import annotations


def __getattr__(name: str):
    if name == "evaluate":
        from xraymunit.evaluation.stage import evaluate

        return evaluate
    raise AttributeError(f"module 'xraymunit.evaluation' has no attribute {name!r}")
