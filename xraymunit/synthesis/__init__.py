"""`xraymunit synthesize`: many abnormal-style images from each normal one, with provenance.

Imported lazily (`xraymunit synthesize --help` builds its flags from `options` without torch).
"""

from __future__ import annotations

import importlib

__all__ = ["SynthesisResult", "SynthesizeOptions", "synthesize"]


def __getattr__(name: str):
    if name in ("SynthesisResult", "synthesize"):
        return getattr(importlib.import_module("xraymunit.synthesis.stage"), name)
    if name == "SynthesizeOptions":
        return importlib.import_module("xraymunit.synthesis.options").SynthesizeOptions
    raise AttributeError(f"module 'xraymunit.synthesis' has no attribute {name!r}")
