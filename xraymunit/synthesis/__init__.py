"""`xraymunit synthesize`: many abnormal-style images from each normal one, with provenance."""

from __future__ import annotations

from xraymunit.synthesis.stage import SynthesisResult, synthesize

__all__ = ["SynthesisResult", "synthesize"]
