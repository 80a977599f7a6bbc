"""`xraymunit train`: a grayscale MUNIT between two labelled domains of a cohort.

`train()` (in `stage`) runs the loop; see its modules for the pieces.
"""

from __future__ import annotations

from xraymunit.training.stage import TrainResult, train

__all__ = ["TrainResult", "train"]
