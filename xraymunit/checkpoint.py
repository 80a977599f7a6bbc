"""Training checkpoints: one plain dict per file, written atomically, read with weights_only=True.

The dict carries the resolved config, so a checkpoint alone rebuilds its networks (no
config file needed) and the step lives inside it, never in the file name.
"""

from __future__ import annotations

import hashlib
import platform
from pathlib import Path
from typing import Any

import torch

from xraymunit import __version__
from xraymunit.errors import XraymunitError
from xraymunit.io.atomic import atomic_path

FORMAT = "xraymunit.checkpoint"
FORMAT_VERSION = 1


class CheckpointError(XraymunitError):
    """A checkpoint is missing, unreadable, or from an incompatible version."""


def versions() -> dict[str, str]:
    return {"xraymunit": str(__version__), "torch": str(torch.__version__), "python": platform.python_version()}


def save(path: str | Path, *, models: dict, optimizers: dict, schedulers: dict, step: int,
         config: dict, extra: dict | None = None) -> Path:
    """Write a checkpoint atomically (a killed run never leaves a truncated file)."""
    state = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "models": {k: _cpu_state(m) for k, m in models.items()},
        "optimizers": {k: o.state_dict() for k, o in optimizers.items()},
        "schedulers": {k: s.state_dict() for k, s in schedulers.items()},
        "step": int(step),
        "config": config,
        "versions": versions(),
        "extra": extra or {},
    }
    path = Path(path)
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
    return path


def _cpu_state(module: torch.nn.Module) -> dict:
    module = getattr(module, "module", module)  # unwrap DDP / compiled wrappers
    module = getattr(module, "_orig_mod", module)
    return {k: v.detach().cpu() for k, v in module.state_dict().items()}


def load(path: str | Path, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Read and check a checkpoint; errors say what is wrong with the file."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint not found: {path}")
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # noqa: BLE001 - truncated, not a torch file, pickled code...
        raise CheckpointError(f"{path} is not a readable xraymunit checkpoint ({type(exc).__name__}: "
                              f"{str(exc).splitlines()[0] if str(exc) else ''})") from None
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not an xraymunit checkpoint (no '{FORMAT}' marker)")
    version = state.get("format_version")
    if version != FORMAT_VERSION:
        made_by = state.get("versions", {}).get("xraymunit", "?")
        raise CheckpointError(
            f"{path} has checkpoint format {version} (written by xraymunit {made_by}); "
            f"this xraymunit {__version__} reads format {FORMAT_VERSION}"
        )
    for key in ("models", "step", "config"):
        if key not in state:
            raise CheckpointError(f"{path} is incomplete: no '{key}'")
    return state


def resolve(spec: str | Path) -> Path:
    """The checkpoint file that `spec` names: a file; a run folder (its `checkpoints/best.pt` when
    quality tracking saved one, else `checkpoints/last.pt`); or `RUN/best`, `RUN/last`."""
    path = Path(spec)
    if path.is_file():
        return path
    if path.is_dir():
        best = path / "checkpoints" / "best.pt"
        return best if best.is_file() else path / "checkpoints" / "last.pt"
    if path.name in ("best", "last"):
        named = path.parent / "checkpoints" / f"{path.name}.pt"
        if named.is_file() or (path.parent / "checkpoints").is_dir():
            return named
    return path  # load() says it is missing


def file_sha256(path: str | Path, chunk: int = 1 << 20) -> str:
    """Content hash of a checkpoint, recorded as provenance of everything made from it."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        while block := fh.read(chunk):
            digest.update(block)
    return digest.hexdigest()
