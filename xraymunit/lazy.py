"""Package attributes imported on first use: `import xraymunit` and `--help` stay free of torch/MONAI.

A package sets `__getattr__ = exports(__name__, {"name": "module", ...})` (a submodule's name, or a
dotted module path); the first access imports the module, caches the value on the package and
returns it. `__dir__ = listing(__name__, names)` makes `dir()` and tab completion show those names
before any of them is imported.
"""

from __future__ import annotations

import importlib
import sys
from typing import Callable


def exports(package: str, names: dict[str, str]) -> Callable[[str], object]:
    def __getattr__(name: str):
        if name in names:
            module = names[name] if "." in names[name] else f"{package}.{names[name]}"
            value = getattr(importlib.import_module(module), name)
            setattr(sys.modules[package], name, value)
            return value
        raise AttributeError(f"module {package!r} has no attribute {name!r}")

    return __getattr__


def listing(package: str, names) -> Callable[[], list[str]]:
    """A module `__dir__`: the lazy names and the dunders (not the helpers the package imports)."""
    def __dir__() -> list[str]:
        return sorted({*names, *(n for n in vars(sys.modules[package]) if n.startswith("__"))})

    return __dir__
