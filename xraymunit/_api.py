"""Make each stage module callable, so `xraymunit.synthesize(...)` works however it was imported.

The stage *function* `synthesize` lives in the *module* `xraymunit.synthesize`; once anything
has imported that module, Python binds the package attribute to the module, shadowing the
lazy function export of `xraymunit/__init__.py`. A callable module makes both spellings
behave the same: `xraymunit.synthesize(...)` calls the stage function.
"""

from __future__ import annotations

import sys
import types


class StageModule(types.ModuleType):
    def __call__(self, *args, **kwargs):
        return getattr(self, self.__name__.rsplit(".", 1)[1])(*args, **kwargs)


def make_callable(module_name: str) -> None:
    sys.modules[module_name].__class__ = StageModule
