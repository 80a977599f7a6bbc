"""`xraymunit synthesize`: many abnormal-style images from each normal one, with provenance.

Imported lazily (`xraymunit synthesize --help` builds its flags from `options` without torch).
"""

from __future__ import annotations

from xraymunit.lazy import exports

_EXPORTS = {"SynthesisResult": "stage", "synthesize": "stage", "SynthesizeOptions": "options"}
__all__ = sorted(_EXPORTS)
__getattr__ = exports(__name__, _EXPORTS)
