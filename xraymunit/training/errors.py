"""The training stage's one error type (its own module: every part of the stage raises it)."""

from __future__ import annotations

from xraymunit.errors import XraymunitError


class TrainingError(XraymunitError):
    """Training cannot start or cannot go on (bad data, non-finite loss, existing run)."""
